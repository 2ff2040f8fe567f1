// tokenizer.json readers of each model, called by load_tokenizer (tokenizer.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "moxing/io/gguf.h"
#include "moxing/tokenizers/bpe.h"
#include "moxing/tokenizers/char.h"

namespace moxing::tokenizers::detail {

/// A BPE tokenizer.json (model type "BPE" with a ByteLevel pre-tokenizer).
ByteLevelBPE bpe_from_json(const nlohmann::json& j);
/// The byte-level BPE a GGUF file's metadata holds (tokenizer.ggml.model "gpt2").
ByteLevelBPE bpe_from_gguf(const GgufFile& file);
/// A character tokenizer.json (model "WordLevel" split per character, as CharTokenizer saves).
CharTokenizer char_from_json(const nlohmann::json& j);
/// The "added_tokens" array (absent: none).
std::vector<AddedToken> added_tokens_from_json(const nlohmann::json& j);
/// The "added_tokens" array as HF writes it.
nlohmann::ordered_json added_tokens_to_json(const std::vector<AddedToken>& added);
/// The member key of a JSON object, or nullptr when it is absent or null.
const nlohmann::json* json_field(const nlohmann::json& j, const char* key);
/// The "type" of a tokenizer.json component (what names it in errors: "normalizer", ...).
std::string json_type_of(const nlohmann::json& j, const char* what);
/// A token id from JSON: an integer in [0, 2^31); what names it in the error.
int32_t id_from_json(const nlohmann::json& v, const std::string& what);
/// Writes text to path (throws naming the path on failure).
void write_text_file(const std::string& path, const std::string& text);

}  // namespace moxing::tokenizers::detail
