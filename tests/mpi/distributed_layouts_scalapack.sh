#!/usr/bin/env bash
# distributed_layouts.sh with parallel.factorization: distributed (ScaLAPACK across each
# stage's replicas): the same guarantees as the replicated factorization.
GPTQD_TEST_FACTORIZATION=distributed exec bash "$(dirname "$0")/distributed_layouts.sh"
