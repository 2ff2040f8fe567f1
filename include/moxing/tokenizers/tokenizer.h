// The tokenizer interface shared by byte-level BPE, WordPiece and the character tokenizer, the
// registry of tokenizer.json model types (each model file registers itself), the loader that
// picks one from a tokenizer.json or a folder of vocab files, and the streaming decoder used by
// text generation. Not a normalizer or post-processor framework: each model reads the
// pipeline it belongs to (GPT-2's, BERT's, per-character).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moxing/io/gguf.h"

namespace moxing::tokenizers {

/// A text <-> ids mapping. encode and decode may be called from several threads at once.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// "bpe", "wordpiece" or "char".
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
/// path: a directory with tokenizer.json, or with the vocab files of a registered model
/// (vocab.json + merges.txt, vocab.txt), a tokenizer.json file, or a .gguf file (its
/// tokenizer.ggml.* metadata). Errors name the path and what is missing or unsupported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

/// The tokenizer as GGUF metadata (tokenizer.ggml.model "gpt2", .pre, .tokens, .token_type,
/// .merges), as llama.cpp's converter writes a byte-level BPE; other kinds are an error naming
/// where.
GgufMetadata gguf_metadata(const Tokenizer& tokenizer, const std::string& where);

/// How one tokenizer.json model type is read; a model file registers it with
/// MOXING_REGISTER_TOKENIZER, and tokenizer_from_json / load_tokenizer look it up by type.
struct TokenizerModel {
  /// The tokenizer.json "model"."type" it reads: "BPE", "WordPiece", "WordLevel".
  std::string model_type;
  /// A tokenizer from the whole tokenizer.json object; throws moxing::Error (the caller
  /// prefixes the path).
  std::function<std::unique_ptr<Tokenizer>(const nlohmann::json& j)> from_json;
  /// The files that make the model up in a folder without tokenizer.json (e.g. vocab.txt);
  /// empty when it has no such form.
  std::vector<std::string> folder_files;
  /// A tokenizer from such a folder (all of folder_files exist there).
  std::function<std::unique_ptr<Tokenizer>(const std::string& dir)> from_folder;
};

/// Registers a model type (at static-initialization time, through MOXING_REGISTER_TOKENIZER).
void register_tokenizer_model(TokenizerModel model);
/// The registered model types, sorted.
std::vector<std::string> tokenizer_model_types();

struct TokenizerModelRegistrar {
  explicit TokenizerModelRegistrar(TokenizerModel (*make)()) { register_tokenizer_model(make()); }
};

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

/// MOXING_REGISTER_TOKENIZER(make_wordpiece_model) at namespace scope in
/// src/tokenizers/<model>.cpp, where make_wordpiece_model() returns the TokenizerModel.
#define MOXING_REGISTER_TOKENIZER(make) \
  static const ::moxing::tokenizers::TokenizerModelRegistrar moxing_tokenizer_##make { make }
