#!/usr/bin/env bash
# distributed_kill.sh with parallel.factorization: distributed: a rank killed or failing while
# the stage's replicas share a ScaLAPACK grid still ends the job, and the rerun resumes to the
# uninterrupted run's file bit for bit.
GPTQD_TEST_FACTORIZATION=distributed exec bash "$(dirname "$0")/distributed_kill.sh"
