#include "worker/expert_shards.h"

#include <algorithm>

#include "base/check.h"
#include "base/timing.h"
#include "worker/transport/liveness.h"

namespace gptqd {

int expert_owner(const ReplicaContext& rc, int expert) {
  if (!rc.shard_experts || expert < 0 || rc.size() == 1) return -1;
  return expert % rc.size();
}

bool routes_activations(const ModelSpec& d, int replicas, int64_t samples, int64_t seq,
                        const MoeConfig& moe, int input) {
  const LinearSpec& l = d.linears[static_cast<size_t>(d.input_members(input)[0])];
  if (l.expert < 0 || replicas < 2 || moe.experts != "sharded" || moe.exchange == "hessians")
    return false;
  if (moe.exchange == "activations") return true;
  GPTQD_CHECK(moe.exchange == "auto", "moe.exchange {}", moe.exchange);
  // Expected rows of one expert on one replica: every token with moe.calibration all, else the
  // expectation of a balanced router. Rows x width moved against width x width.
  const double tokens = static_cast<double>(samples) * seq / replicas;
  const double rows = moe.calibration == "all" ? tokens
                                               : tokens * d.config.experts_per_tok /
                                                     std::max<int64_t>(d.config.n_experts, 1);
  return rows < static_cast<double>(l.in);
}

std::string describe_expert_exchange(const ModelSpec& spec, int replicas, int64_t samples,
                                     int64_t seq, const MoeConfig& moe) {
  // Expert 0's inputs stand for every expert's (all experts have the same shapes), in the first
  // block kind that has experts (DeepSeek-V3's block 0 is dense: ModelSpec::kinds).
  int kind = 0;
  while (kind + 1 < spec.n_kinds() && spec.kind(kind).dense_mlp) ++kind;
  const ModelSpec& d = spec.kind(kind);
  std::string out;
  for (int k = 0; k < d.n_inputs; ++k) {
    const LinearSpec& l = d.linears[static_cast<size_t>(d.input_members(k)[0])];
    if (l.expert != 0 || replicas < 2 || moe.experts != "sharded") continue;
    std::string names;
    for (int i : d.input_members(k)) {
      const std::string& m = d.linears[static_cast<size_t>(i)].module;
      names += (names.empty() ? "" : "/") + m.substr(m.rfind('.') + 1);
    }
    out += fmt::format(
        "{}{} for the experts' {} inputs (width {})", out.empty() ? "" : ", ",
        routes_activations(d, replicas, samples, seq, moe, k) ? "activations" : "Hessians", names,
        l.in);
  }
  return out;
}

ExpertOutbox::ExpertOutbox(Backend& be, const ModelSpec& d, const ReplicaContext& rc,
                           const MoeConfig& moe, int64_t seq, int64_t chunk_rows)
    : be_(&be),
      rc_(&rc),
      chunk_rows_(std::max<int64_t>(chunk_rows, 1)),
      routes_(static_cast<size_t>(d.n_inputs), false),
      open_(static_cast<size_t>(d.n_inputs), false),
      owner_(static_cast<size_t>(d.n_inputs), -1),
      cols_(static_cast<size_t>(d.n_inputs), 0),
      rows_(static_cast<size_t>(d.n_inputs)),
      count_(static_cast<size_t>(d.n_inputs), 0) {
  for (int k = 0; k < d.n_inputs; ++k) {
    const LinearSpec& l = d.linears[static_cast<size_t>(d.input_members(k)[0])];
    owner_[k] = expert_owner(rc, l.expert);
    cols_[k] = l.in;
    routes_[k] =
        rc.shard_experts && routes_activations(d, rc.size(), rc.total_samples, seq, moe, k);
  }
}

bool ExpertOutbox::take(int input, const float* x, int64_t tokens) {
  const size_t k = static_cast<size_t>(input);
  if (!routes_[k]) return false;
  if (!open_[k]) return true;
  count_[k] += tokens;
  if (owner_[k] == rc_->rank()) return false;
  std::vector<float>& out = rows_[k];
  const size_t at = out.size();
  out.resize(at + static_cast<size_t>(tokens * cols_[k]));
  be_->to_host(out.data() + at, x, tokens * cols_[k]);
  return true;
}

void ExpertOutbox::deliver(const std::vector<int>& inputs,
                           std::vector<std::unique_ptr<HessianAccumulator>>& acc,
                           std::vector<int64_t>* totals) {
  const int me = rc_->rank();
  std::vector<int> routing;
  for (int k : inputs)
    if (routes(k)) routing.push_back(k);
  if (routing.empty()) return;
  // Every routing input's rows over the replicas, in one exchange.
  std::vector<double> counts(routing.size());
  for (size_t j = 0; j < routing.size(); ++j) counts[j] = static_cast<double>(count_[routing[j]]);
  rc_->group->allreduce(counts.data(), static_cast<int64_t>(counts.size()), ReduceOp::kSum);
  report_progress("the experts' routed inputs to their owners");
  for (size_t j = 0; j < routing.size(); ++j) {
    const size_t k = static_cast<size_t>(routing[j]);
    (*totals)[k] = static_cast<int64_t>(counts[j]);
    const int owner = owner_[k];
    const int64_t cols = cols_[k];
    std::vector<float> all;
    std::vector<int64_t> offsets;
    rc_->group->gather_rows(rows_[k].data(), static_cast<int64_t>(rows_[k].size()) / cols, cols,
                            owner, &all, &offsets);
    std::vector<float>().swap(rows_[k]);
    open_[k] = false;
    count_[k] = 0;
    if (owner != me) continue;
    GPTQD_CHECK(acc[k] != nullptr, "no accumulator for owned input {}", k);
    // Each replica's rows in its order, uploaded chunk_rows_ at a time.
    Buffer x(*be_, std::min(offsets.back(), chunk_rows_) * cols);
    for (int r = 0; r < rc_->size(); ++r) {
      if (r == me) continue;
      for (int64_t i = offsets[static_cast<size_t>(r)]; i < offsets[static_cast<size_t>(r) + 1];
           i += chunk_rows_) {
        const int64_t n = std::min(chunk_rows_, offsets[static_cast<size_t>(r) + 1] - i);
        be_->to_device(x.data(), all.data() + i * cols, n * cols);
        acc[k]->add(x.data(), n, n);
      }
    }
  }
}

void share_expert_layers(Backend& be, const ModelSpec& d, BlockWeights& w, BlockResult& result,
                         const std::vector<int>& layers, const ReplicaContext& rc) {
  if (layers.empty()) return;
  const int parts = rc.size(), me = rc.rank();
  const size_t n = layers.size();
  std::vector<double> sums(3 * n, 0.0), maxes(2 * n, 0.0);
  for (size_t j = 0; j < n; ++j) {
    const LinearResult& r = result[static_cast<size_t>(layers[j])];
    if (r.row_end == r.row_begin) continue;  // another replica's: zeros
    sums[3 * j] = r.stats.gptq_loss;
    sums[3 * j + 1] = r.stats.gptq_err;
    sums[3 * j + 2] = r.stats.rtn_err;
    maxes[2 * j] = r.stats.seconds;
    maxes[2 * j + 1] = r.stats.damp;
  }
  report_progress("the experts' statistics from their owners");
  rc.group->allreduce(sums.data(), static_cast<int64_t>(sums.size()), ReduceOp::kSum);
  rc.group->allreduce(maxes.data(), static_cast<int64_t>(maxes.size()), ReduceOp::kMax);
  for (size_t j = 0; j < n; ++j) {
    const int i = layers[j];
    LinearResult& r = result[static_cast<size_t>(i)];
    r.stats.gptq_loss = sums[3 * j];
    r.stats.gptq_err = sums[3 * j + 1];
    r.stats.rtn_err = sums[3 * j + 2];
    r.stats.seconds = maxes[2 * j];
    r.stats.damp = maxes[2 * j + 1];
    PhaseClock clock(be);
    LinearWeights& lw = w.linears[static_cast<size_t>(i)];
    const int owner = expert_owner(rc, d.linears[static_cast<size_t>(i)].expert);
    std::vector<float> full(static_cast<size_t>(lw.out * lw.in));
    if (owner == me) std::copy(r.q.dequant.begin(), r.q.dequant.end(), full.begin());
    // The owner provides every row, the others none.
    std::vector<int64_t> offsets(static_cast<size_t>(parts) + 1, 0);
    for (int m = owner + 1; m <= parts; ++m) offsets[static_cast<size_t>(m)] = lw.out;
    report_progress(fmt::format("{} from its owner", d.linears[static_cast<size_t>(i)].module));
    rc.group->allgather_rows(full.data(), offsets, lw.in);
    if (owner != me) set_linear_weights(be, lw, full);
    r.phases.gather += clock.lap();
  }
}

}  // namespace gptqd
