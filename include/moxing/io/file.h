// Reading a whole file: the one function every loader of text formats (config.json,
// tokenizer files, trainer state) uses, so that they fail with the same message.
#pragma once

#include <string>

namespace moxing {

/// The whole file as a string (bytes as stored, no UTF-8 check); throws moxing::Error
/// "<path>: cannot open: <reason>" or "<path>: read failed".
std::string read_text_file(const std::string& path);

}  // namespace moxing
