// The tokenizer interface shared by byte-level BPE and the character tokenizer, the loader
// that picks one from a tokenizer.json (or GPT-2 vocab.json + merges.txt), and the streaming
// decoder used by text generation. Not a normalizer or post-processor framework: the
// pipelines moxing reads are the GPT-2 one and the per-character one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moxing::tokenizers {

/// A text <-> ids mapping. encode and decode may be called from several threads at once.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// "bpe" or "char".
  virtual std::string type() const = 0;
  /// Ids of text (UTF-8); throws moxing::Error "invalid UTF-8 at byte N" otherwise.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  /// Text of ids; invalid UTF-8 (a character cut between tokens) becomes U+FFFD.
  virtual std::string decode(std::span<const int32_t> ids,
                             bool skip_special_tokens = false) const = 0;
  /// Number of ids, added and special tokens included.
  virtual int64_t vocab_size() const = 0;
  /// Id of a token as written in the vocab (byte-level tokens in their unicode-mapped form).
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  /// Token of an id as written in the vocab; throws on an id out of range.
  virtual std::string id_to_token(int32_t id) const = 0;
  /// Creates dir and writes tokenizer.json there (and vocab.json + merges.txt for bpe).
  virtual void save(const std::string& dir) const = 0;
  /// Bytes (raw, not the unicode-mapped form) that token id stands for: what StreamDecoder
  /// concatenates.
  virtual std::string token_bytes(int32_t id) const = 0;
  /// True for ids of special tokens (skipped by decode when asked).
  virtual bool is_special(int32_t id) const = 0;
  /// The id of "<|endoftext|>" (else "</s>", "<eos>") when the vocab has it.
  std::optional<int32_t> eos_token_id() const;
};

/// A tokenizer from the text of a tokenizer.json; path names it in errors.
std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view text, const std::string& path);
/// path: a directory with tokenizer.json, or with vocab.json + merges.txt, or a tokenizer.json
/// file. Errors name the path and what is missing or unsupported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

/// Decodes ids one at a time for text generation: push returns the complete UTF-8 characters
/// that the ids so far add (a byte-level token can end inside a character), finish returns
/// what is left, with an incomplete character as U+FFFD.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(&tok) {}
  std::string push(int32_t id);
  std::string finish();

 private:
  const Tokenizer* tok_;
  std::string pending_;  // bytes of a character not yet complete
};

}  // namespace moxing::tokenizers
