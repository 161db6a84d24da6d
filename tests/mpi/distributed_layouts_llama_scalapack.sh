#!/usr/bin/env bash
# distributed_layouts_llama.sh with parallel.factorization: distributed.
GPTQD_TEST_FAMILY=llama GPTQD_TEST_FACTORIZATION=distributed exec bash "$(dirname "$0")/distributed_layouts.sh"
