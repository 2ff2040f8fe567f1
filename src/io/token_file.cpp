// Token files: atomic writes and read-only mappings of flat little-endian id arrays.
#include "moxing/io/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "file_util.h"
#include "moxing/core/error.h"

namespace moxing {

int token_element_size(int64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

namespace {

void check_elem_size(int elem_size, const std::string& path) {
  MOXING_CHECK(elem_size == 2 || elem_size == 4,
               "{}: token element size {} is not supported (2 = uint16 or 4 = uint32)", path,
               elem_size);
}

}  // namespace

void write_token_file(const std::string& path, std::span<const int32_t> ids, int elem_size) {
  check_elem_size(elem_size, path);
  const int64_t limit = elem_size == 2 ? 65535 : INT32_MAX;
  std::vector<uint8_t> bytes(ids.size() * static_cast<size_t>(elem_size));
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t id = ids[i];
    MOXING_CHECK(id >= 0 && id <= limit, "{}: token id {} at position {} does not fit {}", path, id,
                 i, elem_size == 2 ? "uint16" : "uint32");
    for (int b = 0; b < elem_size; ++b) {
      bytes[i * static_cast<size_t>(elem_size) + static_cast<size_t>(b)] =
          static_cast<uint8_t>((static_cast<uint64_t>(id) >> (8 * b)) & 0xff);
    }
  }
  detail::write_file_atomic(path, path + ".tmp", [&](int fd) {
    detail::write_all(fd, bytes.data(), bytes.size(), path);
  });
}

TokenFile::TokenFile(const std::string& path, int elem_size) : path_(path), elem_size_(elem_size) {
  check_elem_size(elem_size, path);
  detail::FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail("token file {}: cannot open: {}", path, detail::errno_text(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    fail("token file {}: cannot stat: {}", path, detail::errno_text(errno));
  }
  MOXING_CHECK(S_ISREG(st.st_mode), "token file {}: not a regular file", path);
  auto bytes = static_cast<size_t>(st.st_size);
  MOXING_CHECK(
      bytes % static_cast<size_t>(elem_size) == 0,
      "token file {}: {} bytes is not a multiple of {} ({} tokens); the file is truncated "
      "or is not a token file of that element size; delete it to tokenize the corpus again",
      path, bytes, elem_size, elem_size == 2 ? "uint16" : "uint32");
  size_ = static_cast<int64_t>(bytes / static_cast<size_t>(elem_size));
  if (bytes == 0) return;
  void* addr = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (addr == MAP_FAILED) fail("token file {}: cannot map: {}", path, detail::errno_text(errno));
  data_ = std::shared_ptr<const uint8_t>(
      static_cast<const uint8_t*>(addr),
      [bytes](const uint8_t* p) { ::munmap(const_cast<uint8_t*>(p), bytes); });
}

int64_t TokenFile::operator[](int64_t i) const {
  MOXING_CHECK(i >= 0 && i < size_, "token file {}: index {} out of range [0, {})", path_, i,
               size_);
  int64_t v = 0;
  read(i, 1, &v);
  return v;
}

void TokenFile::read(int64_t offset, int64_t n, int64_t* out) const {
  MOXING_CHECK(offset >= 0 && n >= 0 && offset + n <= size_,
               "token file {}: window [{}, {}) is outside its {} tokens", path_, offset, offset + n,
               size_);
  const uint8_t* p = data_.get() + offset * elem_size_;
  if (elem_size_ == 2) {
    for (int64_t i = 0; i < n; ++i) {
      out[i] = static_cast<int64_t>(p[2 * i]) | (static_cast<int64_t>(p[2 * i + 1]) << 8);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint32_t v;
      std::memcpy(&v, p + 4 * i, 4);  // little-endian hosts only (x86-64, aarch64)
      out[i] = static_cast<int64_t>(v);
    }
  }
}

std::vector<int32_t> TokenFile::to_vector() const {
  std::vector<int64_t> wide(static_cast<size_t>(size_));
  if (size_ > 0) read(0, size_, wide.data());
  return {wide.begin(), wide.end()};
}

}  // namespace moxing
