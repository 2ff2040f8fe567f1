// POSIX file helpers shared by the io layer: whole writes, fsync, and the write-to-temporary,
// fsync, rename sequence that makes a save atomic. Internal; not installed.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace moxing::detail {

/// Closes a file descriptor when it goes out of scope.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor();
  int get() const { return fd_; }
  /// Closes now and reports a failed close (which can hide a failed write).
  void close_or_fail(const std::string& path);

 private:
  int fd_;
};

/// A place where the fault-injection test may kill the process: with MOXING_FAULT_KILL_AT=N in
/// the environment, the N-th call in this process raises SIGKILL (what a crash, the OOM killer
/// or a lost machine does). Does nothing otherwise.
void fault_point();

/// "No such file or directory" for an errno value.
std::string errno_text(int err);
/// write() until all n bytes are written; throws naming path on failure.
void write_all(int fd, const void* data, size_t n, const std::string& path);
/// fsync of an open file; throws naming path on failure.
void fsync_or_fail(int fd, const std::string& path);
/// fsync of a folder, so that renames and new entries in it are durable.
void fsync_dir(const std::string& dir);
/// fsync of every regular file and folder under dir, and of dir itself.
void fsync_tree(const std::string& dir);
/// The folder holding path ("." for a bare file name).
std::string parent_dir(const std::string& path);
/// Writes path atomically: write(fd) fills tmp_path, which is fsynced and renamed over path,
/// then the folder is fsynced. On any failure tmp_path is removed and the error rethrown.
void write_file_atomic(const std::string& path, const std::string& tmp_path,
                       const std::function<void(int fd)>& write);

}  // namespace moxing::detail
