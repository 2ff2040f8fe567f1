// Delimited text tables (CSV as RFC 4180 and spreadsheets write it, TSV): a header row naming
// the columns, then one record per row. Quoted fields may hold the delimiter, doubled quotes
// and line breaks. What the text tasks read labelled examples from.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moxing::data {

struct CsvTable {
  std::string name;                            ///< the file, for errors
  std::vector<std::string> header;             ///< column names
  std::vector<std::vector<std::string>> rows;  ///< each with header.size() fields
  std::vector<int64_t> lines;                  ///< the 1-based line each row starts on

  /// Index of the column called name; the error names the file and lists the columns.
  size_t column(const std::string& name, const std::string& what = "column") const;
};

/// Parses text (UTF-8, an optional byte-order mark, \n or \r\n line ends). Blank lines are
/// skipped. A row with another field count than the header, an unterminated quote or invalid
/// UTF-8 is an error naming name and the line.
CsvTable parse_csv(std::string_view text, const std::string& name, char delimiter = ',');

/// Reads a .csv (',') or .tsv ('\t') file.
CsvTable read_csv(const std::string& path);

}  // namespace moxing::data
