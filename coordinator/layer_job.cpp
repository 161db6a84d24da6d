#include "coordinator/layer_job.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"
#include "io/files/output_path.h"
#include "io/model/safetensors.h"
#include "kernels/buffer.h"
#include "worker/hessian.h"

namespace gptqd {
namespace {

// The tensor `name` of f as fp32 after checking its dtype and rank; `required`
// false returns an empty vector when it is absent.
std::vector<float> read_tensor(const SafetensorsFile& f, const std::string& name, size_t rank,
                               bool required, std::vector<int64_t>* shape) {
  const TensorInfo* t = f.find(name);
  if (!t) {
    GPTQD_INPUT_CHECK(!required,
                      "{}: no tensor '{}' (a layer file has 'weight' [out, in], "
                      "'inputs' [tokens, in] and optionally 'bias' [out])",
                      f.path(), name);
    return {};
  }
  GPTQD_INPUT_CHECK(t->dtype == DType::F32 || t->dtype == DType::F16 || t->dtype == DType::BF16,
                    "{}: tensor '{}' has dtype {}; expected F32, F16 or BF16", f.path(), name,
                    dtype_name(t->dtype));
  GPTQD_INPUT_CHECK(t->shape.size() == rank, "{}: tensor '{}' has shape {}; expected {} dims",
                    f.path(), name, shape_string(t->shape), rank);
  std::vector<float> v(static_cast<size_t>(t->numel()));
  f.read_f32_into(*t, v.data());
  const int64_t cols = rank == 2 ? t->shape[1] : 1;
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isfinite(v[i])) continue;
    if (rank == 2)
      throw InputError(fmt::format("{}: tensor '{}' has a non-finite value {} at [{}, {}]",
                                   f.path(), name, v[i], static_cast<int64_t>(i) / cols,
                                   static_cast<int64_t>(i) % cols));
    throw InputError(
        fmt::format("{}: tensor '{}' has a non-finite value {} at [{}]", f.path(), name, v[i], i));
  }
  *shape = t->shape;
  return v;
}

std::string settings_name(const GptqOptions& g) {
  std::string s = fmt::format("w{}g{}", g.bits, g.group_size);
  if (g.sym) s += "-sym";
  if (g.act_order) s += "-act";
  if (g.static_groups) s += "-static";
  if (g.mse_clip) s += "-mse";
  return s;
}

}  // namespace

LayerReport quantize_layer_file(const LayerOptions& opt) {
  const auto t0 = SteadyClock::now();
  GptqOptions gopt = opt.gptq;
  if (gopt.label.empty()) gopt.label = opt.in_path;
  LayerReport rep;
  // The output rule (io/files/output_path.h), before any work: --out is not --in, by identity.
  check_output_file("layer --out", opt.out_path, {{"--in file", opt.in_path}});

  const SafetensorsFile in = SafetensorsFile::open(opt.in_path);
  std::vector<int64_t> wshape, xshape, bshape;
  const std::vector<float> w = read_tensor(in, "weight", 2, true, &wshape);
  const std::vector<float> x = read_tensor(in, "inputs", 2, true, &xshape);
  const std::vector<float> bias = read_tensor(in, "bias", 1, false, &bshape);
  const int64_t rows = wshape[0], cols = wshape[1], tokens = xshape[0];
  GPTQD_INPUT_CHECK(rows > 0 && cols > 0, "{}: tensor 'weight' has shape {}; it must not be empty",
                    opt.in_path, shape_string(wshape));
  GPTQD_INPUT_CHECK(xshape[1] == cols,
                    "{}: tensor 'inputs' has shape {} but 'weight' has shape {}: inputs must be "
                    "[tokens, {}]",
                    opt.in_path, shape_string(xshape), shape_string(wshape), cols);
  GPTQD_INPUT_CHECK(tokens > 0, "{}: tensor 'inputs' has shape {}: no tokens", opt.in_path,
                    shape_string(xshape));
  GPTQD_INPUT_CHECK(bias.empty() || bshape[0] == rows,
                    "{}: tensor 'bias' has shape {} but 'weight' has {} rows", opt.in_path,
                    shape_string(bshape), rows);
  rep.rows = rows;
  rep.cols = cols;
  rep.tokens = tokens;
  rep.seconds_read = seconds_since(t0);

  auto be = make_cpu_backend(opt.threads);
  auto t1 = SteadyClock::now();
  std::vector<float> h;
  {
    HessianAccumulator acc(*be, cols);
    Buffer xd(*be, x);
    acc.add(xd.data(), tokens, tokens);
    h = acc.to_host();
  }
  rep.seconds_hessian = seconds_since(t1);

  t1 = SteadyClock::now();
  const QuantizedLayer q = gptq_quantize(*be, w.data(), rows, cols, h.data(), gopt);
  rep.seconds_gptq = seconds_since(t1);
  rep.gptq_phases = q.seconds;
  rep.loss = q.loss;
  rep.damp_used = q.damp_used;

  const QuantizedLayer rtn = rtn_quantize(*be, w.data(), rows, cols, gopt);
  if (tokens < cols) {
    rep.gptq_err = output_error_from_inputs(*be, w.data(), q.dequant.data(), rows, cols, x.data(),
                                            tokens, tokens);
    rep.rtn_err = output_error_from_inputs(*be, w.data(), rtn.dequant.data(), rows, cols, x.data(),
                                           tokens, tokens);
  } else {
    rep.gptq_err = output_error(*be, w.data(), q.dequant.data(), rows, cols, h.data());
    rep.rtn_err = output_error(*be, w.data(), rtn.dequant.data(), rows, cols, h.data());
  }

  const float loss = static_cast<float>(q.loss);
  std::vector<TensorOut> out = {
      {"codes", DType::U8, {rows, cols}, q.codes.data()},
      {"scales", DType::F32, {q.groups, rows}, q.scales.data()},
      {"zeros", DType::F32, {q.groups, rows}, q.zeros.data()},
      {"g_idx", DType::I32, {cols}, q.g_idx.data()},
      {"perm", DType::I32, {cols}, q.perm.data()},
      {"dequant", DType::F32, {rows, cols}, q.dequant.data()},
      {"loss", DType::F32, {1}, &loss},
  };
  if (!bias.empty()) out.push_back({"bias", DType::F32, {rows}, bias.data()});
  const std::map<std::string, std::string> meta = {
      {"source", opt.in_path},
      {"bits", std::to_string(gopt.bits)},
      {"group_size", std::to_string(gopt.group_size)},
      {"sym", gopt.sym ? "1" : "0"},
      {"act_order", gopt.act_order ? "1" : "0"},
      {"static_groups", gopt.static_groups ? "1" : "0"},
      {"damp_percent", fmt::format("{}", gopt.damp_percent)},
      {"damp_used", fmt::format("{}", q.damp_used)},
      {"block_size", std::to_string(gopt.block_size)},
      {"mse_clip", gopt.mse_clip ? "1" : "0"},
      {"loss", fmt::format("{}", q.loss)},
      {"gptq_err", fmt::format("{}", rep.gptq_err)},
      {"rtn_err", fmt::format("{}", rep.rtn_err)},
  };
  write_safetensors(opt.out_path, out, meta, "layer --out");
  rep.seconds_total = seconds_since(t0);
  return rep;
}

std::string layer_summary(const LayerOptions& opt, const LayerReport& r) {
  const double ratio = r.rtn_err > 0 ? r.gptq_err / r.rtn_err : 0.0;
  return fmt::format(
      "layer {}: weight [{}, {}], {} tokens, {}: loss {:.6g}, output error GPTQ {:.6g} vs RTN "
      "{:.6g} ({:.3f}x), damp {:g}, {:.2f} s (hessian {:.2f}, gptq {:.2f}) -> {}",
      opt.in_path, r.rows, r.cols, r.tokens, settings_name(opt.gptq), r.loss, r.gptq_err, r.rtn_err,
      ratio, r.damp_used, r.seconds_total, r.seconds_hessian, r.seconds_gptq, opt.out_path);
}

}  // namespace gptqd
