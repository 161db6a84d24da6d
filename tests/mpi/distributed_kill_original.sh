#!/usr/bin/env bash
# distributed_kill.sh with calibration.inputs: original (issue 21 item 2): a rank killed or
# failing while the stages quantize at the same time ends the job promptly, and the rerun
# (every stage taking its input again through the original model) ends bit-identical to the
# uninterrupted run.
GPTQD_TEST_INPUTS=original exec bash "$(dirname "$0")/distributed_kill.sh"
