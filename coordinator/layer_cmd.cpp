#include "coordinator/layer_cmd.h"

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <map>

#include "coordinator/command_line.h"
#include "io/model/safetensors.h"
#include "kernels/buffer.h"
#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"
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

CommandLine layer_command_line(LayerOptions* opt) {
  CommandLine cl("layer", "GPTQ of one linear layer (debugging, tests, benchmarks)");
  CLI::App& app = cl.app();
  GptqOptions& g = opt->gptq;
  app.add_option("--in", opt->in_path,
                 "weight [out, in] and inputs [tokens, in] (F32/F16/BF16), optional bias")
      ->type_name("L.safetensors")
      ->required();
  app.add_option("--out", opt->out_path, "codes, scales, zeros, g_idx, perm, dequant, loss (bias)")
      ->type_name("R.safetensors")
      ->required();
  app.add_option("--bits", g.bits, "2, 3, 4 or 8")
      ->type_name("B")
      ->required()
      ->transform(integer_check([](int64_t b) {
        return b == 2 || b == 3 || b == 4 || b == 8 ? ""
                                                    : fmt::format("{} is not one of 2, 3, 4, 8", b);
      }));
  app.add_option("--group-size", g.group_size,
                 "-1 (one group per row) or > 0 (the last group may be shorter)")
      ->type_name("G")
      ->required()
      ->transform(integer_check([](int64_t n) {
        return n == -1 || n > 0 ? ""
                                : fmt::format(
                                      "{} is out of range: use -1 (one group per row) or a "
                                      "group size > 0",
                                      n);
      }));
  app.add_flag("--sym", g.sym, "symmetric quantizer (zero at (2^B) / 2)");
  app.add_flag("--act-order", g.act_order,
               "columns by descending diag(H); g_idx and perm record the order");
  app.add_flag("--static-groups", g.static_groups,
               "group parameters from the original weight (needs G > 0)");
  app.add_option("--damp", g.damp_percent,
                 "damp_percent in [0, 1), default 0.01; doubled on a failed factorization")
      ->type_name("D")
      ->transform(number_check([](double d) {
        return d >= 0 && d < 1 ? ""
                               : fmt::format(
                                     "{} is out of range: must be >= 0 and < 1 (a fraction "
                                     "of the mean of diag(H): 0.01 is 1%)",
                                     d);
      }));
  app.add_option("--block-size", g.block_size, "columns per lazy-batch block, default 128")
      ->type_name("S")
      ->transform(integer_check([](int64_t n) {
        return n > 0 ? "" : fmt::format("{} is out of range: must be > 0", n);
      }));
  app.add_flag("--mse-clip", g.mse_clip, "grid-search the clipping range");
  app.add_option("--threads", opt->threads, "CPU threads, default all cores")
      ->type_name("T")
      ->transform(integer_in(1, kMaxThreads));
  cl.set_note("H = (2 / tokens) X^T X: every token row is one sample.");
  return cl;
}

LayerOptions parse_layer_args(const std::vector<std::string>& args) {
  LayerOptions opt;
  opt.gptq = GptqOptions();
  layer_command_line(&opt).parse(args);
  GPTQD_INPUT_CHECK(!(opt.gptq.static_groups && opt.gptq.group_size == -1),
                    "--static-groups needs --group-size > 0 (static groups of -1, one group per "
                    "row, are the plain per-row parameters)");
  return opt;
}

LayerReport quantize_layer_file(const LayerOptions& opt) {
  const auto t0 = SteadyClock::now();
  GptqOptions gopt = opt.gptq;
  if (gopt.label.empty()) gopt.label = opt.in_path;
  LayerReport rep;

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
  write_safetensors(opt.out_path, out, meta);
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

int cmd_layer(const std::vector<std::string>& args, MPI_Comm comm) {
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  LayerOptions opt;
  if (const int rc = parse_on_every_rank(comm, [&] { opt = parse_layer_args(args); }); rc >= 0)
    return rc;
  try {
    GPTQD_INPUT_CHECK(world == 1, "layer runs in one process; run it without mpirun (got {} ranks)",
                      world);
    const LayerReport rep = quantize_layer_file(opt);
    fmt::print("{}\n", layer_summary(opt, rep));
    std::fflush(stdout);
    return 0;
  } catch (const InputError& e) {
    if (rank == 0) GPTQD_LOG_ERROR("error: {}", e.what());
    return 1;
  }
}

}  // namespace gptqd
