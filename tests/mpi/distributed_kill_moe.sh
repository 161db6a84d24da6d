#!/usr/bin/env bash
# distributed_kill.sh on a mixture of experts (the 4-block Qwen2-MoE of distributed_layouts_moe):
# a rank killed mid-block, and the rerun resumes to the uninterrupted run's checkpoint bit for
# bit, expert layers and their token counts included (issue 19 item 8), with the experts sharded
# over the replicas and their calibration sent to the owners as activations.
GPTQD_TEST_FAMILY=moe exec bash "$(dirname "$0")/distributed_kill.sh"
