// Text examples for the encoder tasks (sequence classification, masked LM) and the commands
// that run their models (classify, fill-mask): texts to model inputs with any tokenizer
// (WordPiece adds [CLS] / [SEP] and token types as BERT expects), padded batches, and the
// labelled tables the classification task reads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/models/encoder.h"
#include "moxing/tokenizers/tokenizer.h"
#include "moxing/tokenizers/wordpiece.h"
#include "moxing/train/config.h"

namespace moxing::train {

/// The ids and token types of text (and pair) as the model takes them, cut to max_length
/// tokens (0: no limit; specials included). *truncated is set when text had to be cut.
tokenizers::Encoding encode_text(const tokenizers::Tokenizer& tokenizer, std::string_view text,
                                 std::optional<std::string_view> pair, int64_t max_length,
                                 bool* truncated = nullptr);

/// The tokenizer's padding id: its [PAD] or <pad> token, else 0.
int32_t pad_token_id(const tokenizers::Tokenizer& tokenizer);

/// Encodings padded on the right to the longest: input_ids, token_type_ids and attention_mask
/// (B,T) i64.
models::EncoderInputs pad_batch(std::span<const tokenizers::Encoding> batch, int32_t pad_id);
/// The same for the encodings at indices.
models::EncoderInputs pad_batch(const std::vector<tokenizers::Encoding>& all,
                                std::span<const int64_t> indices, int32_t pad_id);

/// Batches of indices for evaluation: sorted by length (less padding) and cut where a batch
/// reaches max_batch texts or about max_tokens padded positions.
std::vector<std::vector<int64_t>> length_batches(const std::vector<tokenizers::Encoding>& all,
                                                 int64_t max_batch, int64_t max_tokens = 16384);

/// BERT's masking for masked-LM training (transformers' DataCollatorForLanguageModeling):
/// each token of ids that is not special is chosen with probability p; a chosen token becomes
/// mask_id (80%), a random id below vocab_size (10%) or stays (10%). Returns the labels: the
/// chosen positions' original ids, -100 elsewhere; at least one token is chosen when any
/// can be. Draws come from gen's stream at blocks [0, ids.size()), so (seed, ids) fixes them.
std::vector<int64_t> mask_tokens(std::vector<int64_t>& ids, const std::vector<char>& special,
                                 int64_t mask_id, int64_t vocab_size, double p,
                                 const Generator& gen);

/// "single_label_classification", "multi_label_classification" or "regression".
inline constexpr const char* kSingleLabel = "single_label_classification";
inline constexpr const char* kMultiLabel = "multi_label_classification";
inline constexpr const char* kRegression = "regression";

/// The [data] keys of "csv" (sequence classification). path is a folder with train.csv and
/// optionally validation.csv (or val.csv, dev.csv) and test.csv (or .tsv), or one file that
/// val_fraction splits.
struct CsvDataOptions {
  /// a tokenizer folder; empty: [model] pretrained's
  std::string tokenizer;
  std::string text_column = "text";
  /// the second text of pairs (empty: none)
  std::string text_pair_column;
  std::string label_column = "label";
  /// the label set in id order (empty: the training labels, sorted)
  std::vector<std::string> labels;
  /// cross-entropy weight per label, in the order of labels (empty: all 1)
  std::vector<double> class_weights;
  /// tokens per text (0: the model's window)
  int64_t max_length = 0;
  /// cut texts longer than max_length (false: an error naming file and line)
  bool truncate = true;

  template <class F>
  void visit(F&& f) {
    f("tokenizer", tokenizer);
    f("text_column", text_column);
    f("text_pair_column", text_pair_column);
    f("label_column", label_column);
    f("labels", labels);
    f("class_weights", class_weights);
    f("max_length", max_length);
    f("truncate", truncate);
  }
};

/// One split of a labelled table.
struct LabelledTexts {
  std::string path;
  std::vector<std::string> texts, pairs;        // pairs empty without [data] text_pair_column
  std::vector<int64_t> lines;                   // the line of each example in path
  std::vector<int64_t> labels;                  // single-label: the class of each example
  std::vector<std::vector<float>> targets;      // multi-label: 0/1 per label; regression: values
  std::vector<tokenizers::Encoding> encodings;  // filled by encode()
  int64_t truncated = 0;                        // examples cut by encode()

  int64_t size() const { return static_cast<int64_t>(texts.size()); }
  /// Encodes every example; with cut false, a text longer than max_length is an error naming
  /// the file and line.
  void encode(const tokenizers::Tokenizer& tokenizer, int64_t max_length, bool cut);
};

/// [data] name "csv": the train / validation / test tables, the label set (config's labels,
/// else the training labels sorted; multi-label cells list labels separated by ','), the
/// problem type. A label outside the set is an error naming the file, line and the set.
struct LabelledData {
  std::string problem_type = kSingleLabel;
  std::vector<std::string> labels;
  LabelledTexts train, val, test;  // val and test may be empty
};
LabelledData load_labelled_data(const Config& config, const std::string& problem_type);

}  // namespace moxing::train
