// parallel.factorization auto (coordinator/factorization_auto.h): the faster of replicated and
// distributed by the plan's estimate, per replica count and route. Each case prints the two
// estimates it compares.
#include <gtest/gtest.h>

#include <cstdio>

#include "base/check.h"
#include "coordinator/factorization_auto.h"
#include "coordinator/plan_estimate.h"

namespace gptqd {
namespace {

ModelSpec bloom(int64_t hidden, int64_t layers, int64_t vocab, int64_t heads) {
  ModelConfig c;
  c.hidden = hidden;
  c.n_head = heads;
  c.head_dim = hidden / heads;
  c.ffn = 4 * hidden;
  c.vocab = vocab;
  c.n_layer = layers;
  return ModelSpec::of(c);
}

ModelSpec bloom176b() { return bloom(14336, 70, 250880, 112); }
ModelSpec tiny() { return bloom(64, 4, 1000, 4); }

Workload automatic(FactorRoute route, bool fast) {
  Workload w;  // 128 x 2048, true_sequential, one run
  w.factorization = FactorSetting::kAuto;
  w.factor_route = route;
  w.fast = fast;
  return w;
}

FactorDecision decide(const ModelSpec& d, const Plan& p, const Workload& w, const Machine& m,
                      const char* name) {
  const FactorDecision fd = decide_factorization(p, d, w, m);
  std::printf("  %s: %s\n", name, describe_factor_decision(fd).c_str());
  return fd;
}

// BLOOM-176B on 8 GPUs (one stage of 8 replicas): every replica factorizing 263 TFLOP per block
// alone costs more than sharing it and moving U.
TEST(FactorizationAuto, DistributedWinsForBloom176bOnEightGpus) {
  const ModelSpec d = bloom176b();
  const Plan p = make_plan(d, 8, 1, 128);
  const FactorDecision fd =
      decide(d, p, automatic(FactorRoute::kCusolverMp, true), Machine{}, "bloom-176b 1 x 8");
  EXPECT_TRUE(fd.automatic);
  EXPECT_TRUE(fd.distributed);
  EXPECT_EQ(fd.replicas, 8);
  EXPECT_LT(fd.distributed_s, fd.replicated_s);
  EXPECT_GT(fd.distributed_s, 0);
}

// A tiny model on 2 CPU ranks: the factorizations are microseconds, the traffic of the
// distributed one (12 / sqrt(2) + 2 cols^2 bytes per layer) and ScaLAPACK's slower rate are not.
TEST(FactorizationAuto, ReplicatedWinsForATinyModelOnTwoCpuRanks) {
  const ModelSpec d = tiny();
  Workload w = automatic(FactorRoute::kScalapack, false);
  w.nsamples = 8;
  w.seqlen = 32;
  const Plan p = make_plan(d, 2, 1, 8);
  const FactorDecision fd = decide(d, p, w, Machine{}, "tiny 1 x 2, CPU");
  EXPECT_FALSE(fd.distributed);
  EXPECT_LT(fd.replicated_s, fd.distributed_s);
}

// One replica per stage: nothing to share, the two estimates are equal and the tie goes to
// replicated.
TEST(FactorizationAuto, OneReplicaTiesAndStaysReplicated) {
  const ModelSpec d = bloom176b();
  const Plan p = make_plan(d, 8, 8, 128);
  const FactorDecision fd =
      decide(d, p, automatic(FactorRoute::kCusolverMp, true), Machine{}, "bloom-176b 8 x 1");
  EXPECT_FALSE(fd.distributed);
  EXPECT_DOUBLE_EQ(fd.distributed_s, fd.replicated_s);
  EXPECT_NE(describe_factor_decision(fd).find("a tie goes to replicated"), std::string::npos);
}

// The route is part of the decision: with the distributed factorization's traffic between
// 1 - 1.6 / R and 1 - 1 / R of the replicated factorization's time, cuSOLVERMp (full rate)
// wins and reference ScaLAPACK (kScalapackSlowdown times slower) loses, at the same replicas.
TEST(FactorizationAuto, TheRouteDecidesBetweenCusolverMpAndScalapack) {
  const ModelSpec d = bloom176b();
  const Plan p = make_plan(d, 2, 1, 128);
  Machine m;
  Workload w = automatic(FactorRoute::kCusolverMp, true);
  // Seconds of the replicated factorization per block and of the distributed one's own traffic.
  Workload fixed = w;
  fixed.factorization = FactorSetting::kReplicated;
  const PlanEstimate rep = estimate_plan(p, d, fixed, m);
  fixed.factorization = FactorSetting::kDistributed;
  const PlanEstimate dis = estimate_plan(p, d, fixed, m);
  const double factor_s = rep.stages[0].flops_per_block.factor / (m.factor_tflops * 1e12);
  const double extra_bytes =
      dis.stages[0].collective_bytes_per_block - rep.stages[0].collective_bytes_per_block;
  // Link bandwidth that makes the traffic 0.35 of factor_s (between 1 - 0.8 and 1 - 0.5).
  m.link_gbs = extra_bytes / (0.35 * factor_s) / 1e9;
  const FactorDecision gpu = decide(d, p, w, m, "bloom-176b 1 x 2, cuSOLVERMp");
  w.factor_route = FactorRoute::kScalapack;
  const FactorDecision cpu = decide(d, p, w, m, "bloom-176b 1 x 2, ScaLAPACK");
  EXPECT_TRUE(gpu.distributed);
  EXPECT_FALSE(cpu.distributed);
  EXPECT_DOUBLE_EQ(gpu.replicated_s, cpu.replicated_s);  // the replicated route is the same
}

// A CUDA job whose stage cannot use cuSOLVERMp would factorize on the host's CPUs, at a rate the
// plan does not have: auto keeps replicated and says why.
TEST(FactorizationAuto, NoCusolverMpKeepsReplicated) {
  const ModelSpec d = bloom176b();
  const Plan p = make_plan(d, 8, 1, 128);
  const FactorDecision fd = decide(d, p, automatic(FactorRoute::kScalapackBesideGpu, true),
                                   Machine{}, "bloom-176b 1 x 8 without cuSOLVERMp");
  EXPECT_FALSE(fd.distributed);
  EXPECT_EQ(fd.distributed_s, 0);
  EXPECT_NE(describe_factor_decision(fd).find("no rate for the host"), std::string::npos);
}

// Explicit settings are taken as written, whichever is faster.
TEST(FactorizationAuto, ExplicitSettingsAreKept) {
  const ModelSpec d = bloom176b();
  const Plan p = make_plan(d, 8, 1, 128);
  Workload w = automatic(FactorRoute::kCusolverMp, true);
  w.factorization = FactorSetting::kReplicated;
  FactorDecision fd = decide_factorization(p, d, w, Machine{});
  EXPECT_FALSE(fd.automatic);
  EXPECT_FALSE(fd.distributed);
  EXPECT_EQ(estimate_plan(p, d, w, Machine{}).factorization.distributed, false);
  const Plan tiny_plan = make_plan(tiny(), 2, 1, 128);
  w.factorization = FactorSetting::kDistributed;
  fd = decide_factorization(tiny_plan, tiny(), w, Machine{});
  EXPECT_FALSE(fd.automatic);
  EXPECT_TRUE(fd.distributed);
}

// estimate_plan under auto is the faster estimate, and choose_plan compares layouts each with
// its own decision: BLOOM-176B's 8 ranks as 1 x 8 with the distributed factorization.
TEST(FactorizationAuto, EstimatesAndLayoutsUseTheDecision) {
  const ModelSpec d = bloom176b();
  Workload w = automatic(FactorRoute::kCusolverMp, true);
  w.runs = 2;
  const Machine m;
  const Plan p = choose_plan(d, 8, 0, w, m);
  const PlanEstimate e = estimate_plan(p, d, w, m);
  EXPECT_TRUE(e.factorization.automatic);
  EXPECT_TRUE(e.factorization.distributed);
  EXPECT_DOUBLE_EQ(e.job_seconds, e.factorization.distributed_s);
  std::printf("  bloom-176b on 8 ranks: %d x %d, one run %.1f min, job %.1f min\n", p.stages,
              p.replicas, e.run_seconds / 60, e.job_seconds / 60);
  EXPECT_EQ(p.stages, 1);
  EXPECT_EQ(parse_factor_setting("auto"), FactorSetting::kAuto);
  EXPECT_EQ(parse_factor_setting("distributed"), FactorSetting::kDistributed);
  EXPECT_THROW(parse_factor_setting("fastest"), InputError);
}

}  // namespace
}  // namespace gptqd
