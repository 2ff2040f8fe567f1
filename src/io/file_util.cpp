// POSIX file helpers: whole writes, fsync, atomic replace; and read_text_file
// (include/moxing/io/file.h).
#include "io/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "moxing/core/error.h"
#include "moxing/io/file.h"

namespace moxing::detail {

void fault_point() {
  static const long kill_at = [] {
    const char* v = std::getenv("MOXING_FAULT_KILL_AT");
    return v != nullptr ? std::strtol(v, nullptr, 10) : 0L;
  }();
  static long calls = 0;
  if (kill_at > 0 && ++calls == kill_at) ::raise(SIGKILL);
}

namespace fs = std::filesystem;

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

void FileDescriptor::close_or_fail(const std::string& path) {
  int fd = fd_;
  fd_ = -1;
  if (fd >= 0 && ::close(fd) != 0) fail("{}: close failed: {}", path, errno_text(errno));
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", path, errno_text(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void fsync_or_fail(int fd, const std::string& path) {
  if (::fsync(fd) != 0) fail("{}: fsync failed: {}", path, errno_text(errno));
}

void fsync_dir(const std::string& dir) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) fail("{}: cannot open folder to fsync: {}", dir, errno_text(errno));
  fsync_or_fail(fd.get(), dir);
}

void fsync_tree(const std::string& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_symlink()) continue;
    std::string p = entry.path().string();
    if (entry.is_directory()) {
      fsync_dir(p);
    } else if (entry.is_regular_file()) {
      FileDescriptor fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
      if (fd.get() < 0) fail("{}: cannot open to fsync: {}", p, errno_text(errno));
      fsync_or_fail(fd.get(), p);
    }
  }
  fsync_dir(dir);
}

std::string parent_dir(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

void write_file_atomic(const std::string& path, const std::string& tmp_path,
                       const std::function<void(int fd)>& write) {
  try {
    FileDescriptor fd(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) fail("{}: cannot create: {}", tmp_path, errno_text(errno));
    write(fd.get());
    fsync_or_fail(fd.get(), tmp_path);
    fd.close_or_fail(tmp_path);
    if (::rename(tmp_path.c_str(), path.c_str()) != 0) {
      fail("{}: cannot rename {} over it: {}", path, tmp_path, errno_text(errno));
    }
  } catch (...) {
    ::unlink(tmp_path.c_str());
    throw;
  }
  fsync_dir(parent_dir(path));
}

}  // namespace moxing::detail

namespace moxing {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path, detail::errno_text(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("{}: read failed", path);
  return ss.str();
}

}  // namespace moxing
