// Byte-level BPE as GPT-2 and Hugging Face `tokenizers` define it: text is split on the
// special tokens, then by the GPT-2 pattern into words, each word's bytes start as one token
// each and merges are applied lowest rank first (leftmost on ties). Reads and writes
// tokenizer.json and GPT-2 vocab.json + merges.txt; trains from a corpus like HF's
// BpeTrainer; a Digits pre-tokenizer (individual digits) may come first. Not covered: normalizers,
// dropout, subword prefixes/suffixes, byte fallback.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "moxing/tokenizers/tokenizer.h"

namespace moxing::tokenizers {

struct BpeTrainOptions {
  /// Target size: 256 byte tokens + merges + special tokens.
  int64_t vocab_size = 8000;
  /// Pairs seen fewer times than this are never merged.
  int64_t min_frequency = 2;
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  /// Periodic progress lines on stderr.
  bool progress = false;
};

/// A token added on top of the model's vocab (HF "added_tokens"): matched in the raw text
/// before pre-tokenization, mapped straight to its id.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = true;
  /// Kept for saving; a tokenizer.json with single_word true is refused when loaded.
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

namespace detail {
struct BpeCache;
struct BpeIndex;
}  // namespace detail

/// Byte-level BPE. encode is thread-safe: the word cache is split into shards, each behind
/// its own mutex, so threads encoding at once rarely wait on each other.
class ByteLevelBPE : public Tokenizer {
 public:
  /// vocab: token (unicode-mapped form) -> id; merges in rank order, as token pairs.
  ByteLevelBPE(std::unordered_map<std::string, int32_t> vocab,
               std::vector<std::pair<std::string, std::string>> merges,
               std::vector<AddedToken> added = {});
  ByteLevelBPE(const ByteLevelBPE& other);
  ByteLevelBPE(ByteLevelBPE&& other) noexcept;
  ByteLevelBPE& operator=(ByteLevelBPE other) noexcept;
  ~ByteLevelBPE() override;

  /// Learns merges from texts (UTF-8) until the vocab has o.vocab_size tokens or no pair is
  /// seen o.min_frequency times. Ids: special tokens, then the 256 bytes (in the order of
  /// their mapped characters), then merges; ties go to the smaller id pair, as in HF.
  static ByteLevelBPE train(const std::vector<std::string>& texts, const BpeTrainOptions& o);
  /// GPT-2 vocab.json + merges.txt (merges.txt may start with a "#version" line).
  static ByteLevelBPE from_vocab_merges(const std::string& vocab_json,
                                        const std::string& merges_txt);

  std::string type() const override { return "bpe"; }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  void save(const std::string& dir) const override;
  std::string token_bytes(int32_t id) const override;
  bool is_special(int32_t id) const override;

  /// The merges in rank order, as token pairs (unicode-mapped form).
  std::vector<std::pair<std::string, std::string>> merges() const;
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  /// The HF ByteLevel pre-tokenizer options (defaults: GPT-2's).
  bool add_prefix_space = false;
  bool use_regex = true;
  /// HF BPE "ignore_merges": a word that is itself in the vocab maps to its id directly.
  bool ignore_merges = false;
  /// HF's Digits pre-tokenizer with individual_digits before ByteLevel (SmolLM's, llama.cpp's
  /// "smollm"): every \p{N} character is a piece of its own.
  bool individual_digits = false;
  /// The tokenizer.json text (what save writes there).
  std::string to_json() const;

 private:
  void encode_segment(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_pieces(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  void merge_word(std::vector<int32_t>& syms) const;

  std::vector<std::string> id_to_token_;  // unicode-mapped form; "" for unused ids
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::vector<std::pair<int32_t, int32_t>> merges_;  // rank -> pair of ids
  std::unique_ptr<detail::BpeIndex> index_;          // merge table and added-token splitter
  std::array<int32_t, 256> byte_id_{};               // id of each byte's token, -1 if absent
  std::vector<AddedToken> added_;
  std::vector<std::string> bytes_;  // raw bytes of each id
  std::vector<char> special_;
  std::vector<char> in_vocab_;  // ids of the model's vocab (not only added)
  std::unique_ptr<detail::BpeCache> cache_;
};

}  // namespace moxing::tokenizers
