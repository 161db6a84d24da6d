#include "io/export/gptq_export.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/log.h"
#include "io/checkpoint/checkpoint.h"
#include "io/export/export_compat.h"
#include "io/export/export_modules.h"
#include "io/export/gptq_pack.h"
#include "io/files/output_path.h"
#include "io/files/staged_file.h"
#include "io/job/job_config.h"
#include "io/model/hf_model.h"
#include "io/model/safetensors.h"

#ifndef GPTQD_VERSION_STRING
#define GPTQD_VERSION_STRING "0.1.0"
#endif

namespace gptqd {
namespace {

namespace fs = std::filesystem;

// The compressed-tensors release whose pack-quantized layout and config keys are written
// (compressed_tensors/compressors/pack_quantized, quantization/quant_config.py): its
// quantization_config carries the layout's version under "version".
constexpr const char* kCompressedTensorsLayout = "0.20.0";

const CkptRunSpec& find_run(const CkptLayout& layout, const std::string& name,
                            const std::string& path) {
  if (name.empty()) {
    GPTQD_INPUT_CHECK(layout.runs.size() == 1, "{} holds {} runs: name one with --run", path,
                      layout.runs.size());
    return layout.runs[0];
  }
  for (const CkptRunSpec& r : layout.runs) {
    if (r.name == name) return r;
  }
  std::string names;
  for (const CkptRunSpec& r : layout.runs) names += (names.empty() ? "" : ", ") + r.name;
  throw InputError(fmt::format("{}: no run '{}' (runs: {})", path, name, names));
}

std::string quantizer_tag() { return std::string("gptqd:") + GPTQD_VERSION_STRING; }

// quantize_config.json. v1: exactly the fields of AutoGPTQ 0.7.1's BaseQuantizeConfig (it warns
// about any other key, and GPTQModel reads the same file: format and method default to gptq).
// v2: GPTQModel's keys (checkpoint_format gptq_v2 and meta.quantizer); AutoGPTQ cannot read v2.
nlohmann::json quantize_config_file(const CkptRunSpec& r, ExportFormat f) {
  nlohmann::json j = {{"bits", r.bits},
                      {"group_size", r.group_size},
                      {"damp_percent", r.damp_percent},
                      {"desc_act", r.act_order},
                      {"static_groups", r.static_groups},
                      {"sym", r.sym},
                      {"true_sequential", r.true_sequential}};
  if (f == ExportFormat::kGptq) {
    j["model_file_base_name"] = "model";
  } else {
    j["quant_method"] = "gptq";
    j["checkpoint_format"] = "gptq_v2";
    j["meta"] = {{"quantizer", {quantizer_tag()}}};
  }
  return j;
}

// config.json's quantization_config for gptq / gptq_v2: what transformers' GPTQConfig reads
// (quant_method, checkpoint_format, meta among its fields) and vLLM's GPTQ Marlin config needs
// (quant_method, bits, group_size, sym, desc_act).
nlohmann::json hf_gptq_config(const CkptRunSpec& r, ExportFormat f) {
  return {{"bits", r.bits},
          {"group_size", r.group_size},
          {"damp_percent", r.damp_percent},
          {"desc_act", r.act_order},
          {"static_groups", r.static_groups},
          {"sym", r.sym},
          {"true_sequential", r.true_sequential},
          {"quant_method", "gptq"},
          {"checkpoint_format", f == ExportFormat::kGptqV2 ? "gptq_v2" : "gptq"},
          {"meta", {{"quantizer", {quantizer_tag()}}}}};
}

// config.json's quantization_config for compressed-tensors, as llm-compressor writes a W<b>A16
// scheme (compressed_tensors ModelCompressor.update_config + QuantizationConfig.model_dump):
// one config group over every Linear but the LM head.
nlohmann::json ct_config(const CkptRunSpec& r) {
  const bool channel = r.group_size == -1;
  nlohmann::json weights = {
      {"num_bits", r.bits},
      {"type", "int"},
      {"symmetric", r.sym},
      {"strategy", channel ? "channel" : "group"},
      {"group_size", channel ? nlohmann::json() : nlohmann::json(r.group_size)},
      {"block_structure", nullptr},
      {"dynamic", false},
      // act_order with static groups: the columns were processed in
      // activation order, the groups stay contiguous ("weight").
      {"actorder", r.act_order ? nlohmann::json("weight") : nlohmann::json()},
      {"scale_dtype", nullptr},
      {"observer_kwargs", nlohmann::json::object()}};
  return {{"quant_method", "compressed-tensors"},
          {"format", "pack-quantized"},
          {"quantization_status", "compressed"},
          {"config_groups",
           {{"group_0",
             {{"targets", {"Linear"}},
              {"weights", weights},
              {"input_activations", nullptr},
              {"output_activations", nullptr},
              {"format", "pack-quantized"}}}}},
          {"ignore", {"lm_head"}},
          {"kv_cache_scheme", nullptr},
          {"global_compression_ratio", nullptr},
          {"sparsity_config", nlohmann::json::object()},
          {"transform_config", nlohmann::json::object()},
          {"version", kCompressedTensorsLayout}};
}

// A mixture of experts: the linears left in full precision (every block's router, Qwen2-MoE's
// shared-expert gate) named where each loader looks (docs/export.md, "Mixtures of experts").
// compressed-tensors: `ignore` (apply_quantization_config skips those modules; the
// shared_expert_gate is an nn.Linear that the "Linear" target would otherwise take). gptq:
// `modules_in_block_to_quantize`, the allow list optimum's convert_model applies to a block's
// nn.Linear layers at load (without it, it makes the 1-row shared_expert_gate a QuantLinear) and
// vLLM's GPTQ configs read; `modules_to_not_convert` names the same modules as the ignore list
// does (no GPTQ loader reads that key: transformers' GPTQConfig and optimum accept and drop it;
// GPTQModel knows the router and gates from its model definitions).
void add_moe_modules(const ExportModules& m, ExportFormat f, nlohmann::json* qc) {
  if (f == ExportFormat::kCompressedTensors) {
    for (const std::string& n : m.full_precision) (*qc)["ignore"].push_back(n);
    return;
  }
  (*qc)["modules_in_block_to_quantize"] = m.in_block;
  (*qc)["modules_to_not_convert"] = m.full_precision;
}

bool is_float(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

const char* torch_dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "float32";
    case DType::F16:
      return "float16";
    case DType::BF16:
      return "bfloat16";
    default:
      break;
  }
  throw InputError(fmt::format("cannot export in dtype {}", dtype_name(t)));
}

DType parse_out_dtype(const std::string& s) {
  if (s == "float16" || s == "fp16") return DType::F16;
  if (s == "bfloat16" || s == "bf16") return DType::BF16;
  if (s == "float32" || s == "fp32") return DType::F32;
  throw InputError(
      fmt::format("export: --dtype {} is not supported (float16, bfloat16, float32)", s));
}

// fp32 values encoded as `to` (F32, F16 or BF16), as bytes.
std::vector<uint8_t> encode(const float* v, size_t n, DType to) {
  std::vector<uint8_t> out(n * dtype_size(to));
  for (size_t i = 0; i < n; ++i) {
    if (to == DType::F32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else {
      const uint16_t h = to == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

// A copied tensor: as it is, or converted to `to` when it is floating point of another dtype.
std::vector<uint8_t> convert_bytes(DType from, const uint8_t* p, size_t n, DType to) {
  if (from == to || !is_float(from)) return std::vector<uint8_t>(p, p + n * dtype_size(from));
  std::vector<float> f(n);
  convert_to_f32(from, p, n, f.data());
  return encode(f.data(), n, to);
}

// Everything the output file holds, owned here until write_safetensors copies it out.
struct Pending {
  std::vector<TensorOut> tensors;
  std::vector<std::shared_ptr<void>> owned;

  template <class T>
  void add(const std::string& name, DType t, std::vector<int64_t> shape, std::vector<T> data) {
    auto p = std::make_shared<std::vector<T>>(std::move(data));
    tensors.push_back(TensorOut{name, t, std::move(shape), p->data()});
    owned.push_back(p);
  }
};

// Who chose the output paths, for messages.
constexpr const char* kOutRole = "export --out";

// The tokenizer and generation files copied as they are, those the model directory has.
constexpr const char* kCopiedFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};

StagedFile staged_json(const fs::path& path, const nlohmann::json& j) {
  StagedFile f = StagedFile::create(kOutRole, path.string());
  f.write(j.dump(2) + "\n");
  return f;
}

// The output rule (io/files/output_path.h) for the whole export, before anything is written:
// --out is no input and lies in none (the model directory), and no file the export writes or
// removes there is an input (the checkpoint, a model file), a symbolic link or a directory.
void check_export_outputs(const ExportOptions& opt, const std::string& model_dir) {
  std::vector<NamedInput> inputs = {{"checkpoint being exported", opt.checkpoint}};
  for (NamedInput& in : model_directory_inputs(model_dir)) inputs.push_back(std::move(in));
  check_output_directory(kOutRole, opt.out_dir, inputs);
  const fs::path dir(opt.out_dir);
  for (const char* f : {"model.safetensors", "config.json", "quantize_config.json"})
    check_output_file(kOutRole, (dir / f).string(), inputs);
  for (const char* f : kCopiedFiles) {
    if (fs::exists(fs::path(model_dir) / f))
      check_output_file(kOutRole, (dir / f).string(), inputs);
  }
}

}  // namespace

ExportFormat parse_export_format(const std::string& s) {
  if (s == "gptq") return ExportFormat::kGptq;
  if (s == "gptq_v2") return ExportFormat::kGptqV2;
  if (s == "compressed-tensors") return ExportFormat::kCompressedTensors;
  throw InputError(
      fmt::format("export: --format {} is not supported (gptq, gptq_v2, compressed-tensors)", s));
}

const char* export_format_name(ExportFormat f) {
  switch (f) {
    case ExportFormat::kGptq:
      return "gptq";
    case ExportFormat::kGptqV2:
      return "gptq_v2";
    case ExportFormat::kCompressedTensors:
      return "compressed-tensors";
  }
  return "?";
}

std::string export_gptq(const ExportOptions& opt) {
  const Checkpoint ck = Checkpoint::open_read(opt.checkpoint);
  const CkptLayout& layout = ck.layout();
  const CkptRunSpec& run = find_run(layout, opt.run, opt.checkpoint);
  const bool moe = layout.family == "moe";
  if (moe) {
    // The MoE families whose exports the loaders were shown to read (docs/export.md); another
    // one (DeepSeek-V3's MLA, its dense blocks and correction bias) has not been.
    const std::string type =
        nlohmann::json::parse(layout.model_config_json).value("model_type", std::string());
    GPTQD_INPUT_CHECK(type == "mixtral" || type == "qwen2_moe" || type == "qwen3_moe",
                      "{}: export of {} runs is not implemented yet (mixtures of experts exported: "
                      "mixtral, qwen2_moe, qwen3_moe; the checkpoint holds every expert's codes "
                      "and `gptqd eval` evaluates them)",
                      opt.checkpoint, type);
  }
  const ExportFormat format = opt.format;
  const QuantSettings settings{run.bits, run.group_size, run.sym, run.act_order, run.static_groups};
  if (opt.for_vllm) {
    GPTQD_INPUT_CHECK(format != ExportFormat::kGptqV2,
                      "export --for vllm: run {}: write --format gptq or compressed-tensors "
                      "(vLLM's GPTQ Marlin path reads the v1 layout)",
                      run.name);
    const std::vector<std::string> why = vllm_refusals(settings, moe);
    GPTQD_INPUT_CHECK(why.empty(), "export --for vllm: vLLM cannot serve run {}: {}", run.name,
                      fmt::format("{}", fmt::join(why, "; ")));
  }
  std::vector<int64_t> missing;
  const std::vector<uint8_t> done = ck.completion(run.name);
  for (int64_t b = 0; b < layout.n_blocks; ++b) {
    if (!done[b]) missing.push_back(b);
  }
  GPTQD_INPUT_CHECK(missing.empty(),
                    "{}: run {} is incomplete, blocks missing: {} (rerun the job to finish it)",
                    opt.checkpoint, run.name, format_block_list(missing));
  const std::string model_dir =
      opt.model_dir.empty()
          ? parse_job_config(layout.job_config_yaml, opt.checkpoint + " (job_config)").model_path
          : opt.model_dir;
  check_export_outputs(opt, model_dir);
  const HfModel model = HfModel::open(model_dir);
  model.validate_shapes();  // dtypes and shapes, as quantize and eval check them (headers only)
  GPTQD_INPUT_CHECK(model.config().n_layer == layout.n_blocks,
                    "{} has {} blocks but the checkpoint has {}", model_dir, model.config().n_layer,
                    layout.n_blocks);

  const ModelSpec& spec = model.spec();
  for (int64_t b = 0; b < layout.n_blocks; ++b) {
    const size_t have = block_layers(layout, b).size(), want = spec.block(b).linears.size();
    GPTQD_INPUT_CHECK(have == want,
                      "{}: the checkpoint has {} layers in block {}, the {} model in {} has {}",
                      opt.checkpoint, have, b, spec.config.model_type, model_dir, want);
  }
  if (opt.for_vllm) {
    const std::string why = vllm_moe_refusal(settings, spec, format == ExportFormat::kGptq);
    GPTQD_INPUT_CHECK(why.empty(), "export --for vllm: vLLM cannot serve run {}: {}", run.name,
                      why);
    for (const std::string& n : vllm_shape_notes(spec))
      GPTQD_LOG_WARN("vLLM: Marlin's tiles do not divide {}: vLLM needs another kernel for it", n);
    if (const std::string n = vllm_moe_shape_note(settings, spec); !n.empty())
      GPTQD_LOG_WARN(
          "vLLM: Marlin's MoE kernels do not tile the {}: vLLM serves them with its "
          "MoE WNA16 kernels",
          n);
  }
  // The dtype of everything that is not packed: the model's own (its token embedding's), or
  // --dtype. vLLM computes Marlin in fp16/bf16: an fp32 model exported for it becomes fp16.
  const DType model_dt = model.info(spec.embedding[0].name).dtype;
  DType dt = opt.dtype.empty() ? model_dt : parse_out_dtype(opt.dtype);
  if (opt.for_vllm && opt.dtype.empty() && dt == DType::F32) {
    dt = DType::F16;
    GPTQD_LOG_INFO(
        "export --for vllm: the model is float32; writing float16 (vLLM's Marlin "
        "kernels compute in float16/bfloat16; --dtype bfloat16 to choose)");
  }
  GPTQD_INPUT_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16,
                    "{}: the model is stored in {}: choose --dtype float16|bfloat16|float32",
                    model_dir, dtype_name(dt));

  // The original tensors that stay as they are (everything but the linear weights/biases).
  std::map<std::string, std::string> quantized;  // canonical weight name -> module
  for (int64_t b = 0; b < layout.n_blocks; ++b) {
    for (const LinearSpec& l : spec.block(b).linears) {
      quantized[spec.block_tensor_name(b, l.module + ".weight")] = l.module;
      quantized[spec.block_tensor_name(b, l.module + ".bias")] = l.module;
    }
  }
  Pending out;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;
  auto copy = [&](const std::string& name, const std::string& out_name) {
    const std::string file = model.file_of(name);
    auto& f = files[file];
    if (!f) f = std::make_unique<SafetensorsFile>(SafetensorsFile::open(file));
    const TensorInfo* t = f->find(model.info(name).name);
    GPTQD_CHECK(t != nullptr, "{}: tensor {} vanished", file, name);
    const DType to = is_float(t->dtype) ? dt : t->dtype;
    out.add(out_name, to, t->shape,
            convert_bytes(t->dtype, f->data(*t), static_cast<size_t>(t->numel()), dt));
  };
  for (const std::string& name : model.tensor_names()) {
    if (quantized.count(name)) continue;
    copy(name, spec.hf_name(name));
  }
  // A tied head: transformers and GPTQModel tie lm_head to the embedding after loading, but
  // AutoGPTQ's from_quantized does not, and without lm_head.weight in the file it leaves the
  // embedding zero. Writing the head (a copy of the embedding) serves every loader.
  const bool tied = spec.lm_head.empty();
  if (tied) copy(spec.embedding[0].name, "lm_head.weight");

  // The quantized linears.
  int64_t v1_zero_zero = 0;  // zero points of 0: the v1 layout cannot store them
  const ZeroConvention conv =
      format == ExportFormat::kGptqV2 ? ZeroConvention::kV2 : ZeroConvention::kV1;
  for (int64_t b = 0; b < layout.n_blocks; ++b) {
    const std::vector<LinearSpec>& linears = spec.block(b).linears;
    const std::vector<int> stored = block_layers(layout, b);
    for (size_t li = 0; li < linears.size(); ++li) {
      const LinearSpec& ln = linears[li];
      const CkptLayerShape& shape = layout.layers[static_cast<size_t>(stored[li])];
      GPTQD_INPUT_CHECK(shape.name == ln.module && shape.rows == ln.out && shape.cols == ln.in,
                        "{}: layer {} ({}x{}) does not match the model's {} ({}x{})",
                        opt.checkpoint, shape.name, shape.rows, shape.cols, ln.module, ln.out,
                        ln.in);
      const LayerData d = ck.read_layer(run.name, b, ln.module);
      const int64_t rows = shape.rows, cols = shape.cols;
      const int64_t groups = run.groups(cols);
      const std::string base = spec.hf_name(spec.block_tensor_name(b, ln.module + "."));
      try {
        if (format == ExportFormat::kCompressedTensors) {
          // Contiguous groups only: compressed-tensors has no g_idx (actorder "group" was
          // removed in 0.18); act_order runs need static_groups to be stored here.
          const int64_t gs = run.group_size == -1 ? cols : run.group_size;
          for (int64_t i = 0; i < cols; ++i) {
            GPTQD_INPUT_CHECK(d.g_idx[i] == i / gs,
                              "run {}: act_order without static_groups puts input column {} of "
                              "{} in group {}, not {}: compressed-tensors stores contiguous "
                              "groups only (quantize with static_groups: true, or export "
                              "--format gptq / gptq_v2, which keep g_idx)",
                              run.name, i, base.substr(0, base.size() - 1), d.g_idx[i], i / gs);
          }
          if (run.sym) {
            for (float z : d.zeros)
              GPTQD_CHECK(z == static_cast<float>(1 << (run.bits - 1)),
                          "symmetric zero {} is not 2^(bits-1)", z);
          }
          out.add(base + "weight_packed", DType::I32, {rows, (cols * run.bits + 31) / 32},
                  pack_ct_weight(d.codes, rows, cols, run.bits));
          std::vector<float> st(static_cast<size_t>(rows * groups));  // [out, groups]
          for (int64_t g = 0; g < groups; ++g)
            for (int64_t o = 0; o < rows; ++o) st[o * groups + g] = d.scales[g * rows + o];
          out.add(base + "weight_scale", dt, {rows, groups}, encode(st.data(), st.size(), dt));
          if (!run.sym)
            out.add(base + "weight_zero_point", DType::I32, {(rows * run.bits + 31) / 32, groups},
                    pack_ct_zero_point(d.zeros, groups, rows, run.bits));
          out.add(base + "weight_shape", DType::I64, {2}, std::vector<int64_t>{rows, cols});
        } else {
          out.add(base + "qweight", DType::I32, {cols * run.bits / 32, rows},
                  pack_qweight(d.codes, rows, cols, run.bits));
          out.add(base + "qzeros", DType::I32, {groups, rows * run.bits / 32},
                  pack_qzeros(d.zeros, groups, rows, run.bits, conv));
          out.add(base + "scales", dt, {groups, rows},
                  encode(d.scales.data(), d.scales.size(), dt));
          out.add(base + "g_idx", DType::I32, {cols}, d.g_idx);
          if (conv == ZeroConvention::kV1)
            for (float z : d.zeros) v1_zero_zero += z == 0.0f;
        }
      } catch (const InputError& e) {
        throw InputError(fmt::format("block {} {}: {}", b, ln.module, e.what()));
      }
      if (ln.bias) out.add(base + "bias", dt, {rows}, encode(d.bias.data(), d.bias.size(), dt));
    }
  }
  if (v1_zero_zero > 0) {
    GPTQD_LOG_WARN(
        "run {}: {} zero point(s) are 0, which the v1 gptq layout cannot store (zero - 1 wraps "
        "to {}): loaders read them as {}; export --format gptq_v2 or compressed-tensors to keep "
        "them exact",
        run.name, v1_zero_zero, (1 << run.bits) - 1, 1 << run.bits);
  }

  // Every file is staged under a temporary name in --out and renamed into place only once all
  // are written and synced: an export that fails (a full disk, a quota, a file too large) leaves
  // the directory as it was, with no partial file.
  const fs::path dir(opt.out_dir);
  std::error_code ec;
  const bool created = fs::create_directories(dir, ec);
  GPTQD_INPUT_CHECK(!ec, "export --out: cannot create the directory '{}': {}", opt.out_dir,
                    ec.message());
  std::vector<StagedFile> staged;
  try {
    staged.push_back(StagedFile::create(kOutRole, (dir / "model.safetensors").string()));
    write_safetensors(staged.back(), out.tensors,
                      {{"format", "pt"},
                       {"quantizer", quantizer_tag()},
                       {"gptqd_run", run.name},
                       {"gptqd_format", export_format_name(format)}});
    nlohmann::json config = nlohmann::json::parse(model.config().json);
    config["quantization_config"] =
        format == ExportFormat::kCompressedTensors ? ct_config(run) : hf_gptq_config(run, format);
    if (moe)
      add_moe_modules(export_modules(spec, layout.n_blocks), format,
                      &config["quantization_config"]);
    // transformers < 4.56 reads torch_dtype, later ones dtype: both say what is stored.
    config["torch_dtype"] = torch_dtype_name(dt);
    if (config.contains("dtype")) config["dtype"] = torch_dtype_name(dt);
    staged.push_back(staged_json(dir / "config.json", config));
    if (format != ExportFormat::kCompressedTensors)
      staged.push_back(
          staged_json(dir / "quantize_config.json", quantize_config_file(run, format)));
    for (const char* f : kCopiedFiles) {
      const fs::path src = fs::path(model_dir) / f;
      if (!fs::exists(src)) continue;
      staged.push_back(StagedFile::create(kOutRole, (dir / f).string()));
      staged.back().copy_from(src.string());
    }
    for (StagedFile& f : staged) f.finish();
    for (StagedFile& f : staged) f.commit();
  } catch (...) {
    staged.clear();                    // removes the temporary files
    if (created) fs::remove(dir, ec);  // only when empty: nothing of the user's goes
    throw;
  }
  if (format == ExportFormat::kCompressedTensors)
    fs::remove(dir / "quantize_config.json", ec);  // a stale one would make GPTQ loaders claim it
  return fmt::format("exported run {} ({}-bit, group {}, {}) of {} to {} as {} ({}{}): {} tensors",
                     run.name, run.bits, run.group_size, run.sym ? "sym" : "asym", opt.checkpoint,
                     opt.out_dir, export_format_name(format), torch_dtype_name(dt),
                     tied ? ", tied head written" : "", out.tensors.size());
}

}  // namespace gptqd
