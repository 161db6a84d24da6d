// Built only as the cusolvermp_symbols shared library (worker/CMakeLists.txt), never loaded:
// linking it against libcusolverMp.so.0 checks at build time that the library exports every
// function worker/distributed_factor_gpu.cpp loads with dlsym (which it does at run time only,
// so that gptqd starts on machines without the NVIDIA driver).
#include <cusolverMp.h>

extern "C" const void* const gptqd_cusolvermp_symbols[] = {
    reinterpret_cast<const void*>(&cusolverMpCreate),
    reinterpret_cast<const void*>(&cusolverMpDestroy),
    reinterpret_cast<const void*>(&cusolverMpCreateDeviceGrid),
    reinterpret_cast<const void*>(&cusolverMpDestroyGrid),
    reinterpret_cast<const void*>(&cusolverMpCreateMatrixDesc),
    reinterpret_cast<const void*>(&cusolverMpDestroyMatrixDesc),
    reinterpret_cast<const void*>(&cusolverMpPotrf_bufferSize),
    reinterpret_cast<const void*>(&cusolverMpPotrf),
    reinterpret_cast<const void*>(&cusolverMpPotrs_bufferSize),
    reinterpret_cast<const void*>(&cusolverMpPotrs),
};
