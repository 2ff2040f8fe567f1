// The registry of tokenizer.json model types, load_tokenizer (picks the model from the files
// found), eos_token_id and StreamDecoder.
#include "moxing/tokenizers/tokenizer.h"

#include <filesystem>
#include <map>
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

// ---- the model registry

namespace {

std::map<std::string, TokenizerModel>& model_registry() {
  static std::map<std::string, TokenizerModel> models;
  return models;
}

}  // namespace

void register_tokenizer_model(TokenizerModel model) {
  MOXING_CHECK(!model_registry().count(model.model_type),
               "tokenizer model type {} is registered twice", model.model_type);
  std::string type = model.model_type;
  model_registry().emplace(std::move(type), std::move(model));
}

std::vector<std::string> tokenizer_model_types() {
  std::vector<std::string> types;
  for (const auto& [t, m] : model_registry()) types.push_back(t);
  return types;
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
    auto it = model_registry().find(type);
    if (it == model_registry().end()) {
      fail("tokenizer.json: unsupported model type '{}' (moxing reads {})", type,
           fmt::join(tokenizer_model_types(), ", "));
    }
    return it->second.from_json(j);
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

// The first registered model whose folder files are all in dir; else an error listing what
// each model needs (and which of its files are missing when only some are there).
std::unique_ptr<Tokenizer> load_tokenizer_folder(const fs::path& dir) {
  std::vector<std::string> wanted;
  std::string missing;
  for (const auto& [type, m] : model_registry()) {
    if (m.folder_files.empty()) continue;
    std::vector<std::string> absent;
    for (const auto& f : m.folder_files) {
      if (!fs::exists(dir / f)) absent.push_back(f);
    }
    if (absent.empty()) return m.from_folder(dir.string());
    if (absent.size() < m.folder_files.size()) {
      missing += fmt::format(" ({} {} missing)", fmt::join(absent, " and "),
                             absent.size() == 1 ? "is" : "are");
    }
    wanted.push_back(fmt::format("{}", fmt::join(m.folder_files, " + ")));
  }
  fail("{}: no tokenizer.json, and no {}{}", dir.string(), fmt::join(wanted, " or "), missing);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json"))
      return load_tokenizer_json((dir / "tokenizer.json").string());
    return load_tokenizer_folder(dir);
  }
  if (!fs::exists(path, ec)) fail("{}: no such file or directory", path);
  if (has_gguf_extension(path)) {
    return std::make_unique<ByteLevelBPE>(detail::bpe_from_gguf(load_gguf(path)));
  }
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
