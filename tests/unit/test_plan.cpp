// The layout of a job over ranks (coordinator/plan.h), its estimates
// (coordinator/plan_estimate.h) and the split of samples and rows among replicas
// (worker/block_quantizer.h share_of), against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "base/check.h"
#include "commands/command_line.h"
#include "commands/plan_cmd.h"
#include "coordinator/plan.h"
#include "coordinator/plan_estimate.h"
#include "worker/block_quantizer.h"

namespace gptqd {
namespace {

ModelSpec dims(int64_t hidden, int64_t layers, int64_t vocab = 1000, int64_t heads = 4) {
  ModelConfig c;  // a BLOOM
  c.hidden = hidden;
  c.n_head = heads;
  c.head_dim = hidden / heads;
  c.ffn = 4 * hidden;
  c.vocab = vocab;
  c.n_layer = layers;
  return ModelSpec::of(c);
}

ModelSpec bloom176b() { return dims(14336, 70, 250880, 112); }

TEST(PlanShare, PartsCoverTheRangeAndDifferByAtMostOne) {
  for (int64_t n : {1, 7, 8, 128, 1000}) {
    for (int parts = 1; parts <= 9 && parts <= n; ++parts) {
      int64_t next = 0, lo = n, hi = 0;
      for (int p = 0; p < parts; ++p) {
        const ShareRange r = share_of(n, p, parts);
        EXPECT_EQ(r.begin, next);
        next = r.end;
        lo = std::min(lo, r.size());
        hi = std::max(hi, r.size());
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(hi - lo, 1);
    }
  }
  EXPECT_EQ(share_of(10, 1, 3).begin, 3);  // 10 * 1 / 3
  EXPECT_EQ(share_of(10, 1, 3).end, 6);    // 10 * 2 / 3
}

TEST(PlanLayout, StagesAreContiguousAndBalancedByBytes) {
  const Plan p = make_plan(bloom176b(), 64, 8, 128);
  EXPECT_EQ(p.stages, 8);
  EXPECT_EQ(p.replicas, 8);
  // The embedding weighs 1.46 blocks: stage 0 takes 7 blocks, the others 9.
  ASSERT_EQ(p.stage.size(), 8u);
  EXPECT_EQ(p.stage[0].first_block, 0);
  EXPECT_EQ(p.stage[0].end_block, 7);
  for (int s = 1; s < 8; ++s) {
    EXPECT_EQ(p.stage[s].first_block, p.stage[s - 1].end_block);
    EXPECT_EQ(p.stage[s].end_block - p.stage[s].first_block, 9) << s;
  }
  EXPECT_EQ(p.stage_of(17), 2);
  EXPECT_EQ(p.replica_of(17), 1);
  EXPECT_EQ(p.rank_of(2, 1), 17);
}

TEST(PlanLayout, RefusesLayoutsThatCannotWork) {
  const ModelSpec d = dims(64, 4);
  EXPECT_THROW(make_plan(d, 4, 5, 8), InputError);   // more stages than blocks
  EXPECT_THROW(make_plan(d, 6, 4, 8), InputError);   // 6 ranks in 4 stages
  EXPECT_THROW(make_plan(d, 16, 1, 8), InputError);  // 16 replicas, 8 samples
  try {
    make_plan(d, 16, 1, 8);
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("calibration.nsamples"), std::string::npos) << e.what();
  }
  // 12 ranks, 4 blocks, 8 samples: 1 stage has 12 replicas > 8 samples; 6 and 12 stages
  // exceed the blocks.
  EXPECT_EQ(feasible_stage_counts(d, 12, 8), (std::vector<int>{2, 3, 4}));
}

// The tiny job of the hand-computed tests: 6 samples of 4 tokens, blocks of 4 columns.
Workload tiny_workload() {
  Workload w;
  w.nsamples = 6;
  w.seqlen = 4;
  w.block_size = 4;
  w.file_dtype_bytes = 2;
  return w;
}

// Every rate 1 flop/s and 1 byte/s: seconds = flops and bytes.
Machine unit_rates() {
  Machine m;
  m.tflops = m.bf16_tflops = m.factor_tflops = 1e-12;
  m.link_gbs = m.net_gbs = m.disk_gbs = 1e-9;
  return m;
}

TEST(PlanEstimate, FlopsAndMemoryOfATinyBlockByHand) {
  // h = 8, f = 32; 2 replicas of 3 samples each (6 samples), seqlen 4: T = 12 tokens.
  const ModelSpec d = dims(8, 1, 10, 2);
  Workload w = tiny_workload();
  w.sequential_passes = "partial";
  const Machine m = unit_rates();
  const Plan p = make_plan(d, 2, 1, 6);
  const PlanEstimate e = estimate_plan(p, d, w, m);
  ASSERT_EQ(e.stages.size(), 1u);
  const PhaseFlops& f = e.stages[0].flops_per_block;
  const double T = 12, A = 4 * T * 4 * 8;  // attention: 4 T seqlen h
  // Passes up to dense (2T 3h^2), h_to_4h (2T 4h^2), 4h_to_h (2T (4h^2 + h f)), each with
  // attention, then the full quantized pass 2T (4h^2 + 2 h f) + A.
  EXPECT_DOUBLE_EQ(f.forward,
                   (2 * T * 192 + A) + (2 * T * 256 + A) + (2 * T * 512 + A) + (2 * T * 768 + A));
  EXPECT_FALSE(e.ranks[1].one_pass);
  EXPECT_EQ(e.ranks[1].device.sequential_state, 0u);
  // In one pass (parallel.sequential_passes auto, nothing to bound it here): the full pass
  // alone, and the kept state: 3 samples x 4 tokens x the widest kept input, 4h_to_h's f = 32.
  w.sequential_passes = "auto";
  const PlanEstimate one = estimate_plan(p, d, w, m);
  EXPECT_TRUE(one.ranks[1].one_pass);
  EXPECT_DOUBLE_EQ(one.stages[0].flops_per_block.forward, 2 * T * 768 + A);
  EXPECT_EQ(one.ranks[1].device.sequential_state, 4u * 3 * 4 * 32);
  EXPECT_EQ(one.ranks[1].device_peak, e.ranks[1].device_peak + 4u * 3 * 4 * 32);
  EXPECT_DOUBLE_EQ(f.hessian, 2 * T * (64 + 64 + 64 + 1024));
  EXPECT_DOUBLE_EQ(f.factor, 4.0 / 3.0 * (512 + 512 + 512 + 32768));
  // rows / 2 per replica: qkv 12, dense 4, h_to_4h 16, 4h_to_h 4.
  EXPECT_DOUBLE_EQ(f.sweep, 12 * 64 + 4 * 64 + 16 * 64 + 4 * 1024);
  EXPECT_DOUBLE_EQ(f.stats, 4 * f.sweep);
  // Reduce + broadcast of every H (2 x 4 x cols^2) and the gather of half of every layer.
  EXPECT_DOUBLE_EQ(e.stages[0].collective_bytes_per_block,
                   8.0 * (64 + 64 + 64 + 1024) + 4.0 * (192 + 64 + 256 + 256) / 2);
  const RankEstimate& r = e.ranks[1];
  EXPECT_EQ(r.samples, 3);
  EXPECT_EQ(r.device.block_weights, 4u * (12 * 64 + 13 * 8));
  EXPECT_EQ(r.device.embedding, 4u * (10 * 8 + 2 * 8));
  EXPECT_EQ(r.device.activations, 4u * (3 + 1) * 4 * 8);  // 3 samples + a micro-batch
  EXPECT_EQ(r.device.workspace, 4u * 1 * 4 * (7 * 8 + 32));
  EXPECT_EQ(r.device.scores, 4u * 2 * 4 * 4);  // both heads at once, 4 x 4 each
  EXPECT_EQ(r.weights_file, 2u * (12 * 64 + 13 * 8) + 2u * (10 * 8 + 2 * 8));
  // true_sequential: one accumulator at a time, the largest 4h_to_h's 4 x 32^2.
  EXPECT_EQ(r.device.hessians, 4u * 1024);
  // 4h_to_h's factorization, 4 of its rows per replica, one group: W 4rc, scales and zeros
  // 8r, the damped diagonal 4c, U in fp32 and its fp64 copy 12c^2.
  EXPECT_EQ(r.device.gptq, 4u * 4 * 32 + 8u * 4 + 4u * 32 + 12u * 1024);
  // The embedding is on the device only while the input is embedded, not beside a block.
  EXPECT_EQ(r.device_peak, 512u + 3488 + 1408 + 12960);
  EXPECT_FALSE(r.activations_on_host);
}

// Concurrent stages (calibration.inputs original / quantized_in_stage, plan_estimate.h): stage
// 0 forwards its block once through the original model (a full pass: 2T (4h^2 + 2hf) + A) after
// reading its weights, and the last stage only receives; then each stage quantizes its block
// less the output pass nothing reads. By hand with unit rates on a 2-block model, 2 stages.
TEST(PlanEstimate, ConcurrentStagesByHand) {
  const ModelSpec d = dims(8, 2, 10, 2);
  Workload w = tiny_workload();
  w.nsamples = 6;  // one replica per stage: T = 24 tokens, M = 6 micro-batches
  w.sequential_passes = "partial";
  Machine m = unit_rates();
  m.ranks_per_node = 2;
  const Plan p = make_plan(d, 2, 2, 6);
  ASSERT_EQ(p.stage[0].end_block, 1);
  const PlanEstimate seq = estimate_plan(p, d, w, m);
  w.concurrent = true;
  const PlanEstimate conc = estimate_plan(p, d, w, m);
  const double T = 24, pass = 2 * T * (4 * 64 + 2 * 8 * 32) + 4 * T * 4 * 8;
  const StageEstimate &s0 = conc.stages[0], &s1 = conc.stages[1];
  EXPECT_DOUBLE_EQ(s0.seconds_per_run, seq.stages[0].seconds_per_run - pass);
  EXPECT_DOUBLE_EQ(s1.seconds_per_run, seq.stages[1].seconds_per_run - pass);
  EXPECT_DOUBLE_EQ(s0.original_forward_s, pass + s0.read_s);
  EXPECT_DOUBLE_EQ(s1.original_forward_s, 0);
  // The pipeline: stage 0's last micro-batch leaves at F0, the last stage has nothing to add.
  EXPECT_DOUBLE_EQ(s0.ready_s, s0.original_forward_s);
  EXPECT_DOUBLE_EQ(s1.ready_s, s0.original_forward_s);
  EXPECT_DOUBLE_EQ(conc.original_forward_s, s0.original_forward_s);
  // Stage 0 read its weights in the forward; stage 1 reads them before its first run.
  EXPECT_DOUBLE_EQ(conc.run_seconds, std::max(s0.ready_s + s0.seconds_per_run,
                                              s1.ready_s + s1.read_s + s1.seconds_per_run));
  EXPECT_DOUBLE_EQ(conc.job_seconds, conc.run_seconds);  // one run in tiny_workload
  // One stage: nothing to forward first, the same as the sequential estimate but the skipped
  // output pass.
  const Plan one = make_plan(d, 1, 1, 6);
  w.concurrent = false;
  const PlanEstimate one_seq = estimate_plan(one, d, w, m);
  w.concurrent = true;
  const PlanEstimate one_conc = estimate_plan(one, d, w, m);
  EXPECT_DOUBLE_EQ(one_conc.original_forward_s, 0);
  EXPECT_DOUBLE_EQ(one_conc.run_seconds, one_seq.run_seconds - pass);
  // The kept input: samples x seqlen x hidden fp32 more host memory per rank.
  EXPECT_EQ(conc.ranks[1].host_peak, seq.ranks[1].host_peak + 4u * 24 * 8);
  // In one pass the block is forwarded once; the quantized_in_stage hybrid's last block skips
  // only what follows the last group's capture (4h_to_h's GEMM, 2 T h f), the original mode's
  // the whole pass with the original weights, after the one pass up to 4h_to_h.
  w.sequential_passes = "auto";
  const PlanEstimate hybrid = estimate_plan(p, d, w, m);
  const double tail = 2 * T * 8 * 32;
  EXPECT_DOUBLE_EQ(hybrid.stages[0].flops_per_block.forward, pass);
  EXPECT_DOUBLE_EQ(hybrid.stages[0].seconds_per_run,
                   hybrid.stages[0].compute_s_per_block - tail);
  w.original_inputs = true;
  const PlanEstimate original = estimate_plan(p, d, w, m);
  EXPECT_DOUBLE_EQ(original.stages[0].flops_per_block.forward, pass - tail + pass);
  EXPECT_DOUBLE_EQ(original.stages[0].seconds_per_run,
                   original.stages[0].compute_s_per_block - pass);
}

// The GPU design's rates: forward and Hessian at the bf16 rate under precision fast, the
// factorization at its own rate and, distributed, divided by the replicas plus its traffic.
TEST(PlanEstimate, FastPrecisionAndDistributedFactorization) {
  const ModelSpec d = dims(8, 1, 10, 2);
  Workload w = tiny_workload();
  Machine m = unit_rates();
  m.bf16_tflops = 4e-12;    // 4 flop/s
  m.factor_tflops = 2e-12;  // 2 flop/s
  const Plan p = make_plan(d, 2, 1, 6);
  const PlanEstimate exact = estimate_plan(p, d, w, m);
  w.fast = true;
  w.factorization = FactorSetting::kDistributed;
  const PlanEstimate fast = estimate_plan(p, d, w, m);
  const PhaseFlops& fe = exact.stages[0].flops_per_block;
  const PhaseFlops& ff = fast.stages[0].flops_per_block;
  EXPECT_DOUBLE_EQ(ff.forward, fe.forward);
  EXPECT_DOUBLE_EQ(ff.hessian, fe.hessian);
  EXPECT_DOUBLE_EQ(ff.factor, fe.factor / 2);  // 2 replicas share each factorization
  EXPECT_DOUBLE_EQ(exact.stages[0].compute_s_per_block,
                   fe.forward + fe.hessian + fe.factor / 2 + fe.sweep + fe.stats);
  EXPECT_DOUBLE_EQ(fast.stages[0].compute_s_per_block,
                   (ff.forward + ff.hessian) / 4 + ff.factor / 2 + ff.sweep + ff.stats);
  const double sum_cols2 = 64 + 64 + 64 + 1024;  // the four layers' cols^2
  EXPECT_DOUBLE_EQ(
      fast.stages[0].collective_bytes_per_block,
      exact.stages[0].collective_bytes_per_block + (12 / std::sqrt(2.0) + 2) * sum_cols2);
  // Memory: fast keeps the linears' 12 x 64 weights in bf16 (2 bytes less each; the 13 x 8
  // norm and bias values stay fp32) and adds the bf16 copy of one GEMM's input, the largest
  // being 4h_to_h's 1 x 4 tokens of 32 inputs: 2 x 128 bytes, alive beside the accumulators of
  // a capture forward, not during GPTQ.
  EXPECT_EQ(exact.ranks[1].device.block_weights, 4u * (12 * 64 + 13 * 8));
  EXPECT_EQ(fast.ranks[1].device.block_weights, 2u * 12 * 64 + 4u * 13 * 8);
  EXPECT_EQ(exact.ranks[1].device.bf16_scratch, 0u);
  EXPECT_EQ(fast.ranks[1].device.bf16_scratch, 256u);
  // gptq is the larger phase here: the peak drops by the weights' saving alone.
  EXPECT_EQ(fast.ranks[1].device_peak, exact.ranks[1].device_peak - 2u * 12 * 64);
  DeviceMemory dm = fast.ranks[1].device;
  dm.gptq = 0;
  EXPECT_EQ(dm.peak(), dm.activations + dm.sequential_state + dm.block_weights + dm.workspace +
                           dm.scores + dm.hessians + 256u);
  // One replica: nothing to share, nothing added.
  const Plan one = make_plan(d, 1, 1, 6);
  EXPECT_DOUBLE_EQ(estimate_plan(one, d, w, m).stages[0].flops_per_block.factor, fe.factor);
}

TEST(PlanEstimate, ActivationsGoToTheHostOnlyWhenTheyDoNotFit) {
  const ModelSpec d = bloom176b();
  Workload w;  // 128 x 2048, true_sequential
  Machine m;
  m.device_mem = 80ull << 30;
  // One stage of 8 replicas: 16 samples each, 1.9 GB of activations, fits on the device.
  PlanEstimate e = estimate_plan(make_plan(d, 8, 1, 128), d, w, m);
  EXPECT_FALSE(e.ranks[0].activations_on_host);
  EXPECT_TRUE(e.fits_device);
  // One rank alone on 60 GiB: 128 samples (15 GB) beside a block (10 GB) and the 4h_to_h
  // factorization (43 GB) do not fit; on the host they do.
  m.device_mem = 60ull << 30;
  e = estimate_plan(make_plan(d, 1, 1, 128), d, w, m);
  EXPECT_TRUE(e.ranks[0].activations_on_host);
  EXPECT_TRUE(e.fits_device) << e.ranks[0].device_peak;
  w.activations = ActivationPlacement::kDevice;
  e = estimate_plan(make_plan(d, 1, 1, 128), d, w, m);
  EXPECT_FALSE(e.ranks[0].activations_on_host);
  EXPECT_FALSE(e.fits_device);
}

TEST(PlanEstimate, AutoTakesTheFastestLayoutThatFits) {
  const ModelSpec d = bloom176b();
  Workload w;
  w.runs = 2;
  Machine m;
  m.device_mem = 80ull << 30;
  const Plan p = choose_plan(d, 64, 0, w, m);
  double best = 1e300;
  int best_s = 0;
  for (int s : feasible_stage_counts(d, 64, w.nsamples)) {
    const PlanEstimate e = estimate_plan(make_plan(d, 64, s, w.nsamples), d, w, m);
    if (e.fits() && e.job_seconds < best) {
      best = e.job_seconds;
      best_s = s;
    }
  }
  EXPECT_EQ(p.stages, best_s);
  EXPECT_EQ(choose_plan(d, 64, 8, w, m).stages, 8);  // an explicit count is kept
  // Nothing fits in 1 GiB: the layout with the smallest peak (most replicas) is returned.
  m.device_mem = 1ull << 30;
  EXPECT_EQ(choose_plan(d, 64, 0, w, m).replicas, 64);
}

TEST(PlanCmd, SizesAndRefusals) {
  EXPECT_EQ(parse_size("--gpu-mem", "80GiB"), 80ull << 30);
  EXPECT_EQ(parse_size("--gpu-mem", "80G"), 80ull << 30);
  EXPECT_EQ(parse_size("--gpu-mem", "80GB"), 80000000000ull);
  EXPECT_EQ(parse_size("--host-mem", "1.5TiB"), 3ull << 39);
  EXPECT_EQ(parse_size("--gpu-mem", "1024"), 1024u);
  EXPECT_THROW(parse_size("--gpu-mem", "80 apples"), InputError);
  EXPECT_THROW(parse_size("--gpu-mem", "GiB"), InputError);
  EXPECT_THROW(parse_plan_args({"job.yaml"}), InputError);  // --ranks missing
  EXPECT_THROW(parse_plan_args({"job.yaml", "--ranks", "0"}), InputError);
  EXPECT_THROW(parse_plan_args({"job.yaml", "--ranks", "8", "--dtype", "int3"}), InputError);
  const PlanCmdOptions o = parse_plan_args({"job.yaml", "--ranks", "64", "--gpu-mem", "40GiB"});
  EXPECT_EQ(o.machine.ranks_per_node, 8);
  EXPECT_EQ(o.machine.device_mem, 40ull << 30);
  EXPECT_EQ(parse_plan_args({"job.yaml", "--ranks", "4"}).stages, -1);  // the job file's
  EXPECT_EQ(parse_plan_args({"job.yaml", "--ranks", "4", "--stages", "auto"}).stages, 0);
  EXPECT_EQ(parse_plan_args({"job.yaml", "--ranks", "4", "--stages", "2"}).stages, 2);
  EXPECT_EQ(parse_plan_args({"job.yaml", "--ranks", "4", "--ranks-per-node", "2", "--host-mem",
                             "2TB", "--tflops", "1e2", "--disk-gbs", "0.5"})
                .machine.host_mem,
            2000000000000ull);
  EXPECT_DOUBLE_EQ(parse_plan_args({"job.yaml", "--ranks", "4", "--tflops", "1e2"}).machine.tflops,
                   100.0);
  EXPECT_EQ(parse_plan_args({"job.yaml", "--ranks", "4"}).machine.ranks_per_node, 4);
  EXPECT_EQ(dtype_bytes("bfloat16"), 2);
  EXPECT_EQ(dtype_bytes("F32"), 4);
}

// One error line naming the flag for each kind of bad argument; --help before any check.
TEST(PlanCmd, ArgumentErrors) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"job.yaml"}, "plan: missing --ranks N"},
      {{"--ranks", "2"}, "plan: missing CONFIG"},
      {{"job.yaml", "--ranks", "0"}, "--ranks: 0 is not a positive integer"},
      {{"job.yaml", "--ranks", "2", "--stages", "none"}, "--stages: 'none' is not an integer"},
      {{"job.yaml", "--ranks", "2", "--gpu-mem", "80 apples"}, "--gpu-mem: '80 apples' is not a"},
      {{"job.yaml", "--ranks", "2", "--tflops", "-1"}, "--tflops: -1 is not positive"},
      {{"job.yaml", "--ranks", "2", "--dtype", "int3"}, "--dtype: unknown dtype 'int3'"},
      {{"job.yaml", "--ranks", "2", "--factorization", "fastest"},
       "--factorization: unknown factorization 'fastest' (auto, replicated, distributed)"},
      {{"job.yaml", "--ranks", "2", "--gpus", "8"}, "plan: unknown option '--gpus'"},
      {{"job.yaml", "--ranks"}, "plan: --ranks needs a value"},
      {{"job.yaml", "--ranks", "2", "--ranks", "3"}, "plan: --ranks given more than once"},
  };
  for (const auto& [args, want] : cases) {
    try {
      parse_plan_args(args);
      ADD_FAILURE() << "no InputError; expected " << want;
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(want, 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(parse_plan_args({"--gpus", "-h"}), HelpRequest);
}

}  // namespace
}  // namespace gptqd
