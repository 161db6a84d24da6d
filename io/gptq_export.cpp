#include "io/gptq_export.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/gptq_pack.h"
#include "io/hf_model.h"
#include "io/job_config.h"
#include "io/safetensors.h"
#include "kernels/check.h"

namespace gptqd {
namespace {

namespace fs = std::filesystem;

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

nlohmann::json quantize_config(const CkptRunSpec& r) {
  return {{"bits", r.bits},
          {"group_size", r.group_size},
          {"damp_percent", r.damp_percent},
          {"desc_act", r.act_order},
          {"static_groups", r.static_groups},
          {"sym", r.sym},
          {"true_sequential", r.true_sequential},
          {"quant_method", "gptq"},
          {"checkpoint_format", "gptq"},
          {"model_file_base_name", "model"}};
}

std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_f16(v[i]);
  return out;
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

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  GPTQD_INPUT_CHECK(out.good(), "cannot write {}", path.string());
  out << j.dump(2) << "\n";
  GPTQD_INPUT_CHECK(out.good(), "cannot write {}", path.string());
}

}  // namespace

std::string export_gptq(const ExportOptions& opt) {
  const Checkpoint ck = Checkpoint::open_read(opt.checkpoint);
  const CkptLayout& layout = ck.layout();
  const CkptRunSpec& run = find_run(layout, opt.run, opt.checkpoint);
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
  const HfModel model = HfModel::open(model_dir);
  GPTQD_INPUT_CHECK(model.config().n_layer == layout.n_blocks,
                    "{} has {} blocks but the checkpoint has {}", model_dir, model.config().n_layer,
                    layout.n_blocks);

  // The original tensors that stay as they are (everything but the linear weights/biases).
  const ModelSpec& spec = model.spec();
  GPTQD_INPUT_CHECK(layout.layers.size() == spec.linears.size(),
                    "{}: the checkpoint has {} layers per block, the {} model in {} has {}",
                    opt.checkpoint, layout.layers.size(), spec.config.model_type, model_dir,
                    spec.linears.size());
  std::map<std::string, std::string> quantized;  // canonical weight name -> module
  for (int64_t b = 0; b < layout.n_blocks; ++b) {
    for (const LinearSpec& l : spec.linears) {
      quantized[spec.block_tensor_name(b, l.module + ".weight")] = l.module;
      quantized[spec.block_tensor_name(b, l.module + ".bias")] = l.module;
    }
  }
  Pending out;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;
  for (const std::string& name : model.tensor_names()) {
    if (quantized.count(name)) continue;
    const std::string file = model.file_of(name);
    auto& f = files[file];
    if (!f) f = std::make_unique<SafetensorsFile>(SafetensorsFile::open(file));
    const TensorInfo* t = f->find(model.info(name).name);
    GPTQD_CHECK(t != nullptr, "{}: tensor {} vanished", file, name);
    const uint8_t* p = f->data(*t);
    out.add(spec.hf_name(name), t->dtype, t->shape,
            std::vector<uint8_t>(p, p + t->nbytes()));
  }
  // The quantized linears.
  for (int64_t b = 0; b < layout.n_blocks; ++b) {
    for (size_t li = 0; li < spec.linears.size(); ++li) {
      const LinearSpec& ln = spec.linears[li];
      const CkptLayerShape& shape = layout.layers[li];
      GPTQD_INPUT_CHECK(shape.name == ln.module && shape.rows == ln.out && shape.cols == ln.in,
                        "{}: layer {} ({}x{}) does not match the model's {} ({}x{})",
                        opt.checkpoint, shape.name, shape.rows, shape.cols, ln.module, ln.out,
                        ln.in);
      const LayerData d = ck.read_layer(run.name, b, ln.module);
      const int64_t groups = run.groups(shape.cols);
      const std::string base = spec.hf_name(spec.block_tensor_name(b, ln.module + "."));
      try {
        out.add(base + "qweight", DType::I32, {shape.cols * run.bits / 32, shape.rows},
                pack_qweight(d.codes, shape.rows, shape.cols, run.bits));
        out.add(base + "qzeros", DType::I32, {groups, shape.rows * run.bits / 32},
                pack_qzeros(d.zeros, groups, shape.rows, run.bits));
      } catch (const InputError& e) {
        throw InputError(fmt::format("block {} {}: {}", b, ln.module, e.what()));
      }
      out.add(base + "scales", DType::F16, {groups, shape.rows}, to_f16(d.scales));
      out.add(base + "g_idx", DType::I32, {shape.cols}, d.g_idx);
      if (ln.bias) out.add(base + "bias", DType::F16, {shape.rows}, to_f16(d.bias));
    }
  }

  const fs::path dir(opt.out_dir);
  fs::create_directories(dir);
  write_safetensors((dir / "model.safetensors").string(), out.tensors, {{"format", "pt"}});
  nlohmann::json config = nlohmann::json::parse(model.config().json);
  config["quantization_config"] = quantize_config(run);
  config["torch_dtype"] = "float16";
  write_json(dir / "config.json", config);
  write_json(dir / "quantize_config.json", quantize_config(run));
  const fs::path tok = fs::path(model_dir) / "tokenizer.json";
  if (fs::exists(tok))
    fs::copy_file(tok, dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  return fmt::format("exported run {} ({}-bit, group {}) of {} to {}: {} tensors", run.name,
                     run.bits, run.group_size, opt.checkpoint, opt.out_dir, out.tensors.size());
}

}  // namespace gptqd
