// The quantization_config of checkpoints stored in FP8 with block scales, as DeepSeek-V3 / R1 and
// Kimi-K2 ship them ({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
// "weight_block_size": [128, 128]}) and transformers' FineGrainedFP8Config (5.25) reads and writes
// them. gptqd dequantizes such weights on load (HfModel::read_f32): the model it quantizes is the
// dequantized one, computed in fp32 with unquantized activations.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "io/model/model_config.h"

namespace gptqd {

// Reads config.json's quantization_config `q` (src names the file). Accepts quant_method "fp8";
// fmt "e4m3" (or absent); activation_scheme "dynamic" (or absent: dynamic activations are what a
// dequantized model computes with anyway); weight_block_size two positive integers (absent:
// [128, 128]); scale_fmt "float" or "ue8m0" (or absent: the scales are stored as fp32 either way,
// ue8m0 only rounds the activation scales of DeepSeek's FP8 kernels); modules_to_not_convert or
// its alias ignored_layers (null or a list of module name patterns); dequantize (a loading
// option); expert_dtype "fp8". Anything else, including an unknown key, is one InputError line
// naming the key and value.
Fp8Weights parse_fp8_config(const nlohmann::json& q, const std::string& src);

// The pattern of f.modules_to_not_convert that keeps module `module` (its full name in the files,
// e.g. "model.layers.0.mlp.gate") unquantized, or "" if none: transformers'
// should_convert_module (a regex matched from the start up to a module boundary, or a suffix).
std::string fp8_unconverted_by(const Fp8Weights& f, const std::string& module);

}  // namespace gptqd
