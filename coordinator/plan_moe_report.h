// `gptqd plan` for a mixture-of-experts model (deepseek_v3, kimi_k2, mixtral, qwen2_moe,
// qwen3_moe): the layouts, memory per rank, collective bytes and time per run of
// coordinator/plan_moe.h, printed like the dense plan.
#pragma once

#include <string>

#include "coordinator/plan_report.h"

namespace gptqd {

// True when the job file's model is an MoE model the plan models (reads its config.json's
// model_type only).
bool plan_is_moe(const std::string& job_path);

// Reads the job file and <model.path>/config.json and lays the job out. InputError for a bad
// file or a layout that cannot work.
PlanReport make_moe_plan_report(const PlanCmdOptions& opt);

}  // namespace gptqd
