#!/usr/bin/env bash
# distributed_kill.sh with calibration.inputs: quantized_in_stage (issue 21 item 2's hybrid):
# the stages work at the same time and each feeds its next block through the quantized one, so
# the rerun after the kill forwards stage 1's resumed block 2 through its checkpoint codes to
# quantize block 3; the result equals the uninterrupted run bit for bit.
GPTQD_TEST_INPUTS=quantized_in_stage exec bash "$(dirname "$0")/distributed_kill.sh"
