// Atomic checkpoint folders and text files (see include/moxing/io/checkpoint.h).
#include "moxing/io/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "io/file_util.h"
#include "moxing/core/error.h"

namespace moxing {

namespace fs = std::filesystem;

namespace {

// mkdtemp on "<prefix>XXXXXX"; returns the folder it created.
std::string make_temp_dir(const std::string& prefix, const std::string& dir) {
  std::string pattern = prefix + "XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    fail("write_checkpoint_dir: {}: cannot create a temporary folder beside it: {}", dir,
         detail::errno_text(errno));
  }
  return std::string(buf.data());
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

// Moves the complete folder tmp to dir, which exists. Returns the path now holding the old
// contents, for the caller to delete.
std::string replace_existing(const std::string& tmp, const std::string& dir) {
#ifdef RENAME_EXCHANGE
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) return tmp;
  if (errno != EINVAL && errno != ENOSYS) {
    fail("write_checkpoint_dir: {}: cannot swap in {}: {}", dir, tmp, detail::errno_text(errno));
  }
#endif
  // Without an atomic exchange: move the old folder onto an empty placeholder (rename
  // replaces an empty folder), then the new one into place. Between the two renames only
  // complete copies exist, under "<dir>.old-*" and "<dir>.tmp-*".
  std::string old = make_temp_dir(dir + ".old-", dir);
  if (::rename(dir.c_str(), old.c_str()) != 0) {
    int err = errno;
    remove_quietly(old);
    fail("write_checkpoint_dir: {}: cannot move the old checkpoint aside: {}", dir,
         detail::errno_text(err));
  }
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    int err = errno;
    ::rename(old.c_str(), dir.c_str());
    fail("write_checkpoint_dir: {}: cannot move {} into place: {}", dir, tmp,
         detail::errno_text(err));
  }
  return old;
}

}  // namespace

void write_checkpoint_dir(const std::string& dir,
                          const std::function<void(const std::string& tmp_dir)>& write_files) {
  fs::path target(dir);
  if (!target.has_filename()) target = target.parent_path();  // "ckpt/" -> "ckpt"
  if (target.empty()) fail("write_checkpoint_dir: empty folder name");
  std::string dst = target.string();
  struct stat st;
  bool exists = ::lstat(dst.c_str(), &st) == 0;
  if (exists && !S_ISDIR(st.st_mode)) {
    fail("write_checkpoint_dir: {} exists and is not a folder", dst);
  }

  std::string tmp = make_temp_dir(dst + ".tmp-", dst);
  std::string old;
  try {
    write_files(tmp);
    detail::fault_point();  // a complete temporary folder, not yet in place
    detail::fsync_tree(tmp);
    if (exists) {
      old = replace_existing(tmp, dst);
    } else if (::rename(tmp.c_str(), dst.c_str()) != 0) {
      fail("write_checkpoint_dir: {}: cannot move {} into place: {}", dst, tmp,
           detail::errno_text(errno));
    }
  } catch (...) {
    remove_quietly(tmp);
    throw;
  }
  detail::fsync_dir(detail::parent_dir(dst));
  detail::fault_point();  // the new folder in place, the old one not yet removed
  if (!old.empty()) remove_quietly(old);
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  detail::write_file_atomic(path, tmp,
                            [&](int fd) { detail::write_all(fd, text.data(), text.size(), tmp); });
}

}  // namespace moxing
