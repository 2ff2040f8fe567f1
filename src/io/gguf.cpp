// GGUF read and write (the layout is in the header). Every count, string length, array, type,
// dimension, offset and size is checked against the bytes that are there before it is used, so
// a truncated or hostile file is an error naming what is wrong, never a read past the end.
#include "moxing/io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <set>

#include "io/file_util.h"
#include "moxing/core/error.h"
#include "moxing/ops/quant.h"

namespace moxing {

static_assert(std::endian::native == std::endian::little,
              "GGUF files read here are little-endian; a big-endian host would need byte swaps");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;        // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;  // arrays of arrays: deeper is hostile, not a model
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint64_t kMaxInt64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

struct TypeRow {
  GgmlType type;
  GgmlTypeInfo info;
};

// ggml's block layouts (weights per block, bytes per block)
constexpr std::array<TypeRow, 31> kTypes = {{
    {GgmlType::F32, {"F32", 1, 4}},
    {GgmlType::F16, {"F16", 1, 2}},
    {GgmlType::Q4_0, {"Q4_0", 32, 18}},
    {GgmlType::Q4_1, {"Q4_1", 32, 20}},
    {GgmlType::Q5_0, {"Q5_0", 32, 22}},
    {GgmlType::Q5_1, {"Q5_1", 32, 24}},
    {GgmlType::Q8_0, {"Q8_0", 32, 34}},
    {GgmlType::Q8_1, {"Q8_1", 32, 40}},
    {GgmlType::Q2_K, {"Q2_K", 256, 84}},
    {GgmlType::Q3_K, {"Q3_K", 256, 110}},
    {GgmlType::Q4_K, {"Q4_K", 256, 144}},
    {GgmlType::Q5_K, {"Q5_K", 256, 176}},
    {GgmlType::Q6_K, {"Q6_K", 256, 210}},
    {GgmlType::Q8_K, {"Q8_K", 256, 292}},
    {GgmlType::IQ2_XXS, {"IQ2_XXS", 256, 66}},
    {GgmlType::IQ2_XS, {"IQ2_XS", 256, 74}},
    {GgmlType::IQ3_XXS, {"IQ3_XXS", 256, 98}},
    {GgmlType::IQ1_S, {"IQ1_S", 256, 50}},
    {GgmlType::IQ4_NL, {"IQ4_NL", 32, 18}},
    {GgmlType::IQ3_S, {"IQ3_S", 256, 110}},
    {GgmlType::IQ2_S, {"IQ2_S", 256, 82}},
    {GgmlType::IQ4_XS, {"IQ4_XS", 256, 136}},
    {GgmlType::I8, {"I8", 1, 1}},
    {GgmlType::I16, {"I16", 1, 2}},
    {GgmlType::I32, {"I32", 1, 4}},
    {GgmlType::I64, {"I64", 1, 8}},
    {GgmlType::F64, {"F64", 1, 8}},
    {GgmlType::IQ1_M, {"IQ1_M", 256, 56}},
    {GgmlType::BF16, {"BF16", 1, 2}},
    {GgmlType::TQ1_0, {"TQ1_0", 256, 54}},
    {GgmlType::TQ2_0, {"TQ2_0", 256, 66}},
}};

// The moxing dtype a plain (unquantized) ggml type is, if any.
std::optional<DType> plain_dtype(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return DType::f32;
    case GgmlType::F16:
      return DType::f16;
    case GgmlType::BF16:
      return DType::bf16;
    case GgmlType::F64:
      return DType::f64;
    case GgmlType::I32:
      return DType::i32;
    case GgmlType::I64:
      return DType::i64;
    default:
      return std::nullopt;
  }
}

std::optional<GgmlType> ggml_type_of(DType d) {
  if (std::optional<uint32_t> q = dtype_ggml_type(d)) return static_cast<GgmlType>(*q);
  switch (d) {
    case DType::f32:
      return GgmlType::F32;
    case DType::f16:
      return GgmlType::F16;
    case DType::bf16:
      return GgmlType::BF16;
    case DType::f64:
      return GgmlType::F64;
    case DType::i32:
      return GgmlType::I32;
    case DType::i64:
      return GgmlType::I64;
    default:
      return std::nullopt;
  }
}

// bytes of one scalar of a metadata type (0 for STRING and ARRAY)
uint64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
      return 8;
    default:
      return 0;
  }
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::F64); }

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::U8 || t == GgufValueType::U16 || t == GgufValueType::U32 ||
         t == GgufValueType::U64 || t == GgufValueType::BOOL;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::I8 || t == GgufValueType::I16 || t == GgufValueType::I32 ||
         t == GgufValueType::I64;
}
bool is_float(GgufValueType t) { return t == GgufValueType::F32 || t == GgufValueType::F64; }

// A bounds-checked cursor over the file's bytes.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& file) : p_(p), n_(n), file_(file) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const std::string& what, uint64_t limit) {
    const auto len = read<uint64_t>(what.c_str());
    if (len > limit)
      fail("{}: {} is {} bytes long, over the {} byte limit", file_, what, len, limit);
    need(len, what.c_str());
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }
  void need(uint64_t n, const char* what) const {
    if (n > left()) {
      fail("{}: {} at byte {} needs {} bytes but the file has {} left (is it truncated?)", file_,
           what, pos_, n, left());
    }
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& file_;
};

GgufValue read_value(Reader& r, GgufValueType type, const std::string& key, int depth,
                     const std::string& file) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::U8:
      v.u = r.read<uint8_t>(key.c_str());
      break;
    case GgufValueType::U16:
      v.u = r.read<uint16_t>(key.c_str());
      break;
    case GgufValueType::U32:
      v.u = r.read<uint32_t>(key.c_str());
      break;
    case GgufValueType::U64:
      v.u = r.read<uint64_t>(key.c_str());
      break;
    case GgufValueType::I8:
      v.i = r.read<int8_t>(key.c_str());
      break;
    case GgufValueType::I16:
      v.i = r.read<int16_t>(key.c_str());
      break;
    case GgufValueType::I32:
      v.i = r.read<int32_t>(key.c_str());
      break;
    case GgufValueType::I64:
      v.i = r.read<int64_t>(key.c_str());
      break;
    case GgufValueType::F32:
      v.f = r.read<float>(key.c_str());
      break;
    case GgufValueType::F64:
      v.f = r.read<double>(key.c_str());
      break;
    case GgufValueType::BOOL: {
      const auto b = r.read<uint8_t>(key.c_str());
      if (b > 1) fail("{}: metadata '{}': a bool is {}, not 0 or 1", file, key, b);
      v.u = b;
      break;
    }
    case GgufValueType::STRING:
      v.s = r.string("the value of metadata '" + key + "'", r.left());
      break;
    case GgufValueType::ARRAY: {
      if (depth >= kMaxArrayDepth) {
        fail("{}: metadata '{}': arrays nested over {} deep", file, key, kMaxArrayDepth);
      }
      const auto et = r.read<uint32_t>(key.c_str());
      if (!known_value_type(et)) {
        fail("{}: metadata '{}': unknown array element type {} (GGUF has types 0-12)", file, key,
             et);
      }
      v.array_type = static_cast<GgufValueType>(et);
      const auto count = r.read<uint64_t>(key.c_str());
      // every element takes at least this many bytes: a count the file cannot hold is refused
      // before anything is reserved
      uint64_t min_bytes = scalar_size(v.array_type);
      if (v.array_type == GgufValueType::STRING) min_bytes = 8;
      if (v.array_type == GgufValueType::ARRAY) min_bytes = 12;
      if (count > r.left() / min_bytes) {
        fail(
            "{}: metadata '{}': an array of {} {} values does not fit in the {} bytes left (is "
            "the file truncated?)",
            file, key, count, gguf_value_type_name(v.array_type), r.left());
      }
      v.items.reserve(static_cast<size_t>(count));
      for (uint64_t k = 0; k < count; ++k) {
        v.items.push_back(read_value(r, v.array_type, key, depth + 1, file));
      }
      break;
    }
  }
  return v;
}

void write_value(std::string& out, const GgufValue& v);

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void write_scalar(std::string& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::U8:
    case GgufValueType::BOOL:
      put<uint8_t>(out, static_cast<uint8_t>(v.u));
      break;
    case GgufValueType::U16:
      put<uint16_t>(out, static_cast<uint16_t>(v.u));
      break;
    case GgufValueType::U32:
      put<uint32_t>(out, static_cast<uint32_t>(v.u));
      break;
    case GgufValueType::U64:
      put<uint64_t>(out, v.u);
      break;
    case GgufValueType::I8:
      put<int8_t>(out, static_cast<int8_t>(v.i));
      break;
    case GgufValueType::I16:
      put<int16_t>(out, static_cast<int16_t>(v.i));
      break;
    case GgufValueType::I32:
      put<int32_t>(out, static_cast<int32_t>(v.i));
      break;
    case GgufValueType::I64:
      put<int64_t>(out, v.i);
      break;
    case GgufValueType::F32:
      put<float>(out, static_cast<float>(v.f));
      break;
    case GgufValueType::F64:
      put<double>(out, v.f);
      break;
    case GgufValueType::STRING:
      put_string(out, v.s);
      break;
    case GgufValueType::ARRAY:
      put<uint32_t>(out, static_cast<uint32_t>(v.array_type));
      put<uint64_t>(out, v.items.size());
      for (const GgufValue& item : v.items) {
        MOXING_CHECK(item.type == v.array_type, "GGUF: an array of {} holds a {} value",
                     gguf_value_type_name(v.array_type), gguf_value_type_name(item.type));
        write_scalar(out, item);
      }
      break;
  }
}

void write_value(std::string& out, const GgufValue& v) {
  put<uint32_t>(out, static_cast<uint32_t>(v.type));
  write_scalar(out, v);
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// The alignment general.alignment sets (a power of two), else 32.
uint64_t alignment_of(const GgufMetadata& metadata, const std::string& file) {
  for (const auto& [key, v] : metadata) {
    if (key != "general.alignment") continue;
    if (v.type != GgufValueType::U32) {
      fail("{}: general.alignment is a {}, not a uint32", file, gguf_value_type_name(v.type));
    }
    if (v.u == 0 || (v.u & (v.u - 1)) != 0) {
      fail("{}: general.alignment is {}, not a power of two", file, v.u);
    }
    return v.u;
  }
  return kDefaultAlignment;
}

// Bytes of n weights of type info; an error unless n is whole blocks.
uint64_t tensor_bytes(const GgmlTypeInfo& info, uint64_t row, uint64_t numel,
                      const std::string& where) {
  if (row % static_cast<uint64_t>(info.block_size) != 0) {
    fail("{}: rows of {} weights are not whole {} blocks of {}", where, row, info.name,
         info.block_size);
  }
  return numel / static_cast<uint64_t>(info.block_size) * static_cast<uint64_t>(info.type_size);
}

GgufFile parse_bytes(uint8_t* bytes, size_t size, const std::string& file,
                     std::shared_ptr<void> owner) {
  if (size == 0) fail("{}: file is empty (a GGUF file starts with the magic \"GGUF\")", file);
  Reader r(bytes, size, file);
  r.need(4, "the magic");
  const auto magic = r.read<uint32_t>("the magic");
  if (magic != kMagic) {
    fail("{}: not a GGUF file (it starts with {:02x} {:02x} {:02x} {:02x}, not \"GGUF\")", file,
         bytes[0], bytes[1], bytes[2], bytes[3]);
  }
  GgufFile out;
  out.path = file;
  out.version = r.read<uint32_t>("the version");
  if (out.version == 1) {
    fail(
        "{}: GGUF version 1 (32-bit counts) is not read; convert the model again with a "
        "current llama.cpp",
        file);
  }
  if (out.version != 2 && out.version != 3) {
    fail("{}: GGUF version {} is not one moxing reads (2 or 3)", file, out.version);
  }
  const auto n_tensors = r.read<uint64_t>("the tensor count");
  const auto n_kv = r.read<uint64_t>("the metadata count");
  // a key/value takes at least 13 bytes (key length, value type, one byte), a tensor info 24
  if (n_kv > r.left() / 13) {
    fail("{}: {} metadata entries cannot fit in the {} bytes left (corrupt count?)", file, n_kv,
         r.left());
  }
  std::set<std::string> keys;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.string(fmt::format("metadata key {}", k), kMaxKeyBytes);
    if (!keys.insert(key).second) fail("{}: duplicate metadata key '{}'", file, key);
    const auto type = r.read<uint32_t>(key.c_str());
    if (!known_value_type(type)) {
      fail("{}: metadata '{}': unknown value type {} (GGUF has types 0-12)", file, key, type);
    }
    GgufValue v = read_value(r, static_cast<GgufValueType>(type), key, 0, file);
    out.metadata.emplace_back(std::move(key), std::move(v));
  }
  out.alignment = alignment_of(out.metadata, file);

  if (n_tensors > r.left() / 24) {
    fail("{}: {} tensor infos cannot fit in the {} bytes left (corrupt count?)", file, n_tensors,
         r.left());
  }
  std::set<std::string> names;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = r.string(fmt::format("the name of tensor {}", k), kMaxKeyBytes);
    if (!names.insert(t.name).second) fail("{}: duplicate tensor name '{}'", file, t.name);
    const std::string where = fmt::format("{}: tensor '{}'", file, t.name);
    const auto n_dims = r.read<uint32_t>(t.name.c_str());
    if (n_dims == 0 || n_dims > kMaxDims) {
      fail("{}: has {} dimensions (GGUF tensors have 1 to {})", where, n_dims, kMaxDims);
    }
    // the element count, and the product with zeros taken as one (what strides need), must
    // both fit in int64
    uint64_t numel = 1, span = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = r.read<uint64_t>(t.name.c_str());
      if (dim > kMaxInt64 || __builtin_mul_overflow(span, std::max<uint64_t>(dim, 1), &span) ||
          span > kMaxInt64) {
        fail("{}: dimensions too large", where);
      }
      numel *= dim;
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    const auto type = r.read<uint32_t>(t.name.c_str());
    std::optional<GgmlTypeInfo> info = ggml_type_info(type);
    if (!info) fail("{}: unknown ggml type {}", where, type);
    t.type = static_cast<GgmlType>(type);
    t.offset = r.read<uint64_t>(t.name.c_str());
    if (t.offset % out.alignment != 0) {
      fail("{}: data offset {} is not a multiple of the alignment {}", where, t.offset,
           out.alignment);
    }
    t.nbytes = tensor_bytes(*info, static_cast<uint64_t>(t.dims[0]), numel, where);
    out.tensors.push_back(std::move(t));
  }
  out.data_offset = align_up(r.pos(), out.alignment);
  if (out.data_offset > size) {
    if (!out.tensors.empty()) {
      fail(
          "{}: the data section would start at byte {}, past the end of the file ({} bytes; is "
          "it truncated?)",
          file, out.data_offset, size);
    }
    out.data_offset = size;  // no tensors: a file may end right after its metadata
  }
  const uint64_t data_size = size - out.data_offset;
  std::vector<const GgufTensor*> order;
  for (GgufTensor& t : out.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      fail(
          "{}: tensor '{}' ({} bytes at offset {}) runs past the end of the data section ({} "
          "bytes; is the file truncated?)",
          file, t.name, t.nbytes, t.offset, data_size);
    }
    t.data = bytes + out.data_offset + t.offset;
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensor& a = *order[k - 1];
    const GgufTensor& b = *order[k];
    if (a.offset + a.nbytes > b.offset) {
      fail("{}: tensors '{}' (bytes {} to {}) and '{}' (from {}) overlap", file, a.name, a.offset,
           a.offset + a.nbytes, b.name, b.offset);
    }
  }
  out.bytes = bytes;
  out.size = size;
  out.owner = std::move(owner);
  return out;
}

float f16_at(const uint8_t* p) {
  Half h;
  std::memcpy(&h, p, 2);
  return from_f16(h);
}

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type) {
  for (const TypeRow& row : kTypes) {
    if (static_cast<uint32_t>(row.type) == type) return row.info;
  }
  return std::nullopt;
}

std::string ggml_type_name(uint32_t type) {
  std::optional<GgmlTypeInfo> info = ggml_type_info(type);
  return info ? std::string(info->name) : fmt::format("type {}", type);
}

bool ggml_type_dequantizes(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::F64:
      return true;
    default:
      return quant_dtype_of_ggml(static_cast<uint32_t>(type)).has_value();
  }
}

void dequantize_ggml(GgmlType type, const uint8_t* data, int64_t n, float* out) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, data, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t k = 0; k < n; ++k) out[k] = f16_at(data + 2 * k);
      return;
    case GgmlType::BF16:
      for (int64_t k = 0; k < n; ++k) {
        BFloat16 b;
        std::memcpy(&b, data + 2 * k, 2);
        out[k] = from_bf16(b);
      }
      return;
    case GgmlType::F64:
      for (int64_t k = 0; k < n; ++k) {
        double v;
        std::memcpy(&v, data + 8 * k, 8);
        out[k] = static_cast<float>(v);
      }
      return;
    default:
      break;
  }
  const std::optional<DType> q = quant_dtype_of_ggml(static_cast<uint32_t>(type));
  if (!q)
    fail("dequantize: ggml type {} is not read yet", ggml_type_name(static_cast<uint32_t>(type)));
  const GgmlTypeInfo info = *ggml_type_info(static_cast<uint32_t>(type));
  MOXING_CHECK(n % info.block_size == 0, "dequantize: {} weights are not whole {} blocks of {}", n,
               info.name, info.block_size);
  auto* bytes = const_cast<uint8_t*>(data);
  Tensor view = from_blob(bytes, {n}, *q, nullptr);
  std::memcpy(out, dequantize(view).data<float>(), static_cast<size_t>(n) * sizeof(float));
}

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
      return "uint8";
    case GgufValueType::I8:
      return "int8";
    case GgufValueType::U16:
      return "uint16";
    case GgufValueType::I16:
      return "int16";
    case GgufValueType::U32:
      return "uint32";
    case GgufValueType::I32:
      return "int32";
    case GgufValueType::F32:
      return "float32";
    case GgufValueType::BOOL:
      return "bool";
    case GgufValueType::STRING:
      return "string";
    case GgufValueType::ARRAY:
      return "array";
    case GgufValueType::U64:
      return "uint64";
    case GgufValueType::I64:
      return "int64";
    case GgufValueType::F64:
      return "float64";
  }
  return "unknown";
}

GgufValue GgufValue::of_uint(GgufValueType type, uint64_t v) {
  MOXING_CHECK(is_unsigned(type), "GgufValue::of_uint: {} is not an unsigned type",
               gguf_value_type_name(type));
  GgufValue g;
  g.type = type;
  g.u = v;
  return g;
}

GgufValue GgufValue::of_int(GgufValueType type, int64_t v) {
  MOXING_CHECK(is_signed(type), "GgufValue::of_int: {} is not a signed type",
               gguf_value_type_name(type));
  GgufValue g;
  g.type = type;
  g.i = v;
  return g;
}

GgufValue GgufValue::of_float(GgufValueType type, double v) {
  MOXING_CHECK(is_float(type), "GgufValue::of_float: {} is not a float type",
               gguf_value_type_name(type));
  GgufValue g;
  g.type = type;
  g.f = type == GgufValueType::F32 ? static_cast<double>(static_cast<float>(v)) : v;
  return g;
}

GgufValue GgufValue::of_bool(bool v) { return of_uint(GgufValueType::BOOL, v ? 1 : 0); }

GgufValue GgufValue::of_string(std::string v) {
  GgufValue g;
  g.type = GgufValueType::STRING;
  g.s = std::move(v);
  return g;
}

GgufValue GgufValue::of_array(GgufValueType element, std::vector<GgufValue> items) {
  for (const GgufValue& item : items) {
    MOXING_CHECK(item.type == element, "GgufValue::of_array: an array of {} given a {} value",
                 gguf_value_type_name(element), gguf_value_type_name(item.type));
  }
  GgufValue g;
  g.type = GgufValueType::ARRAY;
  g.array_type = element;
  g.items = std::move(items);
  return g;
}

GgufValue GgufValue::of_strings(const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const std::string& s : v) items.push_back(of_string(s));
  return of_array(GgufValueType::STRING, std::move(items));
}

bool GgufValue::is_integer() const { return is_unsigned(type) || is_signed(type); }

int64_t GgufValue::as_int(const std::string& key) const {
  if (is_signed(type)) return i;
  if (is_unsigned(type)) {
    MOXING_CHECK(u <= kMaxInt64, "GGUF metadata '{}': {} is too large", key, u);
    return static_cast<int64_t>(u);
  }
  fail("GGUF metadata '{}' is a {}, not an integer", key, gguf_value_type_name(type));
}

double GgufValue::as_number(const std::string& key) const {
  if (is_float(type)) return f;
  if (is_signed(type)) return static_cast<double>(i);
  if (is_unsigned(type)) return static_cast<double>(u);
  fail("GGUF metadata '{}' is a {}, not a number", key, gguf_value_type_name(type));
}

const std::string& GgufValue::as_string(const std::string& key) const {
  if (type != GgufValueType::STRING) {
    fail("GGUF metadata '{}' is a {}, not a string", key, gguf_value_type_name(type));
  }
  return s;
}

std::vector<std::string> GgufValue::as_strings(const std::string& key) const {
  if (type != GgufValueType::ARRAY || array_type != GgufValueType::STRING) {
    fail("GGUF metadata '{}' is not an array of strings", key);
  }
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const GgufValue& item : items) out.push_back(item.s);
  return out;
}

bool GgufValue::operator==(const GgufValue& o) const {
  if (type != o.type) return false;
  if (is_unsigned(type)) return u == o.u;
  if (is_signed(type)) return i == o.i;
  if (is_float(type)) return f == o.f || (f != f && o.f != o.f);  // NaN equals NaN here
  if (type == GgufValueType::STRING) return s == o.s;
  return array_type == o.array_type && items == o.items;
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

Shape GgufTensor::shape() const { return Shape(dims.rbegin(), dims.rend()); }

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("{}: no metadata key '{}'", path, key);
  return *v;
}

bool GgufFile::has_tensor(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const GgufTensor& t) { return t.name == name; });
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  for (const GgufTensor& t : tensors) {
    if (t.name == name) return t;
  }
  std::vector<std::string> names;
  for (size_t k = 0; k < tensors.size() && k < 10; ++k)
    names.push_back("'" + tensors[k].name + "'");
  fail("{}: no tensor named '{}'; the file has {}{}", path, name,
       names.empty() ? std::string("no tensors") : fmt::format("{}", fmt::join(names, ", ")),
       tensors.size() > 10 ? fmt::format(", and {} more", tensors.size() - 10) : "");
}

Tensor GgufFile::view(const std::string& name) const {
  const GgufTensor& t = tensor(name);
  const Shape shape = t.shape();
  std::optional<DType> d = plain_dtype(t.type);
  if (!d) d = quant_dtype_of_ggml(static_cast<uint32_t>(t.type));
  if (!d) {
    fail(
        "{}: tensor '{}' is {}, a type moxing does not read yet (it reads F32, F16, BF16, F64, "
        "I32, I64, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K)",
        path, name, ggml_type_name(static_cast<uint32_t>(t.type)));
  }
  if (t.nbytes == 0) return empty(shape, TensorOptions(*d).device(kCPU));
  auto* p = const_cast<uint8_t*>(t.data);
  // blocks start with f16 scales: 2-byte alignment is all a quantized type needs
  const size_t align = is_quantized(*d) ? 2 : dtype_size(*d);
  if (reinterpret_cast<uintptr_t>(p) % align == 0) return from_blob(p, shape, *d, owner);
  return from_blob_copy(p, shape, *d);
}

Tensor GgufFile::to_tensor(const std::string& name) const {
  Tensor t = view(name);
  return is_quantized(t.dtype()) ? dequantize(t) : t;
}

bool has_gguf_extension(std::string_view path) { return path.ends_with(".gguf"); }

GgufFile load_gguf(const std::string& path) {
  detail::FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail("{}: cannot open: {}", path, detail::errno_text(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) fail("{}: cannot stat: {}", path, detail::errno_text(errno));
  if (S_ISDIR(st.st_mode)) fail("{}: is a folder, not a GGUF file", path);
  if (!S_ISREG(st.st_mode)) fail("{}: is not a regular file", path);
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) fail("{}: file is empty (a GGUF file starts with the magic \"GGUF\")", path);
  // private and writable, as for safetensors: a write to a loaded tensor never reaches the file
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
  if (addr == MAP_FAILED) fail("{}: cannot map: {}", path, detail::errno_text(errno));
  std::shared_ptr<void> owner(addr, [size](void* p) { ::munmap(p, size); });
  return parse_bytes(static_cast<uint8_t*>(addr), size, path, std::move(owner));
}

GgufFile parse_gguf(const uint8_t* data, size_t size, const std::string& name_for_errors) {
  constexpr std::align_val_t kAlign{64};
  std::shared_ptr<void> owner(::operator new(std::max<size_t>(size, 1), kAlign),
                              [](void* p) { ::operator delete (p, std::align_val_t{64}); });
  if (size > 0) std::memcpy(owner.get(), data, size);
  return parse_bytes(static_cast<uint8_t*>(owner.get()), size, name_for_errors, owner);
}

GgufTensorData gguf_tensor_data(const std::string& name, const Tensor& t) {
  MOXING_CHECK(t.defined(), "GGUF: tensor '{}' is undefined", name);
  std::optional<GgmlType> type = ggml_type_of(t.dtype());
  MOXING_CHECK(type.has_value(), "GGUF: tensor '{}' is {}, which GGUF does not store", name,
               dtype_name(t.dtype()));
  MOXING_CHECK(t.device() == kCPU, "GGUF: tensor '{}' is on {}; move it to the cpu first", name,
               device_name(t.device()));
  MOXING_CHECK(t.dim() >= 1 && t.dim() <= kMaxDims,
               "GGUF: tensor '{}' has {} dimensions (GGUF stores 1 to {})", name, t.dim(),
               kMaxDims);
  GgufTensorData d;
  d.name = name;
  d.type = *type;
  d.dims.assign(t.shape().rbegin(), t.shape().rend());
  const Tensor c = t.is_contiguous() ? t : t.detach().contiguous();
  d.bytes.assign(static_cast<const char*>(c.raw_data()), dtype_nbytes(c.dtype(), c.numel()));
  return d;
}

std::string serialize_gguf(const GgufMetadata& metadata,
                           const std::vector<GgufTensorData>& tensors) {
  const uint64_t alignment = alignment_of(metadata, "serialize_gguf");
  std::string out;
  put<uint32_t>(out, kMagic);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors.size());
  put<uint64_t>(out, metadata.size());
  std::set<std::string> keys;
  for (const auto& [key, v] : metadata) {
    MOXING_CHECK(keys.insert(key).second, "serialize_gguf: duplicate metadata key '{}'", key);
    put_string(out, key);
    write_value(out, v);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const GgufTensorData& t : tensors) {
    MOXING_CHECK(names.insert(t.name).second, "serialize_gguf: duplicate tensor name '{}'", t.name);
    std::optional<GgmlTypeInfo> info = ggml_type_info(static_cast<uint32_t>(t.type));
    MOXING_CHECK(info.has_value(), "serialize_gguf: tensor '{}' has an unknown ggml type", t.name);
    MOXING_CHECK(!t.dims.empty() && t.dims.size() <= kMaxDims,
                 "serialize_gguf: tensor '{}' has {} dimensions (1 to {})", t.name, t.dims.size(),
                 kMaxDims);
    uint64_t numel = 1;
    for (int64_t d : t.dims) {
      MOXING_CHECK(d >= 0, "serialize_gguf: tensor '{}' has a negative dimension", t.name);
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t nbytes = tensor_bytes(*info, static_cast<uint64_t>(t.dims[0]), numel,
                                         "serialize_gguf: tensor '" + t.name + "'");
    MOXING_CHECK(nbytes == t.bytes.size(),
                 "serialize_gguf: tensor '{}' of {} needs {} bytes but has {}", t.name, info->name,
                 nbytes, t.bytes.size());
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset = align_up(offset + nbytes, alignment);
  }
  if (!tensors.empty()) out.resize(align_up(out.size(), alignment), '\0');
  for (const GgufTensorData& t : tensors) {
    out += t.bytes;
    out.resize(align_up(out.size(), alignment), '\0');
  }
  return out;
}

void save_gguf(const std::string& path, const GgufMetadata& metadata,
               const std::vector<GgufTensorData>& tensors) {
  const std::string bytes = serialize_gguf(metadata, tensors);
  const std::string tmp = path + ".tmp";
  detail::write_file_atomic(
      path, tmp, [&](int fd) { detail::write_all(fd, bytes.data(), bytes.size(), tmp); });
}

}  // namespace moxing
