// Tokenizer encode throughput (see tokenizer_bench.h). "cold": the first pass of a freshly
// loaded tokenizer (every word merged); "warm": the best of three later passes (words from
// the cache). MB are 10^6 bytes of UTF-8 input. With a column, the texts are that column of a
// CSV/TSV table: "lines" are its cells, "whole" the cells joined by newlines.
#include "tokenizer_bench.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "command.h"
#include "moxing/core/error.h"
#include "moxing/data/csv.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/tokenizers/utf8.h"

namespace moxing::tools {

namespace {

using Clock = std::chrono::steady_clock;

struct Pass {
  double cold_s = 0, warm_s = 1e30;
  size_t tokens = 0;
};

template <class F>
Pass measure(const std::string& path, const F& encode_all) {
  Pass p;
  auto tok = tokenizers::load_tokenizer(path);
  auto t0 = Clock::now();
  p.tokens = encode_all(*tok);
  p.cold_s = std::chrono::duration<double>(Clock::now() - t0).count();
  for (int r = 0; r < 3; ++r) {
    t0 = Clock::now();
    encode_all(*tok);
    p.warm_s = std::min(p.warm_s, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return p;
}

}  // namespace

int run_tokenizer_bench(const std::string& tokenizer, const std::string& file, bool json,
                        const std::string& column) {
  std::string text;
  std::vector<std::string> lines;
  if (!column.empty()) {
    data::CsvTable table = data::read_csv(file);
    const size_t col = table.column(column);
    for (const auto& row : table.rows) {
      lines.push_back(row[col]);
      text += row[col];
      text += '\n';
    }
  } else {
    std::ifstream f(file, std::ios::binary);
    if (!f) fail("{}: cannot open the file", file);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    text = tokenizers::replace_invalid_utf8(text);
    for (size_t start = 0; start < text.size();) {
      size_t nl = text.find('\n', start);
      size_t end = nl == std::string::npos ? text.size() : nl + 1;
      lines.push_back(text.substr(start, end - start));
      start = end;
    }
  }
  Pass whole =
      measure(tokenizer, [&](const tokenizers::Tokenizer& t) { return t.encode(text).size(); });
  Pass by_line = measure(tokenizer, [&](const tokenizers::Tokenizer& t) {
    size_t n = 0;
    for (const auto& l : lines) n += t.encode(l).size();
    return n;
  });
  const double mb = static_cast<double>(text.size()) / 1e6;
  nlohmann::ordered_json j;
  j["peer"] = "moxing";
  j["file"] = file;
  if (!column.empty()) j["column"] = column;
  j["bytes"] = text.size();
  j["lines"] = lines.size();
  j["tokens_whole"] = whole.tokens;
  j["tokens_lines"] = by_line.tokens;
  j["whole_cold_mbps"] = mb / whole.cold_s;
  j["whole_warm_mbps"] = mb / whole.warm_s;
  j["lines_cold_mbps"] = mb / by_line.cold_s;
  j["lines_warm_mbps"] = mb / by_line.warm_s;
  if (json) {
    std::cout << j.dump() << "\n";
  } else {
    std::cout << fmt::format("{}: {:.2f} MB, {} lines, {} tokens\n", file, mb, lines.size(),
                             whole.tokens);
    std::cout << fmt::format("encode whole text   cold {:8.2f} MB/s   warm {:8.2f} MB/s\n",
                             mb / whole.cold_s, mb / whole.warm_s);
    std::cout << fmt::format("encode line by line cold {:8.2f} MB/s   warm {:8.2f} MB/s\n",
                             mb / by_line.cold_s, mb / by_line.warm_s);
  }
  return 0;
}

namespace {

Command add_bench_tokenizer_command(CLI::App& app) {
  struct Args {
    std::string tokenizer, file, column;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench-tokenizer", "Measure tokenizer encode throughput (MB/s)");
  cmd->add_option("TOKENIZER", a->tokenizer, "tokenizer.json or a folder with it")->required();
  cmd->add_option("FILE", a->file, "A text file (or a CSV/TSV table with --column)")->required();
  cmd->add_option("--column", a->column,
                  "Read the texts from this column of a CSV/TSV table (FILE) instead");
  cmd->add_flag("--json", a->json, "Print the results as one JSON object on stdout");
  return {cmd, [a] { return run_tokenizer_bench(a->tokenizer, a->file, a->json, a->column); }};
}

}  // namespace

MOXING_CLI_COMMAND(add_bench_tokenizer_command);

}  // namespace moxing::tools
