#!/usr/bin/env bash
# distributed_layouts.sh with calibration.inputs: original (issue 21 item 2): the stages forward
# the original model first and then quantize at the same time, each from its kept input. The
# same guarantees: the same replica count gives bit-identical checkpoints whatever the stage
# split or the activations' placement; other replica counts differ only by the Hessians'
# summation order.
GPTQD_TEST_INPUTS=original exec bash "$(dirname "$0")/distributed_layouts.sh"
