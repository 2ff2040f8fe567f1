// Character-level tokenizer (see char.h).
#include "moxing/tokenizers/char.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "loaders.h"
#include "moxing/core/error.h"
#include "moxing/tokenizers/utf8.h"
#include "pretokenize.h"

namespace moxing::tokenizers {

namespace {

// The HF pre-tokenizer regex that isolates every character.
constexpr const char* kEveryChar = "[\\s\\S]";

// The code point of a one-character token, or -1.
int64_t single_code_point(std::string_view t) {
  if (t.empty()) return -1;
  char32_t cp;
  int len = detail::utf8_sequence(t, 0, &cp);
  return len == static_cast<int>(t.size()) ? static_cast<int64_t>(cp) : -1;
}

}  // namespace

CharTokenizer::CharTokenizer(std::vector<std::string> tokens, std::vector<AddedToken> added,
                             std::string unk_token)
    : tokens_(std::move(tokens)),
      added_(std::move(added)),
      unk_token_(std::move(unk_token)),
      splitter_(std::make_unique<detail::AddedSplitter>()) {
  ascii_ids_.fill(-1);
  special_.assign(tokens_.size(), 0);
  for (size_t id = 0; id < tokens_.size(); ++id) {
    const auto& t = tokens_[id];
    check_utf8(t, "char tokenizer: token");
    if (!token_ids_.emplace(t, static_cast<int32_t>(id)).second) {
      fail("char tokenizer: token '{}' appears twice in the vocab", t);
    }
    int64_t cp = single_code_point(t);
    if (cp < 0) continue;
    char_ids_.emplace(static_cast<char32_t>(cp), static_cast<int32_t>(id));
    if (cp < 128) ascii_ids_[cp] = static_cast<int32_t>(id);
  }
  for (const auto& a : added_) {
    if (a.id < 0 || a.id >= vocab_size() || tokens_[a.id] != a.content) {
      fail("char tokenizer: added token '{}' (id {}) is not that id in the vocab", a.content, a.id);
    }
    special_[a.id] = a.special ? 1 : 0;
    splitter_->add(a.content, a.id, a.lstrip, a.rstrip);
  }
  if (!unk_token_.empty()) {
    auto it = token_ids_.find(unk_token_);
    if (it == token_ids_.end())
      fail("char tokenizer: unk token '{}' is not in the vocab", unk_token_);
    unk_id_ = it->second;
  }
}

CharTokenizer::CharTokenizer(const CharTokenizer& o)
    : Tokenizer(o),
      tokens_(o.tokens_),
      token_ids_(o.token_ids_),
      char_ids_(o.char_ids_),
      ascii_ids_(o.ascii_ids_),
      added_(o.added_),
      special_(o.special_),
      unk_token_(o.unk_token_),
      unk_id_(o.unk_id_),
      splitter_(std::make_unique<detail::AddedSplitter>(*o.splitter_)) {}

CharTokenizer::CharTokenizer(CharTokenizer&& o) noexcept = default;
CharTokenizer::~CharTokenizer() = default;

CharTokenizer CharTokenizer::train(const std::vector<std::string>& texts,
                                   const CharTrainOptions& o) {
  std::unordered_map<char32_t, int64_t> counts;
  for (size_t t = 0; t < texts.size(); ++t) {
    const auto& s = texts[t];
    check_utf8(s, fmt::format("char train: text {}", t));
    for (size_t i = 0; i < s.size();) {
      char32_t cp;
      i += static_cast<size_t>(detail::utf8_sequence(s, i, &cp));
      ++counts[cp];
    }
  }
  std::vector<std::string> tokens;
  std::vector<AddedToken> added;
  for (const auto& s : o.special_tokens) {
    if (std::find(tokens.begin(), tokens.end(), s) != tokens.end()) continue;
    added.push_back({.id = static_cast<int32_t>(tokens.size()), .content = s});
    tokens.push_back(s);
  }
  if (o.max_vocab > 0 && o.max_vocab < static_cast<int64_t>(tokens.size())) {
    fail("char train: max_vocab {} is smaller than the {} special tokens", o.max_vocab,
         tokens.size());
  }
  std::vector<std::pair<int64_t, char32_t>> order;
  for (auto [cp, c] : counts) {
    if (c >= o.min_frequency) order.emplace_back(-c, cp);
  }
  std::sort(order.begin(), order.end());
  for (auto [neg, cp] : order) {
    if (o.max_vocab > 0 && static_cast<int64_t>(tokens.size()) >= o.max_vocab) break;
    std::string t;
    detail::append_utf8(t, cp);
    if (std::find(o.special_tokens.begin(), o.special_tokens.end(), t) != o.special_tokens.end()) {
      continue;
    }
    tokens.push_back(std::move(t));
  }
  bool has_unk = std::find(o.special_tokens.begin(), o.special_tokens.end(), "<unk>") !=
                 o.special_tokens.end();
  return CharTokenizer(std::move(tokens), std::move(added), has_unk ? "<unk>" : "");
}

std::vector<int32_t> CharTokenizer::encode(std::string_view text) const {
  check_utf8(text, "encode");
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  splitter_->split(text, [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
    } else {
      encode_segment(piece, ids);
    }
  });
  return ids;
}

void CharTokenizer::encode_segment(std::string_view s, std::vector<int32_t>& ids) const {
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    int len = detail::utf8_sequence(s, i, &cp);
    int32_t id = -1;
    if (cp < 128) {
      id = ascii_ids_[cp];
    } else if (auto it = char_ids_.find(cp); it != char_ids_.end()) {
      id = it->second;
    }
    if (id < 0) id = unk_id_;
    if (id < 0) {
      fail(
          "encode: the character U+{:04X} at byte {} is not in the vocab and there is no unk "
          "token",
          static_cast<uint32_t>(cp), i);
    }
    ids.push_back(id);
    i += static_cast<size_t>(len);
  }
}

std::string CharTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size())
      fail("decode: id {} is out of range [0, {})", id, vocab_size());
    if (skip_special_tokens && special_[id]) continue;
    out += tokens_[id];
  }
  return out;
}

std::optional<int32_t> CharTokenizer::token_to_id(std::string_view token) const {
  auto it = token_ids_.find(std::string(token));
  if (it == token_ids_.end()) return std::nullopt;
  return it->second;
}

std::string CharTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail("id_to_token: id {} is out of range [0, {})", id, vocab_size());
  return tokens_[id];
}

bool CharTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

std::string CharTokenizer::to_json() const {
  using ojson = nlohmann::ordered_json;
  ojson vocab = ojson::object();
  for (size_t id = 0; id < tokens_.size(); ++id) vocab[tokens_[id]] = id;
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = detail::added_tokens_to_json(added_);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Split"},
                        {"pattern", {{"Regex", kEveryChar}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "Fuse"}};
  j["model"] = {{"type", "WordLevel"}, {"vocab", std::move(vocab)}};
  if (unk_token_.empty()) {
    j["model"]["unk_token"] = nullptr;
  } else {
    j["model"]["unk_token"] = unk_token_;
  }
  return j.dump(2);
}

void CharTokenizer::save(const std::string& dir) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("save tokenizer: cannot create the directory {}: {}", dir, ec.message());
  detail::write_text_file((fs::path(dir) / "tokenizer.json").string(), to_json());
}

namespace detail {

CharTokenizer char_from_json(const nlohmann::json& j) {
  const auto& model = j.at("model");
  auto pre = j.find("pre_tokenizer");
  bool split_every_char = pre != j.end() && pre->is_object() && pre->value("type", "") == "Split" &&
                          pre->contains("pattern") && (*pre)["pattern"].is_object() &&
                          (*pre)["pattern"].value("Regex", "") == kEveryChar &&
                          pre->value("behavior", "") == "Isolated" && !pre->value("invert", false);
  if (!split_every_char) {
    fail(
        "tokenizer.json: a WordLevel model is read only as a character tokenizer (pre_tokenizer "
        "Split on \"{}\", Isolated); this one has pre_tokenizer {}",
        kEveryChar, pre == j.end() ? std::string("null") : pre->dump());
  }
  if (auto n = j.find("normalizer"); n != j.end() && !n->is_null()) {
    fail("tokenizer.json: unsupported normalizer type '{}'",
         n->is_object() ? n->value("type", "?") : n->dump());
  }
  if (auto d = j.find("decoder"); d != j.end() && !d->is_null() && d->value("type", "") != "Fuse") {
    fail("tokenizer.json: unsupported decoder type '{}' for a character tokenizer",
         d->is_object() ? d->value("type", "?") : d->dump());
  }
  auto vj = model.find("vocab");
  if (vj == model.end() || !vj->is_object()) fail("tokenizer.json: model has no \"vocab\" object");
  std::map<int32_t, std::string> by_id;
  for (auto it = vj->begin(); it != vj->end(); ++it) {
    by_id[id_from_json(it.value(), fmt::format("tokenizer.json: token '{}'", it.key()))] = it.key();
  }
  std::vector<std::string> tokens;
  for (const auto& [id, t] : by_id) {
    if (id != static_cast<int32_t>(tokens.size())) {
      fail("tokenizer.json: the vocab ids are not 0..{} without gaps (missing {})",
           by_id.size() - 1, tokens.size());
    }
    tokens.push_back(t);
  }
  std::string unk;
  if (auto u = model.find("unk_token"); u != model.end() && u->is_string()) unk = *u;
  return CharTokenizer(std::move(tokens), added_tokens_from_json(j), unk);
}

}  // namespace detail

namespace {

// Read only as the per-character WordLevel tokenizer that CharTokenizer saves.
TokenizerModel make_char_model() {
  return {.model_type = "WordLevel",
          .from_json = [](const nlohmann::json& j) -> std::unique_ptr<Tokenizer> {
            return std::make_unique<CharTokenizer>(detail::char_from_json(j));
          },
          .folder_files = {},
          .from_folder = {}};
}

}  // namespace

MOXING_REGISTER_TOKENIZER(make_char_model);

}  // namespace moxing::tokenizers
