// Language-model data for `moxing train` with [data] name "text": text files become documents,
// documents a train/validation split, the split token files (tokenized once, reused on
// resume), and training batches random windows of them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "moxing/core/tensor.h"
#include "moxing/io/token_file.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/train/config.h"
#include "moxing/train/task.h"

namespace moxing::train {

/// text without the terminal codes fortune files use: ANSI escape sequences (ESC '['
/// parameters final-letter) for colour, and overstrikes ("_\bx" underline, "x\bx" bold) for
/// emphasis, of which the last character is kept.
std::string strip_terminal_codes(std::string_view text);

/// The documents of a file's text: format "fortune" (entries between lines holding only "%",
/// terminal codes removed), "lines" (each non-empty line) or "text" (the whole text). Documents
/// are trimmed of surrounding whitespace; empty ones are dropped.
std::vector<std::string> split_documents(std::string_view text, const std::string& format);

/// The documents of a UTF-8 file. (prepare_lm_data also reads .csv / .tsv tables, a document
/// per row of text_column.) Invalid UTF-8 is an error naming the file and byte offset,
/// or, with replace_invalid, each invalid sequence becomes U+FFFD.
std::vector<std::string> read_documents(const std::string& path, const std::string& format,
                                        bool replace_invalid = false);

/// Entropy (nats) of the unigram distribution of the tokens themselves: the loss of the best
/// model that ignores context, fitted on this very split.
double unigram_entropy(const TokenFile& tokens, int64_t vocab_size);

/// The [data] keys of "text" for language models.
struct TextDataOptions {
  /// UTF-8 files (or .csv/.tsv tables, whose text_column is read, a document per row).
  std::vector<std::string> files;
  /// "fortune" (entries between "%" lines, terminal codes removed), "lines" (one document per
  /// non-empty line) or "text" (one document per file).
  std::string format = "text";
  /// "char", "bpe" or "wordpiece" (trained on the training documents), or a tokenizer folder.
  std::string tokenizer = "char";
  /// bpe and wordpiece: the vocabulary size; char: the most frequent characters (0: all).
  int64_t vocab_size = 0;
  /// "error" (naming file and byte offset) or "replace" (U+FFFD).
  std::string invalid_utf8 = "error";
  /// the column of the tables in files
  std::string text_column = "text";

  template <class F>
  void visit(F&& f) {
    f("files", files);
    f("format", format);
    f("tokenizer", tokenizer);
    f("vocab_size", vocab_size);
    f("invalid_utf8", invalid_utf8);
    f("text_column", text_column);
  }
};

/// Checks the keys every language-model source needs (files given, format, invalid_utf8,
/// vocab_size), without reading the files.
void check_text_options(const TextDataOptions& text);

/// What a language-model run trains on: the tokenizer and the split token files.
struct LMData {
  std::shared_ptr<tokenizers::Tokenizer> tokenizer;
  std::shared_ptr<TokenFile> train, val;  // val is null without a validation split
  int32_t eos_id = -1;                    // separates documents
  double val_unigram_loss = 0;            // unigram_entropy(*val): the baseline to beat
  int64_t train_documents = 0, val_documents = 0;
};

/// Reads, splits (val_fraction of the documents, shuffled with [train] seed), trains or loads
/// the tokenizer and writes out_dir/data/{tokenizer/, train.bin, val.bin, meta.json}; when
/// meta.json already records the same [data] settings and seed (a resumed run), the files
/// are reused instead. Each document's tokens are followed by the end-of-text token.
LMData prepare_lm_data(const Config& config, const TextDataOptions& text,
                       const std::string& out_dir, bool progress);

/// A training batch of windows of T+1 tokens at offsets drawn from a Philox stream keyed by
/// (seed, draw): x (B,T) and y (B,T) = x shifted by one, both i64. The same (seed, draw) gives
/// the same batch, so a resumed run sees the batches of an uninterrupted one.
void sample_windows(const TokenFile& tokens, int64_t batch, int64_t T, uint64_t seed, uint64_t draw,
                    Tensor& x, Tensor& y);

/// The validation tokens of the `moxing train` run a model comes from (data/ in the run folder,
/// found from the checkpoint), checked against the tokenizer's vocabulary size: what `moxing
/// eval` of a language model reads. The error says when the folder is not from a run.
struct RunValTokens {
  std::shared_ptr<TokenFile> tokens;
  double unigram_loss = 0;  ///< the split's unigram entropy
};
RunValTokens open_run_val_tokens(const LoadedRun& run, int64_t vocab_size);

/// Consecutive windows [i*T, i*T + T] for i in [first, first + count): x (count,T), y (count,T).
void sequential_windows(const TokenFile& tokens, int64_t T, int64_t first, int64_t count, Tensor& x,
                        Tensor& y);

}  // namespace moxing::train
