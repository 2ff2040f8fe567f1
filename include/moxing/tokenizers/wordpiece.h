// BERT's WordPiece tokenizer as Hugging Face `tokenizers` (BertTokenizerFast) runs it: added
// tokens matched in the raw text, BertNormalizer (clean text, spaces around CJK ideographs,
// strip accents, lowercase), BertPreTokenizer (split on whitespace, each punctuation character
// its own word), then greedy longest-match-first WordPiece with the "##" prefix. Model inputs
// come from encode_for_model: [CLS] A [SEP] (B [SEP]) with token types, longest_first
// truncation and padding. Reads and writes tokenizer.json and vocab.txt. Not covered: offsets,
// overflowing tokens (stride), left padding or truncation, training.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "moxing/tokenizers/bpe.h"
#include "moxing/tokenizers/tokenizer.h"

namespace moxing::tokenizers {

/// HF's BertNormalizer options.
struct BertNormalizerOptions {
  /// Drop NUL, U+FFFD and control characters (Cc, Cf, Co but \t \n \r); whitespace -> ' '.
  bool clean_text = true;
  /// Put spaces around CJK ideographs so that each is its own word.
  bool handle_chinese_chars = true;
  /// NFD, then drop the nonspacing marks (Mn); unset: follows lowercase.
  std::optional<bool> strip_accents = std::nullopt;
  bool lowercase = true;
};

/// A WordPiece tokenizer's settings (tokenizer.json "model", the normalizer and the tokens that
/// the post-processor and padding use).
struct WordPieceOptions {
  BertNormalizerOptions normalizer;
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  /// A word with more characters than this becomes the unk token.
  int64_t max_input_chars_per_word = 100;
  /// Used by the default template ([CLS] A [SEP], [CLS] A [SEP] B [SEP]) and by padding.
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  /// The WordPiece decoder's cleanup (" ." -> ".", " ," -> ",", ...).
  bool decoder_cleanup = true;
};

struct WordPieceTrainOptions {
  /// Target size: special tokens + characters + "##" characters + merges.
  int64_t vocab_size = 30000;
  /// Pairs seen fewer times than this are never merged (HF's default: 0).
  int64_t min_frequency = 0;
  /// Ids 0.. in this order; must hold the unk token "[UNK]".
  std::vector<std::string> special_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  /// The normalizer words are counted with, and that the trained tokenizer has.
  BertNormalizerOptions normalizer;
  /// Periodic progress lines on stderr.
  bool progress = false;
};

/// Model inputs for one text or text pair: each vector has one entry per position.
struct Encoding {
  std::vector<int32_t> ids = {};
  /// 0 for the first text and its special tokens, 1 for the second (HF token_type_ids).
  std::vector<int32_t> token_type_ids;
  /// 1 for tokens, 0 for padding.
  std::vector<int32_t> attention_mask;
};

struct EncodeOptions {
  /// Add [CLS] / [SEP] as the post-processor's template says.
  bool add_special_tokens = true;
  /// Longest result, special tokens included; 0: no truncation. A pair is cut as HF's
  /// longest_first does: the longer text first, down to halves of what is left.
  int64_t max_length = 0;
  /// Pad (pad token, type 0, mask 0, on the right) up to this length; 0: no padding.
  int64_t pad_to = 0;
};

/// One piece of a post-processor template: a special token's ids, or sequence A (0) / B (1).
struct TemplatePiece {
  int sequence = -1;
  std::string special = {};  // the special token's name when sequence < 0
  std::vector<int32_t> ids = {};
  int32_t type_id = 0;
};

namespace detail {
class AddedSplitter;
}  // namespace detail

/// WordPiece with BERT's normalizer and pre-tokenizer. encode and decode hold no mutable
/// state: thread-safe.
class WordPieceTokenizer : public Tokenizer {
 public:
  /// tokens[id]: the model vocab (as in vocab.txt); added tokens carry their ids (an id past
  /// the vocab extends it). The unk token must be in the vocab.
  WordPieceTokenizer(std::vector<std::string> tokens, std::vector<AddedToken> added,
                     WordPieceOptions options = {});
  WordPieceTokenizer(const WordPieceTokenizer& other);
  WordPieceTokenizer(WordPieceTokenizer&& other) noexcept;
  ~WordPieceTokenizer() override;

  /// A BERT folder without tokenizer.json: vocab.txt (one token per line, id = line number)
  /// and an optional tokenizer_config.json (do_lower_case, tokenize_chinese_chars,
  /// strip_accents), read as transformers' BertTokenizerFast does: [PAD] [UNK] [CLS] [SEP]
  /// [MASK] are special, the template is [CLS] A [SEP] (B [SEP]).
  static WordPieceTokenizer from_vocab_txt(const std::string& dir);
  /// Learns a vocab from texts as HF's WordPieceTrainer does: BPE merges over the normalized,
  /// pre-tokenized words, each word's characters after the first carrying "##", a merge of
  /// (a, ##b) giving ab. Ids: the special tokens, the characters by code point, the "##"
  /// characters in the order of the sorted words, then merges. HF numbers the "##"
  /// characters in hash-map order instead, so the ids (and merges that tie on count) can
  /// differ from one HF run to the next and from these.
  static WordPieceTokenizer train(const std::vector<std::string>& texts,
                                  const WordPieceTrainOptions& o);

  std::string type() const override { return "wordpiece"; }
  /// Ids without special tokens (HF encode(text, add_special_tokens=False)); see
  /// encode_for_model for [CLS] / [SEP], token types and attention masks.
  std::vector<int32_t> encode(std::string_view text) const override;
  /// HF's WordPiece decoder: "##" pieces glued to the previous token, others after a space,
  /// then " ." " ," " !" " ?" (and the other cleanups) joined.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  /// Writes tokenizer.json and vocab.txt.
  void save(const std::string& dir) const override;
  /// The token as decode writes it after another token: a "##" piece without its prefix,
  /// other tokens after a space.
  std::string token_bytes(int32_t id) const override;
  bool is_special(int32_t id) const override;

  /// Tokens (as in the vocab) of text without special tokens.
  std::vector<std::string> tokenize(std::string_view text) const;
  /// text after the normalizer (valid UTF-8 in, out).
  std::string normalize(std::string_view text) const;
  /// Model inputs for text, or for the pair (text, pair) when pair is given.
  Encoding encode_for_model(std::string_view text,
                            std::optional<std::string_view> pair = std::nullopt,
                            const EncodeOptions& o = {}) const;
  /// Each text encoded, then padded to the longest in the batch (or to o.pad_to if longer).
  std::vector<Encoding> encode_batch(std::span<const std::string> texts,
                                     const EncodeOptions& o = {}) const;
  /// The same for text pairs.
  std::vector<Encoding> encode_batch(std::span<const std::pair<std::string, std::string>> pairs,
                                     const EncodeOptions& o = {}) const;
  /// e padded on the right to length with the pad token (mask 0, type 0), as encode_batch pads.
  void pad(Encoding& e, int64_t length) const;

  const WordPieceOptions& options() const { return options_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  int32_t unk_id() const { return unk_id_; }
  /// The post-processor's templates for one text and for a pair (empty: nothing added).
  const std::vector<TemplatePiece>& single_template() const { return single_; }
  const std::vector<TemplatePiece>& pair_template() const { return pair_; }
  /// Replaces the templates (what a tokenizer.json post_processor says).
  void set_templates(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair);
  /// False when the tokenizer.json has no decoder: decode then joins tokens with spaces.
  bool wordpiece_decoder = true;
  /// The tokenizer.json text (what save writes).
  std::string to_json() const;

 private:
  template <class F>
  void for_each_word(std::string_view text, F&& emit) const;
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  Encoding post_process(std::vector<int32_t> a, std::optional<std::vector<int32_t>> b,
                        const EncodeOptions& o) const;

  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> vocab_;
  size_t n_model_ = 0;  // ids below this are the model vocab (vocab.txt), the rest only added
  std::vector<AddedToken> added_;
  std::vector<char> special_;
  WordPieceOptions options_;
  int32_t unk_id_ = -1;
  int32_t pad_id_ = -1;
  std::vector<TemplatePiece> single_, pair_;
  std::unique_ptr<detail::AddedSplitter> raw_splitter_;   // added tokens with normalized false
  std::unique_ptr<detail::AddedSplitter> norm_splitter_;  // the others, in normalized text
};

}  // namespace moxing::tokenizers
