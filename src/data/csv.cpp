// RFC 4180 fields in one pass over the text: a field is quoted when its first character is a
// quote, and then runs to the closing quote (a doubled quote is one quote character).
#include "moxing/data/csv.h"

#include <fmt/format.h>

#include <filesystem>

#include "moxing/core/error.h"
#include "moxing/io/file.h"
#include "moxing/tokenizers/utf8.h"

namespace moxing::data {

size_t CsvTable::column(const std::string& column_name, const std::string& what) const {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == column_name) return i;
  }
  fail("{}: no {} '{}' (the columns are: {})", name, what, column_name, fmt::join(header, ", "));
}

CsvTable parse_csv(std::string_view text, const std::string& name, char delimiter) {
  const size_t bom = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
  text.remove_prefix(bom);
  size_t bad = tokenizers::find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    int64_t line = 1;
    for (size_t i = 0; i < bad; ++i) line += text[i] == '\n';
    // the byte as the file counts it, the byte-order mark included
    fail("{}:{}: invalid UTF-8 at byte {}; convert the file to UTF-8", name, line, bad + bom);
  }
  CsvTable t;
  t.name = name;
  std::vector<std::string> row;
  std::string field;
  int64_t line = 1, row_line = 1;
  size_t i = 0;
  const size_t n = text.size();
  bool row_has_content = false;
  auto end_row = [&] {
    row.push_back(std::move(field));
    field.clear();
    bool blank = !row_has_content && row.size() == 1 && row[0].empty();
    if (!blank) {
      if (t.header.empty()) {
        t.header = std::move(row);
      } else {
        MOXING_CHECK(row.size() == t.header.size(),
                     "{}:{}: {} fields where the header has {} (quote fields that hold '{}')", name,
                     row_line, row.size(), t.header.size(),
                     delimiter == '\t' ? "\\t" : std::string(1, delimiter));
        t.rows.push_back(std::move(row));
        t.lines.push_back(row_line);
      }
    }
    row.clear();
    row_has_content = false;
  };
  while (i < n) {
    if (field.empty() && text[i] == '"') {  // a quoted field
      row_has_content = true;
      const int64_t start_line = line;
      ++i;
      while (true) {
        MOXING_CHECK(i < n, "{}:{}: a quoted field is not closed", name, start_line);
        if (text[i] == '"') {
          if (i + 1 < n && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        line += text[i] == '\n';
        field += text[i++];
      }
      // after the closing quote: a delimiter, a line end or the end
      MOXING_CHECK(i >= n || text[i] == delimiter || text[i] == '\n' || text[i] == '\r',
                   "{}:{}: text after a closing quote (a quote inside a quoted field is "
                   "written \"\")",
                   name, line);
      continue;
    }
    char c = text[i];
    if (c == delimiter) {
      row_has_content = true;
      row.push_back(std::move(field));
      field.clear();
      ++i;
    } else if (c == '\r' && i + 1 < n && text[i + 1] == '\n') {
      ++i;
    } else if (c == '\n') {
      end_row();
      ++i;
      row_line = ++line;
    } else {
      row_has_content = true;
      field += c;
      ++i;
    }
  }
  if (row_has_content || !field.empty() || !row.empty()) end_row();
  MOXING_CHECK(!t.header.empty(),
               "{}: the file is empty (a header row naming the columns is "
               "needed)",
               name);
  return t;
}

CsvTable read_csv(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  return parse_csv(read_text_file(path), path, ext == ".tsv" ? '\t' : ',');
}

}  // namespace moxing::data
