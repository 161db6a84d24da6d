#!/usr/bin/env bash
# distributed_layouts.sh on a Llama-family model (models/tiny-llama: grouped KV heads, 7 linears
# in 4 true-sequential groups per block): the same guarantees as on BLOOM.
GPTQD_TEST_FAMILY=llama exec bash "$(dirname "$0")/distributed_layouts.sh"
