// Element types and devices: names, sizes and the bf16/f16 conversions.
// Not math: kernels live under src/kernels.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

namespace moxing {

/// Every element type, one row each, and the only list of them: the enum, the count, sizes,
/// names, is_floating, visit_dtype and dtype_of are all generated from it. Columns:
///   X(enumerator, C++ element type, short name, safetensors name, torch name, is floating)
/// Adding a dtype is one row here (plus the kernels that support it).
#define MOXING_FORALL_DTYPES(X)                                       \
  X(f32, float, "f32", "F32", "torch.float32", true)                  \
  X(f64, double, "f64", "F64", "torch.float64", true)                 \
  X(bf16, ::moxing::BFloat16, "bf16", "BF16", "torch.bfloat16", true) \
  X(f16, ::moxing::Half, "f16", "F16", "torch.float16", true)         \
  X(i64, int64_t, "i64", "I64", "torch.int64", false)                 \
  X(i32, int32_t, "i32", "I32", "torch.int32", false)                 \
  X(u8, uint8_t, "u8", "U8", "torch.uint8", false)                    \
  X(i8, int8_t, "i8", "I8", "torch.int8", false)                      \
  X(boolean, bool, "bool", "BOOL", "torch.bool", false)

/// The quantized weight types, the rest of the same table: ggml's block layouts bit for bit,
/// so GGUF tensors load without a copy. A tensor of one holds blocks of weights along its
/// last dimension (which must be a multiple of the block), each block a few scales and the
/// packed codes. They are not element types: kernels read them as blocks (ops/quant.h), and
/// .to(f32) dequantizes, .to(q4_k) quantizes. Columns:
///   Q(enumerator, short name, ggml type number, weights per block, bytes per block)
#define MOXING_FORALL_QUANT_DTYPES(Q) \
  Q(q8_0, "q8_0", 8, 32, 34)          \
  Q(q4_0, "q4_0", 2, 32, 18)          \
  Q(q4_1, "q4_1", 3, 32, 20)          \
  Q(q4_k, "q4_k", 12, 256, 144)       \
  Q(q6_k, "q6_k", 14, 256, 210)

/// Element type of a tensor. f32 is the default; f64 serves gradcheck and references.
enum class DType : uint8_t {
#define MOXING_DTYPE_ENUM(e, T, name, st, torch, fl) e,
  MOXING_FORALL_DTYPES(MOXING_DTYPE_ENUM)
#undef MOXING_DTYPE_ENUM
#define MOXING_QDTYPE_ENUM(e, name, ggml, block, bytes) e,
      MOXING_FORALL_QUANT_DTYPES(MOXING_QDTYPE_ENUM)
#undef MOXING_QDTYPE_ENUM
};

/// Number of element dtypes (rows of MOXING_FORALL_DTYPES).
inline constexpr int kNumElementDTypes = 0
#define MOXING_DTYPE_COUNT(e, T, name, st, torch, fl) +1
    MOXING_FORALL_DTYPES(MOXING_DTYPE_COUNT)
#undef MOXING_DTYPE_COUNT
    ;
/// Number of quantized dtypes (rows of MOXING_FORALL_QUANT_DTYPES).
inline constexpr int kNumQuantDTypes = 0
#define MOXING_QDTYPE_COUNT(e, name, ggml, block, bytes) +1
    MOXING_FORALL_QUANT_DTYPES(MOXING_QDTYPE_COUNT)
#undef MOXING_QDTYPE_COUNT
    ;
/// Number of dtypes of both kinds (kernel tables have a slot for each).
inline constexpr int kNumDTypes = kNumElementDTypes + kNumQuantDTypes;

/// Every element dtype in table order, for loops over all of them.
inline constexpr std::array<DType, kNumElementDTypes> kAllDTypes{
#define MOXING_DTYPE_LIST(e, T, name, st, torch, fl) DType::e,
    MOXING_FORALL_DTYPES(MOXING_DTYPE_LIST)
#undef MOXING_DTYPE_LIST
};
/// Every quantized dtype in table order.
inline constexpr std::array<DType, kNumQuantDTypes> kQuantDTypes{
#define MOXING_QDTYPE_LIST(e, name, ggml, block, bytes) DType::e,
    MOXING_FORALL_QUANT_DTYPES(MOXING_QDTYPE_LIST)
#undef MOXING_QDTYPE_LIST
};

/// True for the block-quantized weight types (q8_0, q4_0, q4_1, q4_k, q6_k).
inline constexpr bool is_quantized(DType t) { return static_cast<int>(t) >= kNumElementDTypes; }
/// Size of one element in bytes; an error for a quantized type (see dtype_block_bytes).
size_t dtype_size(DType t);
/// Weights per block: 1 for an element type, 32 or 256 for a quantized one.
int64_t dtype_block_numel(DType t);
/// Bytes per block: dtype_size for an element type.
size_t dtype_block_bytes(DType t);
/// Bytes that numel values of t take; numel must be whole blocks (an error names the type).
size_t dtype_nbytes(DType t, int64_t numel);
/// ggml's number for a quantized type (GGUF's tensor type), nullopt for an element type.
std::optional<uint32_t> dtype_ggml_type(DType t);
/// The quantized dtype of a ggml type number, nullopt when it is not one of them.
std::optional<DType> quant_dtype_of_ggml(uint32_t ggml_type);
/// Short name as printed and as used in files ("f32", "i64", "bool").
const char* dtype_name(DType t);
/// The dtype with a short name ("f32", "bool"), or nullopt.
std::optional<DType> dtype_from_name(const std::string& name);
/// Name in safetensors headers: "F32", "BF16", "BOOL"; nullptr for a quantized type
/// (safetensors has none: those are stored in GGUF).
const char* dtype_safetensors_name(DType t);
/// The dtype with a safetensors name ("F32"), or nullopt.
std::optional<DType> dtype_from_safetensors_name(const std::string& name);
/// PyTorch's name: "torch.float32", "torch.bool"; nullptr for a quantized type.
const char* dtype_torch_name(DType t);
/// True for f32, f64, bf16, f16 (not for the quantized types: they do not compute).
bool is_floating(DType t);

/// Kind of device a tensor lives on. meta holds shapes and dtypes but no bytes; cuda is
/// reserved for a CUDA build.
enum class DeviceType : uint8_t { cpu, cuda, meta };
inline constexpr int kNumDeviceTypes = 3;

/// A device: its type and index (index 0 for the cpu and meta).
struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device&) const = default;
};
inline constexpr Device kCPU{DeviceType::cpu, 0};
/// Shapes only: a tensor on meta has a shape, strides and a dtype and no data.
inline constexpr Device kMeta{DeviceType::meta, 0};
/// "cpu", "meta" or "cuda:0".
std::string device_name(Device d);
/// Parses "cpu", "meta", "cuda" or "cuda:N"; an error lists the valid forms.
Device parse_device(const std::string& name);

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
