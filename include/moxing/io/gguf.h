// GGUF files (llama.cpp's model format): the magic "GGUF", a version (2 or 3), the tensor and
// metadata counts, typed key/value metadata (integers, floats, bools, strings and arrays of
// them), tensor infos (name, dims with the row length first, ggml type, offset), then the
// tensor data, each tensor at a multiple of general.alignment (32 by default) from the start
// of the data section. Loading maps the file and validates every count, string, type, offset
// and size before a byte of data is used; tensors stay in their ggml type (quantized blocks
// included) and dequantize to f32 on request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing {

/// ggml's tensor types as GGUF numbers them.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
};

/// A ggml type's name ("Q4_K"), weights per block and bytes per block.
struct GgmlTypeInfo {
  const char* name;
  int64_t block_size;
  int64_t type_size;
};
/// The type's layout, nullopt for a number ggml does not define (or moxing does not know).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type);
/// "Q4_K", or "type 99" for an unknown number.
std::string ggml_type_name(uint32_t type);
/// True when dequantize_ggml reads the type (F32, F16, BF16, F64, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K).
bool ggml_type_dequantizes(GgmlType type);
/// n weights of type stored at data, as f32 (n a multiple of the block size).
void dequantize_ggml(GgmlType type, const uint8_t* data, int64_t n, float* out);

/// GGUF metadata value types.
enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
/// "uint32", "string", "array"...
const char* gguf_value_type_name(GgufValueType type);

/// One metadata value. Integers are kept as written (u for the unsigned types and bool, i for
/// the signed ones), floats as f; an array has its element type and its items.
struct GgufValue {
  GgufValueType type = GgufValueType::U32;
  GgufValueType array_type = GgufValueType::U8;  // ARRAY only
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<GgufValue> items;

  static GgufValue of_uint(GgufValueType type, uint64_t v);
  static GgufValue of_int(GgufValueType type, int64_t v);
  static GgufValue of_float(GgufValueType type, double v);
  static GgufValue of_bool(bool v);
  static GgufValue of_string(std::string v);
  /// An array of element type; items must all have that type.
  static GgufValue of_array(GgufValueType element, std::vector<GgufValue> items);
  static GgufValue of_strings(const std::vector<std::string>& v);

  bool is_integer() const;
  /// Any integer type or bool as int64 (an error for other types or a uint64 past int64).
  int64_t as_int(const std::string& key) const;
  /// Any integer or float type as double.
  double as_number(const std::string& key) const;
  const std::string& as_string(const std::string& key) const;
  /// An array of strings.
  std::vector<std::string> as_strings(const std::string& key) const;
  bool operator==(const GgufValue& o) const;
};

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

/// One tensor of a GGUF file. dims are ggml's: dims[0] is the row length (it varies fastest).
struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the file's bytes

  int64_t numel() const;
  /// The shape in moxing's row-major order: dims reversed.
  Shape shape() const;
};

struct GgufFile {
  std::string path;  // for error messages
  uint32_t version = 3;
  uint64_t alignment = 32;
  GgufMetadata metadata;
  std::vector<GgufTensor> tensors;  // in the order of their infos
  uint64_t data_offset = 0;         // where the data section starts
  const uint8_t* bytes = nullptr;
  size_t size = 0;
  std::shared_ptr<void> owner;  // keeps bytes alive

  /// The value of key, nullptr when the file has none.
  const GgufValue* find(const std::string& key) const;
  /// The value of key; the error names the key and the file.
  const GgufValue& get(const std::string& key) const;
  /// The tensor called name; the error lists some names the file has.
  const GgufTensor& tensor(const std::string& name) const;
  bool has_tensor(const std::string& name) const;
  /// The tensor as a moxing tensor of shape tensor.shape(): F32, F16, BF16, F64, I32, I64 view
  /// the file (or copy where unaligned), the quantized types dequantize to f32; an unsupported
  /// type is an error naming it.
  Tensor to_tensor(const std::string& name) const;
  /// The tensor in its own type, viewing the file's bytes (a copy where misaligned): the plain
  /// types as to_tensor, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K as the quantized dtypes.
  Tensor view(const std::string& name) const;
};

/// True when path ends in ".gguf" (how every loader tells a GGUF file from a folder or a
/// tokenizer.json).
bool has_gguf_extension(std::string_view path);

/// Maps and validates a GGUF file. Throws moxing::Error "<path>: <problem>" for a missing,
/// truncated or malformed file.
GgufFile load_gguf(const std::string& path);
/// Validates and loads a GGUF file held in memory (the bytes are copied first).
GgufFile parse_gguf(const uint8_t* data, size_t size, const std::string& name_for_errors);

/// A tensor to write: ggml dims (row length first), type, and its bytes in that type.
struct GgufTensorData {
  std::string name;
  std::vector<int64_t> dims;
  GgmlType type = GgmlType::F32;
  std::string bytes;
};
/// A moxing tensor (f32, f16, bf16, f64, i32, i64 or a quantized dtype) as a tensor to write.
GgufTensorData gguf_tensor_data(const std::string& name, const Tensor& t);

/// The bytes of a version-3 GGUF file; general.alignment in metadata (a uint32) sets the
/// alignment, else 32.
std::string serialize_gguf(const GgufMetadata& metadata,
                           const std::vector<GgufTensorData>& tensors);
/// Writes a GGUF file atomically (temporary file, fsync, rename).
void save_gguf(const std::string& path, const GgufMetadata& metadata,
               const std::vector<GgufTensorData>& tensors);

}  // namespace moxing
