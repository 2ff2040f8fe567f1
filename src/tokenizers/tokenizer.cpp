// load_tokenizer (picks the model from the files found), eos_token_id and StreamDecoder.
#include "moxing/tokenizers/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "loaders.h"
#include "moxing/core/error.h"
#include "moxing/io/file.h"
#include "moxing/tokenizers/utf8.h"

namespace moxing::tokenizers {

namespace fs = std::filesystem;

std::optional<int32_t> Tokenizer::eos_token_id() const {
  for (const char* t : {"<|endoftext|>", "</s>", "<eos>"}) {
    if (auto id = token_to_id(t)) return id;
  }
  return std::nullopt;
}

std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
  try {
    if (!j.is_object()) fail("tokenizer.json: not a JSON object");
    auto model = j.find("model");
    if (model == j.end() || model->is_null()) fail("tokenizer.json: no \"model\"");
    if (!model->is_object()) fail("tokenizer.json: \"model\" is not an object");
    std::string type = model->value("type", model->contains("merges") ? "BPE" : "");
    if (type == "BPE") return std::make_unique<ByteLevelBPE>(detail::bpe_from_json(j));
    if (type == "WordLevel") return std::make_unique<CharTokenizer>(detail::char_from_json(j));
    fail(
        "tokenizer.json: unsupported model type '{}' (moxing reads BPE and character-level "
        "WordLevel)",
        type);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unexpected content ({})", path, e.what());
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
}

namespace {

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path) {
  return tokenizer_from_json(read_text_file(path), path);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json"))
      return load_tokenizer_json((dir / "tokenizer.json").string());
    bool vocab = fs::exists(dir / "vocab.json"), merges = fs::exists(dir / "merges.txt");
    if (vocab && merges) {
      return std::make_unique<ByteLevelBPE>(ByteLevelBPE::from_vocab_merges(
          (dir / "vocab.json").string(), (dir / "merges.txt").string()));
    }
    fail("{}: no tokenizer.json, and no vocab.json + merges.txt{}", path,
         vocab    ? " (merges.txt is missing)"
         : merges ? " (vocab.json is missing)"
                  : "");
  }
  if (!fs::exists(path, ec)) fail("{}: no such file or directory", path);
  return load_tokenizer_json(path);
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_->token_bytes(id);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    char32_t cp;
    int len = detail::utf8_sequence(pending_, i, &cp);
    if (len == 0) break;  // a character not complete yet: wait for the next id
    if (len > 0) {
      out.append(pending_, i, static_cast<size_t>(len));
      i += static_cast<size_t>(len);
    } else {
      out.append("\xEF\xBF\xBD");
      i += static_cast<size_t>(-len);
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = replace_invalid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace moxing::tokenizers
