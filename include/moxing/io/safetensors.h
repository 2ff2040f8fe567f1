// safetensors files (the Hugging Face weight format): an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range, then the raw data.
// Loading maps the file and validates the whole header before any byte is used; tensors
// view the mapping where their alignment allows. Not a general archive format: one file,
// no compression, no lazy per-tensor I/O beyond what the mapping gives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing {

/// Named tensors in the order they are written (or, when loaded, the order of their data).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// A loaded safetensors file. The tensors view `bytes` where their alignment allows (an f32
/// tensor always does in a file written by moxing or by the Python package) and are copies
/// otherwise; either way they stay valid after this object is gone.
struct SafetensorsFile {
  /// The file name used in error messages.
  std::string path;
  /// Tensors in the order of their data in the file.
  NamedTensors tensors;
  /// The `__metadata__` string map (empty when the file has none).
  std::map<std::string, std::string> metadata;
  /// The whole file as loaded: a private copy-on-write mapping, or an owned copy of the
  /// caller's buffer. Writing to a tensor never changes the file on disk.
  const uint8_t* bytes = nullptr;
  size_t size = 0;
  /// Keeps `bytes` alive (the tensors that view it hold the same owner).
  std::shared_ptr<void> owner;

  /// The tensor called name; the error lists the names the file has.
  Tensor get(const std::string& name) const;
  /// True when the file has a tensor called name.
  bool contains(const std::string& name) const;
};

/// Maps and validates a safetensors file. Throws moxing::Error "<path>: <problem>" for a
/// missing, truncated or malformed file, before any tensor data is read.
SafetensorsFile load_safetensors(const std::string& path);

/// Validates and loads a safetensors file held in memory. The bytes are copied first, so the
/// result does not borrow the caller's buffer. name_for_errors is used in messages.
SafetensorsFile parse_safetensors(const uint8_t* data, size_t size,
                                  const std::string& name_for_errors);

/// The exact bytes save_safetensors writes: tensors in the order given (non-contiguous ones
/// made contiguous), header keys in the same order after `__metadata__` (omitted when empty),
/// the header padded with spaces so the data starts at a multiple of 8.
std::string serialize_safetensors(const NamedTensors& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

/// Writes a safetensors file atomically: to path + ".tmp", fsync, rename over path, fsync of
/// the folder. A crash leaves either the old file or the new one. Tensor names must be unique
/// and not "__metadata__"; tensors must be on the cpu.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// The file's dtype name for a dtype ("F32", "BF16", "BOOL"): dtype_safetensors_name from the
/// dtype table in core/dtype.h, which also has dtype_from_safetensors_name.
const char* safetensors_dtype_name(DType dtype);

}  // namespace moxing
