// Element types and devices: names, sizes and the bf16/f16 conversions.
// Not math: kernels live under src/kernels.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace moxing {

/// Element type of a tensor. f32 is the default; f64 serves gradcheck and references.
enum class DType : uint8_t { f32, f64, bf16, f16, i64, i32, u8, boolean };
inline constexpr int kNumDTypes = 8;

/// Size of one element in bytes.
size_t dtype_size(DType t);
/// Short name as printed and as used in files ("f32", "i64", "bool").
const char* dtype_name(DType t);
/// True for f32, f64, bf16, f16.
bool is_floating(DType t);

/// Kind of device a tensor lives on. Only cpu exists in this build; cuda is reserved.
enum class DeviceType : uint8_t { cpu, cuda };
inline constexpr int kNumDeviceTypes = 2;

/// A device: its type and index (index 0 for the cpu).
struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device&) const = default;
};
inline constexpr Device kCPU{DeviceType::cpu, 0};
/// "cpu" or "cuda:0".
std::string device_name(Device d);

/// bf16 storage type: the upper 16 bits of an IEEE f32.
struct BFloat16 {
  uint16_t bits = 0;
};
/// f16 storage type: IEEE 754 binary16.
struct Half {
  uint16_t bits = 0;
};

/// f32 -> bf16 with round-to-nearest-even (NaN stays NaN).
inline BFloat16 to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<uint16_t>((u >> 16) | 0x40)};
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return BFloat16{static_cast<uint16_t>((u + rounding) >> 16)};
}
inline float from_bf16(BFloat16 b) {
  uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
/// f32 -> f16 with round-to-nearest-even, overflow to inf, subnormals kept.
Half to_f16(float f);
float from_f16(Half h);

}  // namespace moxing
