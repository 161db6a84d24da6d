// Pieces shared by gptq_quantize and rtn_quantize: option checks, the group
// layout (counts, g_idx), per-group parameters and the assembly of the result
// in original column order. Internal to worker/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "worker/gptq.h"

namespace gptqd::gptq_detail {

// opt.label, or "layer" when it is empty: the name errors and logs carry.
std::string label_of(const GptqOptions& opt);

// Throws gptqd::Error naming the label when the shape or an option is invalid.
void validate(const GptqOptions& opt, int64_t rows, int64_t cols);

// Throws gptqd::Error naming the label and the first non-finite element of the
// host matrix x [rows, cols] (`what`: "weight", "Hessian"), then `why` (may be
// empty): what the user should look at.
void check_finite(const float* x, int64_t rows, int64_t cols, const char* what,
                  const GptqOptions& opt, const char* why = "");

QuantGrid quant_grid(const GptqOptions& opt);

// The group size the loops use: -1 stays -1 (one group, params taken once);
// a size above cols becomes cols (the same single group, and no overflow in
// the index arithmetic). Needs a validated opt.
int64_t effective_group_size(const GptqOptions& opt, int64_t cols);

// 1 for group_size -1, else ceil(cols / group_size).
int64_t group_count(int64_t cols, int64_t group_size);

// Parameters of every group of w (backend memory [rows, cols], row stride cols)
// in column order: group g covers columns [g*gs, min((g+1)*gs, cols)), the whole
// row for gs == -1. scale and zero are backend memory [groups, rows].
void params_of_groups(Backend& be, const float* w, int64_t rows, int64_t cols, int64_t group_size,
                      const QuantGrid& grid, float* scale, float* zero);

// AutoGPTQ's g_idx for each original column (see gptq.h).
std::vector<int32_t> make_g_idx(const std::vector<int32_t>& perm, int64_t group_size,
                                bool act_order, bool static_groups);

// Fills out.codes and out.dequant in original column order from codes in
// processing order (codes_proc[r * cols + j] is original column out.perm[j]).
// out.rows, cols, scales, zeros, g_idx and perm must be set. dequant is
// computed here from the codes, so it equals scales * (codes - zeros) exactly
// whatever backend produced the codes.
void assemble(QuantizedLayer& out, const std::vector<uint8_t>& codes_proc);

}  // namespace gptqd::gptq_detail
