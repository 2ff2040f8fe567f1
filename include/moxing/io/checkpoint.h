// Crash-safe writes for checkpoints: a checkpoint folder is filled under a temporary name,
// fsynced, then swapped into place, so a crash leaves the old checkpoint or the new one,
// never a half-written mix. Not a checkpoint format: what goes inside is the caller's.
#pragma once

#include <functional>
#include <string>

#include "moxing/io/file.h"

namespace moxing {

/// Writes the folder dir atomically. write_files fills a new folder "<dir>.tmp-XXXXXX" beside
/// dir; every file and folder in it is then fsynced and it replaces dir in one rename (an
/// atomic exchange where the filesystem supports it), after which the old contents are
/// deleted. If write_files throws, the temporary folder is removed, dir is left untouched and
/// the exception propagates.
void write_checkpoint_dir(const std::string& dir,
                          const std::function<void(const std::string& tmp_dir)>& write_files);

/// Writes text to path atomically: path + ".tmp", fsync, rename over path, fsync the folder.
void write_text_file_atomic(const std::string& path, const std::string& text);

}  // namespace moxing
