// `gptqd export`: one run of a checkpoint as an HF model directory that the serving stacks load
// as it is. Formats (docs/export.md):
//   gptq               AutoGPTQ's / transformers' v1 layout: qweight/qzeros/scales/g_idx,
//                      qzeros store zero - 1; AutoGPTQ, transformers + optimum, GPTQModel (sym),
//                      vLLM (GPTQ Marlin: 4/8-bit sym)
//   gptq_v2            GPTQModel's layout: the same tensors, qzeros store the zero as is,
//                      checkpoint_format gptq_v2; GPTQModel and transformers + gptqmodel
//   compressed-tensors llm-compressor's pack-quantized layout: weight_packed/weight_scale/
//                      weight_zero_point/weight_shape; transformers' loader, vLLM (WNA16 Marlin)
// Every file says truthfully that gptqd wrote it (meta.quantizer "gptqd:<version>" where the
// format has such a field, and the safetensors metadata).
#pragma once

#include <string>

namespace gptqd {

enum class ExportFormat { kGptq, kGptqV2, kCompressedTensors };

// "gptq" | "gptq_v2" | "compressed-tensors"; InputError naming the accepted ones otherwise.
ExportFormat parse_export_format(const std::string& s);
const char* export_format_name(ExportFormat f);

struct ExportOptions {
  std::string checkpoint;  // the HDF5 checkpoint
  std::string run;         // run name; may be empty when the checkpoint has exactly one
  std::string out_dir;     // created; existing files of the same names are replaced (renamed over)
  std::string
      model_dir;  // the original model; empty = model.path of the job stored in the checkpoint
  ExportFormat format = ExportFormat::kGptq;
  // "" = the model's own dtype (that of its token embedding); else "float16" | "bfloat16" |
  // "float32": every copied floating-point tensor, the scales and the biases are converted.
  std::string dtype;
  bool for_vllm = false;  // refuse runs vLLM cannot serve (io/export/export_compat.h), naming why
};

// Writes out_dir/{model.safetensors, config.json (+ quantization_config), quantize_config.json
// (gptq, gptq_v2), tokenizer files the model has}. Every linear layer of every block is written
// in the format's tensors; other tensors are copied (converted to the chosen dtype); a tied
// LM head is also written as lm_head.weight (AutoGPTQ's loader does not tie it back).
// InputError when the run is incomplete (naming the missing blocks), unknown, cannot be stored
// in the format, or (for_vllm) cannot be served, and, before anything is written, when out_dir
// or a file in it breaks the output rule (io/files/output_path.h: it is the model directory, lies
// in it, is the checkpoint or a model file, is a symbolic link). The files are staged under
// temporary names and renamed into place together: a failed export leaves out_dir as it was.
// Returns a one-line summary.
std::string export_gptq(const ExportOptions& opt);

}  // namespace gptqd
