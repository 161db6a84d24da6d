// `gptqd eval CONFIG [--run NAME] [--threads N]`: perplexity of the original model and, for
// each run of the job's checkpoint, of its round-to-nearest baseline (rtn_quantize of the
// original weights at the run's settings, computed here) and of its GPTQ weights (dequantized
// from the checkpoint), on the job's eval text with the GPTQ paper's protocol
// (worker/perplexity.h: non-overlapping windows of eval.seqlen tokens).
//
// Under mpirun the windows are split into contiguous ranges over the ranks; every rank loads
// the whole model (one block at a time) and the activations of its windows, so this scales the
// time, not the memory per rank, and suits models that fit one node. The per-window losses are
// gathered on rank 0 and summed in window order: the result does not depend on the number of
// ranks (up to BLAS rounding inside each window).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gptqd {

struct EvalOptions {
  std::string config_path;
  std::string run;  // empty: every run of the checkpoint
  int threads = 0;  // CPU threads per rank; 0 = cores / ranks on the node
};

struct EvalRow {
  std::string run;  // empty for the original model
  int bits = 0;     // 0 for the original model
  int64_t group_size = 0;
  std::string method;  // "original", "RTN" or "GPTQ"
  double perplexity = 0;
};

struct EvalReport {
  std::string model, text, checkpoint;
  int64_t seqlen = 0, windows = 0, text_tokens = 0;
  std::string specials;       // what the tokenizer adds (Tokenizer::special_tokens_summary)
  std::vector<EvalRow> rows;  // the original model first, then RTN and GPTQ of each run
};

// Collective over comm. Validates everything on every rank before any forward (the job, the
// model, eval.text and the tokenizer, the checkpoint: it must exist, hold NAME when given, have
// every block of each selected run complete, and match the model's shapes and biases), then
// evaluates. Returns 0 with *report filled identically on every rank, or 1 after one error
// line (bad input: InputError naming the culprit, e.g. the run and its missing blocks).
int run_eval(const EvalOptions& opt, MPI_Comm comm, EvalReport* report);

// The table rank 0 prints: a header line, then columns run, bits, group, method, perplexity
// and the difference to the original.
std::string format_eval_table(const EvalReport& report);

}  // namespace gptqd
