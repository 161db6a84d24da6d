// True-sequential calibration in one forward pass (issue 23 item 4). GPTQ's true-sequential
// order quantizes a block's groups of linears one after the other, each group's Hessian taken
// on the outputs of the groups already quantized. The partial-pass path (worker/
// block_quantizer.cpp) runs the block again from its input for every group, about 2.4 forward
// passes for a Llama block before the quantized one. This one runs the block once: every
// micro-batch is forwarded up to group g's capture and its state there (the residual stream
// h and the workspace buffers the family reads after that point, FamilyForward::resume_buffers)
// is kept for all the replica's samples; once group g is quantized, the forward resumes from
// the kept state through the quantized group to the next capture. The operations and their
// inputs are those of the partial passes, so the codes are the same bit for bit
// (tests/unit/test_sequential_pass.cpp).
//
// Where a family cannot resume (a mixture of experts after its down projections' capture: their
// inputs are every expert's own rows), the pass to that group runs on a copy from the last
// point it can resume at, and the kept state stays there.
//
// Memory: the kept state, sequential_state_floats_per_token() x the samples' tokens, where
// the activations live (device or host; worker/memory_model.h counts it).
#pragma once

#include <functional>

#include "io/model/model_spec.h"
#include "kernels/buffer.h"
#include "worker/block_forward.h"

namespace gptqd {

struct Activations;

// Floats per token of the kept state: the largest over the resumable groups of the live
// buffers' widths, + hidden when the block's input must survive (keep_input).
int64_t sequential_state_floats_per_token(const ModelSpec& spec, bool keep_input);

class SequentialPass {
 public:
  using SliceHook = std::function<void(int64_t first, int64_t count)>;

  // act: the replica's activations, the block's input. keep_input: act.h must still hold the
  // block's input at the end (calibration.inputs original, whose output pass runs the original
  // weights); the residual stream is then kept beside the group inputs. Otherwise act.h is the
  // residual stream, updated in place, and becomes the block's output.
  SequentialPass(Backend& be, const ModelSpec& spec, Activations& act, int64_t micro,
                 bool keep_input);

  // Forwards every micro-batch from where the pass stands to group `group`'s capture (-1: to
  // the block's output, written to act.h; not with keep_input), calling `capture` as
  // block_forward does. `before` is called before a micro-batch is read, `after` once its output
  // is written (the stage's streaming hooks: the first pass reads, the last one writes).
  void run_to(const BlockWeights& w, BlockWorkspace& ws, int group, const LinearCapture& capture,
              const SliceHook& before, const SliceHook& after);

 private:
  // Floats of the kept state from sequence `first` on.
  float* state(int64_t first);
  // The buffers kept at `point` (-1: none), true when the forward can resume there.
  bool live_at(int point, std::vector<int>* live) const;

  Backend& be_;
  const ModelSpec& spec_;
  Activations& act_;
  int64_t micro_;
  bool keep_input_;
  std::vector<int64_t> widths_;  // floats per token of each workspace buffer
  int64_t width_ = 0;            // floats per token of a micro-batch's kept state
  int at_ = -1;                  // the point the kept state is at (-1: the block's input)
  Buffer dev_;                   // the kept state, on the device or
  HostBuffer host_;              // on the host, where the activations are
};

}  // namespace gptqd
