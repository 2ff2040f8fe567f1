// Character-level tokenizer: one token per Unicode code point, vocab learned from a corpus,
// "<unk>" for characters not in it, special tokens matched before the split. Saved as an HF
// tokenizer.json (WordLevel model, Split pre-tokenizer on every character, Fuse decoder) that
// `tokenizers.Tokenizer.from_file` loads. Not grapheme clusters: "e" + U+0301 is two tokens.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "moxing/tokenizers/bpe.h"
#include "moxing/tokenizers/tokenizer.h"

namespace moxing::tokenizers {

struct CharTrainOptions {
  /// Largest vocab (special tokens included); 0 keeps every character seen.
  int64_t max_vocab = 0;
  /// Characters seen fewer times than this are left out (they encode as <unk>).
  int64_t min_frequency = 1;
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<unk>"};
};

namespace detail {
class AddedSplitter;
}  // namespace detail

/// One id per code point. encode and decode hold no mutable state: thread-safe.
class CharTokenizer : public Tokenizer {
 public:
  /// tokens[id]: a single code point, or the content of an added token; unk_token ("" for
  /// none) must be among them when given.
  CharTokenizer(std::vector<std::string> tokens, std::vector<AddedToken> added,
                std::string unk_token = "<unk>");
  CharTokenizer(const CharTokenizer& other);
  CharTokenizer(CharTokenizer&& other) noexcept;
  ~CharTokenizer() override;

  /// Ids: the special tokens in order, then characters by decreasing frequency, ties by
  /// code point.
  static CharTokenizer train(const std::vector<std::string>& texts, const CharTrainOptions& o);

  std::string type() const override { return "char"; }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  void save(const std::string& dir) const override;
  std::string token_bytes(int32_t id) const override { return id_to_token(id); }
  bool is_special(int32_t id) const override;

  /// The id unseen characters get, or -1 when there is no unk token.
  int32_t unk_id() const { return unk_id_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  /// The tokenizer.json text (what save writes).
  std::string to_json() const;

 private:
  void encode_segment(std::string_view text, std::vector<int32_t>& ids) const;

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> token_ids_;
  std::unordered_map<char32_t, int32_t> char_ids_;
  std::array<int32_t, 128> ascii_ids_{};
  std::vector<AddedToken> added_;
  std::vector<char> special_;
  std::string unk_token_;
  int32_t unk_id_ = -1;
  std::unique_ptr<detail::AddedSplitter> splitter_;
};

}  // namespace moxing::tokenizers
