// The texts a text command is given: --text values, then the lines of --file (one text a
// line, blank lines skipped), each checked to be UTF-8 and not empty.
#pragma once

#include <string>
#include <vector>

namespace moxing::tools {

/// The texts in order; errors name the file and line (or the --text) and the fix. command
/// prefixes the errors ("embed", "classify", ...).
std::vector<std::string> read_input_texts(const std::vector<std::string>& texts,
                                          const std::string& file, const std::string& command);

}  // namespace moxing::tools
