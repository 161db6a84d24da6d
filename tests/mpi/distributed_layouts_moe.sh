#!/usr/bin/env bash
# distributed_layouts.sh on a mixture of experts (tests/fixtures/moe/qwen2_moe made 4 blocks
# deep: 3 routed experts top-1 and a shared expert, 16 linears per block): the same guarantees as
# on BLOOM and Llama (issue 19 item 8): the same replica count gives bit-identical checkpoints
# whatever the stage split or the activations' placement, other replica counts only differ by
# the Hessians' summation order.
GPTQD_TEST_FAMILY=moe exec bash "$(dirname "$0")/distributed_layouts.sh"
