# Shared by tests/mpi/checkpoint_*.sh: the environment ctest sets, Open MPI as root,
# and the writer program and h5py checker both tests drive.
: "${GPTQD_BINARY_DIR:?set by ctest}" "${GPTQD_SOURCE_DIR:?set by ctest}"
: "${OMPI_ALLOW_RUN_AS_ROOT:=1}" "${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:=1}"
: "${OMPI_MCA_rmaps_base_oversubscribe:=1}"
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMPI_MCA_rmaps_base_oversubscribe
MPIEXEC=${MPIEXEC:-mpirun}
WRITER=$GPTQD_BINARY_DIR/tests/ckpt_writer
CHECK=$GPTQD_SOURCE_DIR/tests/mpi/ckpt_check.py
PY=/usr/bin/python3
