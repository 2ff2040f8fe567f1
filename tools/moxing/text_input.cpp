#include "text_input.h"

#include <fmt/format.h>

#include "moxing/core/error.h"
#include "moxing/io/file.h"
#include "moxing/tokenizers/utf8.h"

namespace moxing::tools {

std::vector<std::string> read_input_texts(const std::vector<std::string>& given,
                                          const std::string& file, const std::string& command) {
  std::vector<std::string> texts;
  for (size_t i = 0; i < given.size(); ++i) {
    tokenizers::check_utf8(given[i], fmt::format("{}: --text {}", command, i + 1));
    MOXING_CHECK(given[i].find_first_not_of(" \t\r\n") != std::string::npos,
                 "{}: --text {} is empty", command, i + 1);
    texts.push_back(given[i]);
  }
  if (!file.empty()) {
    std::string content = read_text_file(file);
    size_t start = 0;
    int64_t line = 0;
    while (start <= content.size()) {
      size_t end = content.find('\n', start);
      if (end == std::string::npos) end = content.size();
      ++line;
      std::string text = content.substr(start, end - start);
      if (!text.empty() && text.back() == '\r') text.pop_back();
      if (text.find_first_not_of(" \t") != std::string::npos) {
        tokenizers::check_utf8(text, fmt::format("{}: {} line {}", command, file, line));
        texts.push_back(std::move(text));
      }
      start = end + 1;
    }
  }
  MOXING_CHECK(!texts.empty(), "{}: no text (give --text T or --file F with one text a line)",
               command);
  return texts;
}

}  // namespace moxing::tools
