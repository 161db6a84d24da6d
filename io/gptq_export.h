// `gptqd export`: one run of a checkpoint as an HF directory in the GPTQ layout
// that transformers/optimum, vLLM and TGI load (AutoGPTQ's "gptq" format, v1
// zero-point convention: qzeros store zero - 1). See docs/export.md.
#pragma once

#include <string>

namespace gptqd {

struct ExportOptions {
  std::string checkpoint;  // the HDF5 checkpoint
  std::string run;         // run name; may be empty when the checkpoint has exactly one
  std::string out_dir;     // created; existing files of the same names are replaced
  std::string
      model_dir;  // the original model; empty = model.path of the job stored in the checkpoint
};

// Writes out_dir/{model.safetensors, config.json (+ quantization_config),
// quantize_config.json, tokenizer.json if the model has one}. Every linear layer of
// every block becomes qweight/qzeros/scales/g_idx/bias; other tensors are copied in
// their own dtype. InputError when the run is incomplete (naming the missing blocks),
// unknown, or its shapes cannot be packed. Returns a one-line summary.
std::string export_gptq(const ExportOptions& opt);

}  // namespace gptqd
