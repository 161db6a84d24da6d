// bench/gptq_layer: gptqd's GPTQ of one BLOOM-shaped linear layer against the
// PyTorch port of the reference (scripts/gptq_reference.py), on the same
// machine, the same thread count and the same layer, in one run. Prints each
// phase's time, the speed-up, and the fraction of the machine's SGEMM rate
// (measured in the same run) that each phase reaches on its FLOP count:
//   hessian  tokens * in * (in + 1)   (X^T X, one triangle, as SYRK counts it)
//   factor   2/3 in^3                 (one Cholesky + one triangular inverse)
//   sweep    out * in^2               (the column sweep and its trailing GEMMs)
//   layer    the sum
// The counts are the work GPTQ needs, the same for both implementations (the
// reference spends more: a full GEMM for X^T X and three factorizations).
// It also reports how many codes the two produce identically.
//
//   build/bench/gptq_layer [--quick] [--threads T] [--tokens N] [--shape OUTxIN]...
//       [--act-order-only | --no-act-order] [--no-reference] [--python P] [--script S]
//       [--workdir D]
// Defaults: all cores, 2048 tokens, shapes 4096x4096 and 4096x16384, each
// without and with act_order, 4-bit, group 128. --quick: 1024x1024 and
// 1024x4096 with 512 tokens. docs/performance.md has the figures.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/check.h"
#include "base/timing.h"
#include "bench_load.h"
#include "io/model/safetensors.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/cpu/blas_kernel_choice.h"
#include "worker/gptq.h"
#include "worker/hessian.h"

namespace gptqd {
namespace {

// CPU seconds (user + system) of this process's threads or of its waited-for
// children: with other work on the machine, wall time measures the machine as
// much as the program; CPU time much less so.
double cpu_seconds(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Shape {
  int64_t rows, cols;
};

struct Args {
  int threads = 0;
  int64_t tokens = 2048;
  std::vector<Shape> shapes;
  std::vector<bool> act_orders = {false, true};
  bool reference = true;
  bool quick = false;
  std::string python = "/usr/bin/python3";
  // The script beside this source file (CMake compiles it by absolute path).
  std::string script =
      (std::filesystem::path(__FILE__).parent_path() / ".." / "scripts" / "gptq_reference.py")
          .lexically_normal()
          .string();
  std::string workdir;
};

Shape parse_shape(const std::string& s) {
  const size_t x = s.find('x');
  GPTQD_INPUT_CHECK(x != std::string::npos, "--shape: '{}' is not OUTxIN", s);
  return {std::stoll(s.substr(0, x)), std::stoll(s.substr(x + 1))};
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      GPTQD_INPUT_CHECK(i + 1 < argc, "{} needs a value", f);
      return argv[++i];
    };
    if (f == "--quick") {
      a.quick = true;
    } else if (f == "--threads") {
      a.threads = std::stoi(value());
    } else if (f == "--tokens") {
      a.tokens = std::stoll(value());
    } else if (f == "--shape") {
      a.shapes.push_back(parse_shape(value()));
    } else if (f == "--act-order-only") {
      a.act_orders = {true};
    } else if (f == "--no-act-order") {
      a.act_orders = {false};
    } else if (f == "--no-reference") {
      a.reference = false;
    } else if (f == "--python") {
      a.python = value();
    } else if (f == "--script") {
      a.script = value();
    } else if (f == "--workdir") {
      a.workdir = value();
    } else {
      throw InputError(
          fmt::format("unknown argument '{}' (see the top of bench/gptq_layer.cpp)", f));
    }
  }
  if (a.threads <= 0)
    a.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (a.quick) {
    if (a.shapes.empty()) a.shapes = {{1024, 1024}, {1024, 4096}};
    a.tokens = std::min<int64_t>(a.tokens, 512);
  }
  if (a.shapes.empty()) a.shapes = {{4096, 4096}, {4096, 16384}};
  return a;
}

// Best of three n x n x n SGEMMs through the backend, in GFLOP/s.
double sgemm_rate(Backend& be, int64_t n) {
  Buffer a(be, n * n), b(be, n * n), c(be, n * n);
  be.fill(a.data(), 0.5f, n * n);
  be.fill(b.data(), 0.25f, n * n);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = SteadyClock::now();
    be.gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    be.synchronize();
    best = std::max(best, 2.0 * n * n * n / seconds_since(t0) / 1e9);
  }
  return best;
}

// A weight ~ N(0, 0.02^2) and inputs with a transformer's structure: a
// low-rank mix of 64 factors plus noise, per-feature scales over e^[-1, 1].
void make_layer(Backend& be, int64_t rows, int64_t cols, int64_t tokens, uint64_t seed,
                std::vector<float>* w, std::vector<float>* x) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const int64_t k = 64;
  std::vector<float> z(static_cast<size_t>(tokens * k)), m(static_cast<size_t>(k * cols));
  for (auto& v : z) v = normal(gen);
  for (auto& v : m) v = normal(gen) / 8.0f;
  Buffer zd(be, z), md(be, m), xd(be, tokens * cols);
  be.gemm(false, false, tokens, cols, k, 1.0f, zd.data(), k, md.data(), cols, 0.0f, xd.data(),
          cols);
  *x = xd.to_host();
  std::vector<float> scale(static_cast<size_t>(cols));
  for (auto& v : scale) v = std::exp(uni(gen));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t c = 0; c < cols; ++c) {
      float& v = (*x)[static_cast<size_t>(t * cols + c)];
      v = (v + 0.1f * normal(gen)) * scale[c];
    }
  w->resize(static_cast<size_t>(rows * cols));
  for (auto& v : *w) v = 0.02f * normal(gen);
}

struct Phases {
  double hessian = 0, prepare = 0, factor = 0, sweep = 0, finish = 0, total = 0;
  double cpu = 0;  // CPU seconds of the whole run
  double loss = 0;
  bool ok = false;
};

// Runs the reference script on `in`, writing `out`; its JSON line has the times.
Phases run_reference(const Args& a, const std::string& in, const std::string& out, bool act) {
  const std::string cmd = fmt::format(
      "OMP_NUM_THREADS={0} OPENBLAS_NUM_THREADS={0} MKL_NUM_THREADS={0} '{1}' '{2}' --in '{3}' "
      "--out '{4}' --bits 4 --group-size 128 {5} --threads {0}",
      a.threads, a.python, a.script, in, out, act ? "--act-order" : "");
  const double cpu0 = cpu_seconds(RUSAGE_CHILDREN);
  FILE* p = popen(cmd.c_str(), "r");
  GPTQD_CHECK(p != nullptr, "cannot run {}", cmd);
  std::string text;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) text += buf;
  const int status = pclose(p);
  Phases r;
  // Includes starting Python and reading the file: a little more than the layer.
  r.cpu = cpu_seconds(RUSAGE_CHILDREN) - cpu0;
  if (status != 0) {
    std::printf("  reference failed (status %d): %s\n%s\n", status, cmd.c_str(), text.c_str());
    return r;
  }
  const size_t at = text.find("{\"loss\"");
  GPTQD_CHECK(at != std::string::npos, "no timing line in the reference's output:\n{}", text);
  const auto j = nlohmann::json::parse(text.substr(at));
  const auto& s = j.at("seconds");
  r.hessian = s.at("hessian");
  r.prepare = s.at("prepare");
  r.factor = s.at("factor");
  r.sweep = s.at("sweep");
  r.total = s.at("total");
  r.finish = r.total - r.hessian - r.prepare - r.factor - r.sweep;
  r.loss = j.at("loss");
  r.ok = true;
  return r;
}

struct Row {
  std::string name;
  double flops;
  double ours, ref;
};

void print_case(const Args& a, double rate, const Shape& s, bool act, const Phases& ours,
                const Phases& ref, double identical) {
  const double n = static_cast<double>(s.cols), m = static_cast<double>(s.rows);
  const double t = static_cast<double>(a.tokens);
  const double fh = t * n * (n + 1), ff = 2.0 / 3.0 * n * n * n, fs = m * n * n;
  const std::vector<Row> rows = {
      {"hessian", fh, ours.hessian, ref.hessian},
      {"factor", ff, ours.factor, ref.factor},
      {"sweep", fs, ours.sweep, ref.sweep},
      {"other", 0, ours.prepare + ours.finish, ref.prepare + ref.finish},
      {"layer", fh + ff + fs, ours.total, ref.total},
  };
  std::printf("%lldx%lld (out x in), %lld tokens, w4g128%s, %d threads\n",
              static_cast<long long>(s.rows), static_cast<long long>(s.cols),
              static_cast<long long>(a.tokens), act ? " act_order" : "", a.threads);
  std::printf("  %-8s %9s | %9s %7s | %9s %7s | %8s\n", "phase", "GFLOP", "gptqd s", "%SGEMM",
              "ref s", "%SGEMM", "speed-up");
  for (const Row& r : rows) {
    auto pct = [&](double sec) {
      return r.flops > 0 && sec > 0 ? fmt::format("{:.0f}%", 100.0 * r.flops / sec / 1e9 / rate)
                                    : std::string("-");
    };
    const std::string ref_s = ref.ok ? fmt::format("{:.2f}", r.ref) : "-";
    const std::string speed = ref.ok && r.ours > 0 ? fmt::format("{:.1f}x", r.ref / r.ours) : "-";
    std::printf("  %-8s %9.1f | %9.2f %7s | %9s %7s | %8s\n", r.name.c_str(), r.flops / 1e9, r.ours,
                pct(r.ours).c_str(), ref_s.c_str(), ref.ok ? pct(r.ref).c_str() : "-",
                speed.c_str());
  }
  const double bound = (fh + ff + fs) / 1e9 / rate;
  std::printf("  layer time / (FLOP count at the SGEMM rate): gptqd %.2fx", ours.total / bound);
  if (ref.ok) std::printf(", reference %.2fx", ref.total / bound);
  std::printf("\n  CPU seconds: gptqd %.1f", ours.cpu);
  if (ref.ok)
    std::printf(", reference %.1f (with Python start-up): %.1fx", ref.cpu, ref.cpu / ours.cpu);
  std::printf("\n");
  if (ref.ok)
    std::printf("  codes identical %.4f, loss gptqd %.6g vs reference %.6g (%.1e relative)\n",
                identical, ours.loss, ref.loss, std::fabs(ours.loss - ref.loss) / ref.loss);
  std::fflush(stdout);
}

int run(const Args& a) {
  namespace fs = std::filesystem;
  const bool own_dir = a.workdir.empty();
  const fs::path dir = own_dir ? fs::temp_directory_path() / fmt::format("gptq_layer-{}", getpid())
                               : fs::path(a.workdir);
  fs::create_directories(dir);
  auto be = make_cpu_backend(a.threads);
  const int64_t rate_n = a.quick ? 2048 : 4096;
  std::printf("gptq_layer: %d threads, load average %s\n", a.threads,
              bench::load_average().c_str());
  if (a.reference) std::printf("reference: %s %s\n", a.python.c_str(), a.script.c_str());
  for (const Shape& s : a.shapes) {
    std::vector<float> w, x;
    make_layer(*be, s.rows, s.cols, a.tokens, 1234 + s.cols, &w, &x);
    const std::string in = (dir / "layer.safetensors").string();
    const std::string out = (dir / "reference.safetensors").string();
    if (a.reference)
      write_safetensors(in, {{"weight", DType::F32, {s.rows, s.cols}, w.data()},
                             {"inputs", DType::F32, {a.tokens, s.cols}, x.data()}});
    for (bool act : a.act_orders) {
      // The rate each case is measured against, taken just before it: on a
      // shared machine the rate available changes from minute to minute.
      const double rate = sgemm_rate(*be, rate_n);
      std::printf("\nSGEMM %.1f GFLOP/s (best of 3, %lld^3), load average %s\n", rate,
                  static_cast<long long>(rate_n), bench::load_average().c_str());
      Phases ours;
      Buffer xd(*be, x);
      const double cpu0 = cpu_seconds(RUSAGE_SELF);
      auto t0 = SteadyClock::now();
      std::vector<float> h;
      {
        HessianAccumulator acc(*be, s.cols);
        acc.add(xd.data(), a.tokens, a.tokens);
        be->synchronize();
        ours.hessian = seconds_since(t0);
        h = acc.to_host();
      }
      GptqOptions opt;
      opt.bits = 4;
      opt.group_size = 128;
      opt.act_order = act;
      opt.label = "bench";
      const QuantizedLayer q = gptq_quantize(*be, w.data(), s.rows, s.cols, h.data(), opt);
      ours.total = seconds_since(t0);
      ours.cpu = cpu_seconds(RUSAGE_SELF) - cpu0;
      ours.prepare = q.seconds.prepare;
      ours.factor = q.seconds.factor;
      ours.sweep = q.seconds.sweep;
      // The Hessian's copy to the host (what quantize_block does) counts as "other".
      ours.finish = ours.total - ours.hessian - ours.prepare - ours.factor - ours.sweep;
      ours.loss = q.loss;
      h = std::vector<float>();

      Phases ref;
      double identical = 0;
      if (a.reference) {
        ref = run_reference(a, in, out, act);
        if (ref.ok) {
          const SafetensorsFile r = SafetensorsFile::open(out);
          const TensorInfo* c = r.find("codes");
          GPTQD_CHECK(c && c->nbytes() == q.codes.size(), "reference codes missing or misshapen");
          const uint8_t* rc = r.data(*c);
          int64_t same = 0;
          for (size_t i = 0; i < q.codes.size(); ++i) same += rc[i] == q.codes[i];
          identical = static_cast<double>(same) / static_cast<double>(q.codes.size());
        }
      }
      print_case(a, rate, s, act, ours, ref, identical);
    }
  }
  std::printf("\nload average at the end: %s\n", bench::load_average().c_str());
  if (own_dir) fs::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  gptqd::cpu::choose_blas_kernels(argv);  // the kernels gptqd itself runs
  try {
    return gptqd::run(gptqd::parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gptq_layer: %s\n", e.what());
    return 1;
  }
}
