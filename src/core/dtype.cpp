// DType and Device names, sizes, and the f16 conversion. The dtype queries are generated
// from the one dtype table in moxing/core/dtype.h.
#include "moxing/core/dtype.h"

#include "moxing/core/error.h"

namespace moxing {

// Each query is a switch generated from MOXING_FORALL_DTYPES, so it never falls out of step.
size_t dtype_size(DType t) {
  switch (t) {
#define MOXING_DTYPE_SIZE(e, T, name, st, torch, fl) \
  case DType::e:                                     \
    return sizeof(T);
    MOXING_FORALL_DTYPES(MOXING_DTYPE_SIZE)
#undef MOXING_DTYPE_SIZE
    default:
      break;
  }
  if (is_quantized(t)) {
    fail("{} is a quantized block type ({} weights in {} bytes): it has no element size",
         dtype_name(t), dtype_block_numel(t), dtype_block_bytes(t));
  }
  fail("unknown dtype {}", static_cast<int>(t));
}

int64_t dtype_block_numel(DType t) {
  switch (t) {
#define MOXING_QDTYPE_BLOCK(e, name, ggml, block, bytes) \
  case DType::e:                                         \
    return block;
    MOXING_FORALL_QUANT_DTYPES(MOXING_QDTYPE_BLOCK)
#undef MOXING_QDTYPE_BLOCK
    default:
      return 1;
  }
}

size_t dtype_block_bytes(DType t) {
  switch (t) {
#define MOXING_QDTYPE_BYTES(e, name, ggml, block, bytes) \
  case DType::e:                                         \
    return bytes;
    MOXING_FORALL_QUANT_DTYPES(MOXING_QDTYPE_BYTES)
#undef MOXING_QDTYPE_BYTES
    default:
      return dtype_size(t);
  }
}

size_t dtype_nbytes(DType t, int64_t numel) {
  const int64_t block = dtype_block_numel(t);
  MOXING_CHECK(numel % block == 0, "{} values are not whole {} blocks of {} weights", numel,
               dtype_name(t), block);
  return static_cast<size_t>(numel / block) * dtype_block_bytes(t);
}

std::optional<uint32_t> dtype_ggml_type(DType t) {
  switch (t) {
#define MOXING_QDTYPE_GGML(e, name, ggml, block, bytes) \
  case DType::e:                                        \
    return ggml;
    MOXING_FORALL_QUANT_DTYPES(MOXING_QDTYPE_GGML)
#undef MOXING_QDTYPE_GGML
    default:
      return std::nullopt;
  }
}

std::optional<DType> quant_dtype_of_ggml(uint32_t ggml_type) {
  for (DType t : kQuantDTypes) {
    if (dtype_ggml_type(t) == ggml_type) return t;
  }
  return std::nullopt;
}

const char* dtype_name(DType t) {
  switch (t) {
#define MOXING_DTYPE_NAME(e, T, name, st, torch, fl) \
  case DType::e:                                     \
    return name;
    MOXING_FORALL_DTYPES(MOXING_DTYPE_NAME)
#undef MOXING_DTYPE_NAME
#define MOXING_QDTYPE_NAME(e, name, ggml, block, bytes) \
  case DType::e:                                        \
    return name;
    MOXING_FORALL_QUANT_DTYPES(MOXING_QDTYPE_NAME)
#undef MOXING_QDTYPE_NAME
  }
  return "?";
}

const char* dtype_safetensors_name(DType t) {
  switch (t) {
#define MOXING_DTYPE_ST_NAME(e, T, name, st, torch, fl) \
  case DType::e:                                        \
    return st;
    MOXING_FORALL_DTYPES(MOXING_DTYPE_ST_NAME)
#undef MOXING_DTYPE_ST_NAME
    default:
      break;
  }
  if (is_quantized(t)) return nullptr;
  fail("unknown dtype {}", static_cast<int>(t));
}

const char* dtype_torch_name(DType t) {
  switch (t) {
#define MOXING_DTYPE_TORCH_NAME(e, T, name, st, torch, fl) \
  case DType::e:                                           \
    return torch;
    MOXING_FORALL_DTYPES(MOXING_DTYPE_TORCH_NAME)
#undef MOXING_DTYPE_TORCH_NAME
    default:
      break;
  }
  if (is_quantized(t)) return nullptr;
  fail("unknown dtype {}", static_cast<int>(t));
}

bool is_floating(DType t) {
  switch (t) {
#define MOXING_DTYPE_FLOATING(e, T, name, st, torch, fl) \
  case DType::e:                                         \
    return fl;
    MOXING_FORALL_DTYPES(MOXING_DTYPE_FLOATING)
#undef MOXING_DTYPE_FLOATING
    default:
      break;
  }
  return false;
}

std::optional<DType> dtype_from_name(const std::string& name) {
  for (DType t : kAllDTypes) {
    if (name == dtype_name(t)) return t;
  }
  for (DType t : kQuantDTypes) {
    if (name == dtype_name(t)) return t;
  }
  return std::nullopt;
}

std::optional<DType> dtype_from_safetensors_name(const std::string& name) {
  for (DType t : kAllDTypes) {
    if (name == dtype_safetensors_name(t)) return t;
  }
  return std::nullopt;
}

std::string device_name(Device d) {
  switch (d.type) {
    case DeviceType::cpu:
      return "cpu";
    case DeviceType::meta:
      return "meta";
    case DeviceType::cuda:
      return fmt::format("cuda:{}", d.index);
  }
  return "?";
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return kCPU;
  if (name == "meta") return kMeta;
  if (name == "cuda") return Device{DeviceType::cuda, 0};
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() <= 9 &&
      name.find_first_not_of("0123456789", 5) == std::string::npos) {
    return Device{DeviceType::cuda, std::stoi(name.substr(5))};
  }
  fail("unknown device '{}' (valid: cpu, meta, cuda, cuda:N)", name);
}

Half to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x7fffffu;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xffu);
  if (exp == 0xff) {  // inf or NaN
    return Half{static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u))};
  }
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return Half{static_cast<uint16_t>(sign | 0x7c00u)};
  if (e <= 0) {  // subnormal or zero in f16
    if (e < -10) return Half{static_cast<uint16_t>(sign)};
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;
    return Half{static_cast<uint16_t>(sign | half_mant)};
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into exponent: correct
  return Half{static_cast<uint16_t>(h)};
}

float from_f16(Half hv) {
  uint32_t h = hv.bits;
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t out;
  if (exp == 0) {
    if (mant == 0) {
      out = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      out = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    out = sign | 0x7f800000u | (mant << 13);
  } else {
    out = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &out, 4);
  return f;
}

}  // namespace moxing
