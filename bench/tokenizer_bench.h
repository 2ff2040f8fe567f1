// `moxing bench-tokenizer TOKENIZER FILE`: encode throughput (MB/s, one thread) of a tokenizer
// on a text file (or a CSV column, --column), whole and line by line, with a cold and a warm word
// cache. The HF peer is bench/peer/tokenizer_encode_hf.py (same measurements, same JSON keys).
#pragma once

#include <string>

namespace moxing::tools {

/// Prints the measurements (a table, or one JSON object with json); returns the exit code.
/// With a column, the texts are that column of the CSV/TSV table file, one text a line.
int run_tokenizer_bench(const std::string& tokenizer, const std::string& file, bool json,
                        const std::string& column = "");

}  // namespace moxing::tools
