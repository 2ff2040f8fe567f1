// Token files: a corpus tokenized once into a flat array of little-endian uint16 or uint32 ids
// (no header; the element size is the caller's, usually from a meta.json beside the file),
// memory-mapped for training, which samples random windows from it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace moxing {

/// 2 (uint16) when every id < 65536, else 4 (uint32).
int token_element_size(int64_t vocab_size);

/// Writes ids to path atomically as elem_size-byte little-endian integers; an id that does
/// not fit elem_size bytes is an error.
void write_token_file(const std::string& path, std::span<const int32_t> ids, int elem_size);

/// A read-only mapped token file. Opening checks that the file exists, is a regular file and
/// that its size is a multiple of elem_size (else the error says it is truncated or not a
/// token file of that element size).
class TokenFile {
 public:
  TokenFile(const std::string& path, int elem_size);

  int64_t size() const { return size_; }
  int elem_size() const { return elem_size_; }
  const std::string& path() const { return path_; }
  int64_t operator[](int64_t i) const;
  /// ids[offset, offset + n) into out (as int64, the dtype of index tensors).
  void read(int64_t offset, int64_t n, int64_t* out) const;
  std::vector<int32_t> to_vector() const;

 private:
  std::string path_;
  int elem_size_ = 2;
  int64_t size_ = 0;
  std::shared_ptr<const uint8_t> data_;
};

}  // namespace moxing
