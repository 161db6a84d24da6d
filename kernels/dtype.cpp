#include "kernels/dtype.h"

#include <cstring>

#include "base/check.h"
#include "kernels/fp8.h"

namespace gptqd {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::F8_E4M3:
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
      return 1;
  }
  GPTQD_CHECK(false, "dtype_size: invalid DType value {}", static_cast<int>(t));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F64:
      return "F64";
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F8_E4M3:
      return "F8_E4M3";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  GPTQD_CHECK(false, "dtype_name: invalid DType value {}", static_cast<int>(t));
}

bool parse_dtype(const std::string& s, DType* out) {
  static constexpr DType kAll[] = {DType::F64,     DType::F32, DType::F16, DType::BF16,
                                   DType::F8_E4M3, DType::I64, DType::I32, DType::I16,
                                   DType::I8,      DType::U8,  DType::BOOL};
  for (DType t : kAll) {
    if (s == dtype_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

namespace {

// Element i of an array of T at `src`, which may be unaligned (tensors in a
// safetensors mapping sit at arbitrary byte offsets), hence memcpy.
template <typename T>
T load(const void* src, size_t i) {
  T v;
  std::memcpy(&v, static_cast<const unsigned char*>(src) + i * sizeof(T), sizeof(T));
  return v;
}

template <typename T>
void convert_by_value(const void* src, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<T>(src, i));
}

}  // namespace

void convert_to_f32(DType t, const void* src, size_t n, float* dst) {
  switch (t) {
    case DType::F64:
      return convert_by_value<double>(src, n, dst);
    case DType::F32:
      if (n > 0) std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load<uint16_t>(src, i));
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load<uint16_t>(src, i));
      return;
    case DType::F8_E4M3:
      for (size_t i = 0; i < n; ++i) dst[i] = e4m3fn_to_f32(load<uint8_t>(src, i));
      return;
    case DType::I64:
      return convert_by_value<int64_t>(src, n, dst);
    case DType::I32:
      return convert_by_value<int32_t>(src, n, dst);
    case DType::I16:
      return convert_by_value<int16_t>(src, n, dst);
    case DType::I8:
      return convert_by_value<int8_t>(src, n, dst);
    case DType::U8:
      return convert_by_value<uint8_t>(src, n, dst);
    case DType::BOOL:
      GPTQD_CHECK(false, "convert_to_f32: BOOL tensors have no fp32 meaning");
  }
  GPTQD_CHECK(false, "convert_to_f32: invalid DType value {}", static_cast<int>(t));
}

}  // namespace gptqd
