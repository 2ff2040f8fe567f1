// Where a model keeps its chat template: GGUF metadata or the tokenizer files of a folder.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "moxing/core/error.h"
#include "moxing/io/file.h"
#include "moxing/io/gguf.h"
#include "moxing/tokenizers/chat_template.h"

namespace moxing::tokenizers {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// tokenizer_config.json's bos_token / eos_token: a string or an AddedToken object
std::string token_text(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return "";
}

std::optional<ModelChatTemplate> from_gguf(const std::string& path) {
  GgufFile f = load_gguf(path);
  const GgufValue* t = f.find("tokenizer.chat_template");
  if (t == nullptr) return std::nullopt;
  const std::string& source = t->as_string("tokenizer.chat_template");
  std::string bos, eos;
  if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens")) {
    const std::vector<std::string> all = tokens->as_strings("tokenizer.ggml.tokens");
    auto token = [&](const char* key) {
      const GgufValue* id = f.find(key);
      if (id == nullptr) return std::string();
      const int64_t i = id->as_int(key);
      return i >= 0 && i < static_cast<int64_t>(all.size()) ? all[static_cast<size_t>(i)]
                                                            : std::string();
    };
    bos = token("tokenizer.ggml.bos_token_id");
    eos = token("tokenizer.ggml.eos_token_id");
  }
  return ModelChatTemplate{ChatTemplate(source, path + ": tokenizer.chat_template"), bos, eos};
}

std::optional<ModelChatTemplate> from_folder(const fs::path& dir) {
  json config = json::object();
  const fs::path config_path = dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    try {
      config = json::parse(read_text_file(config_path.string()));
    } catch (const json::exception& e) {
      fail("{}: invalid JSON: {}", config_path.string(), e.what());
    }
  }
  std::optional<std::string> source;
  std::string where = config_path.string() + ": chat_template";
  if (auto it = config.find("chat_template"); it != config.end()) {
    if (it->is_string()) {
      source = it->get<std::string>();
    } else if (it->is_array()) {
      for (const json& t : *it) {
        if (t.is_object() && t.value("name", "") == "default" && t.contains("template") &&
            t["template"].is_string()) {
          source = t["template"].get<std::string>();
        }
      }
      MOXING_CHECK(source.has_value(), "{}: chat_template lists no \"default\" template",
                   config_path.string());
    }
  }
  if (!source && fs::exists(dir / "chat_template.jinja")) {
    source = read_text_file((dir / "chat_template.jinja").string());
    where = (dir / "chat_template.jinja").string();
  }
  if (!source) return std::nullopt;
  return ModelChatTemplate{ChatTemplate(*source, where), token_text(config, "bos_token"),
                           token_text(config, "eos_token")};
}

}  // namespace

std::optional<ModelChatTemplate> load_chat_template(const std::string& path) {
  std::error_code ec;
  if (has_gguf_extension(path) && fs::is_regular_file(path, ec)) return from_gguf(path);
  if (fs::is_directory(path, ec)) return from_folder(path);
  return std::nullopt;
}

}  // namespace moxing::tokenizers
