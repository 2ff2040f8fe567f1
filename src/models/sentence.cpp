// SentenceEncoder: sentence-transformers folders (modules.json, pooling, normalization, the
// window) over any text encoder family.
#include "moxing/models/sentence.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/io/file.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& path) {
  try {
    return json::parse(read_text_file(path.string()));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", path.string(), e.what());
  }
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The pooling mode of a Pooling module's config.json (newer "pooling_mode", older booleans).
std::string pooling_of(const fs::path& path) {
  json j = read_json(path);
  MOXING_CHECK(j.is_object(), "{}: not a JSON object", path.string());
  if (j.contains("pooling_mode") && j["pooling_mode"].is_string()) {
    return j["pooling_mode"].get<std::string>();
  }
  for (const auto& [key, mode] :
       {std::pair<const char*, const char*>{"pooling_mode_cls_token", "cls"},
        {"pooling_mode_mean_tokens", "mean"},
        {"pooling_mode_max_tokens", "max"},
        {"pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"}}) {
    if (j.value(key, false)) return mode;
  }
  fail(
      "{}: no pooling mode (pooling_mode, or one of pooling_mode_mean_tokens / "
      "pooling_mode_cls_token / pooling_mode_max_tokens set to true)",
      path.string());
}

}  // namespace

SentenceEncoder SentenceEncoder::load(const std::string& dir, const SentenceEncoderOptions& o) {
  SentenceEncoder s;
  const fs::path root(dir);
  std::string pooling = "mean";
  bool normalize = false;
  if (fs::exists(root / "modules.json")) {
    json modules = read_json(root / "modules.json");
    MOXING_CHECK(modules.is_array(), "{}: expected an array of modules",
                 (root / "modules.json").string());
    for (const json& m : modules) {
      const std::string type = m.value("type", "");
      const std::string path = m.value("path", "");
      if (ends_with(type, ".Transformer")) {
        MOXING_CHECK(path.empty(),
                     "{}: a Transformer module in '{}' is not supported (moxing "
                     "reads the model from the folder itself)",
                     (root / "modules.json").string(), path);
      } else if (ends_with(type, ".Pooling")) {
        pooling = pooling_of(root / path / "config.json");
      } else if (ends_with(type, ".Normalize")) {
        normalize = true;
      } else {
        fail(
            "{}: module type '{}' is not supported (moxing reads Transformer, Pooling, "
            "Normalize)",
            (root / "modules.json").string(), type);
      }
    }
  }
  s.pooling = o.pooling.value_or(pooling);
  MOXING_CHECK(s.pooling == "mean" || s.pooling == "cls" || s.pooling == "max",
               "{}: pooling '{}' is not supported (moxing knows: mean, cls, max)", dir, s.pooling);
  s.normalize = o.normalize.value_or(normalize);
  s.batch_size = o.batch_size;
  MOXING_CHECK(s.batch_size > 0, "embed: batch_size must be positive, got {}", s.batch_size);

  s.model = from_pretrained(dir);
  TextEncoder& encoder = s.model.expect<TextEncoder>("a text encoder (BERT and the like)");
  auto tok = tokenizers::load_tokenizer(dir);
  auto* wp = dynamic_cast<tokenizers::WordPieceTokenizer*>(tok.get());
  MOXING_CHECK(wp != nullptr,
               "{}: the tokenizer is {}, not WordPiece: an encoder needs its "
               "[CLS] / [SEP] template",
               dir, tok->type());
  tok.release();
  s.tokenizer.reset(wp);

  s.max_seq_length = encoder.max_positions();
  int64_t window = 0;
  if (fs::exists(root / "sentence_bert_config.json")) {
    window = read_json(root / "sentence_bert_config.json").value("max_seq_length", int64_t{0});
  }
  if (window <= 0 && fs::exists(root / "tokenizer_config.json")) {
    json t = read_json(root / "tokenizer_config.json");
    if (t.contains("model_max_length") && t["model_max_length"].is_number_integer()) {
      window = t["model_max_length"].get<int64_t>();  // transformers' "no limit" is 1e30: a float
    }
  }
  if (window > 0) s.max_seq_length = std::min(window, s.max_seq_length);
  return s;
}

// Texts are tokenized once, then run longest first in batches of batch_size, so a batch pads
// its texts to about their own length (sentence-transformers sorts by characters instead);
// the vectors go back to the texts' order.
Tensor SentenceEncoder::embed(const std::vector<std::string>& texts) const {
  NoGradGuard no_grad;
  for (size_t i = 0; i < texts.size(); ++i) {
    MOXING_CHECK(!texts[i].empty(), "embed: text {} is empty", i);
  }
  MOXING_CHECK(!texts.empty(), "embed: no texts");
  TextEncoder& encoder = model.expect<TextEncoder>("a text encoder");
  tokenizers::EncodeOptions eo;
  eo.max_length = max_seq_length;
  std::vector<tokenizers::Encoding> enc;
  enc.reserve(texts.size());
  for (const auto& t : texts) enc.push_back(tokenizer->encode_for_model(t, std::nullopt, eo));
  std::vector<int64_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return enc[static_cast<size_t>(a)].ids.size() > enc[static_cast<size_t>(b)].ids.size();
  });
  std::vector<Tensor> parts;
  for (size_t first = 0; first < texts.size(); first += static_cast<size_t>(batch_size)) {
    const size_t n = std::min(texts.size() - first, static_cast<size_t>(batch_size));
    const int64_t B = static_cast<int64_t>(n);
    const int64_t T = static_cast<int64_t>(enc[static_cast<size_t>(order[first])].ids.size());
    std::vector<int64_t> ids, types, mask;
    for (size_t j = first; j < first + n; ++j) {
      tokenizers::Encoding e = enc[static_cast<size_t>(order[j])];
      tokenizer->pad(e, T);
      ids.insert(ids.end(), e.ids.begin(), e.ids.end());
      types.insert(types.end(), e.token_type_ids.begin(), e.token_type_ids.end());
      mask.insert(mask.end(), e.attention_mask.begin(), e.attention_mask.end());
    }
    Tensor m = from_vector(mask, {B, T});
    Tensor h = encoder.encode({from_vector(ids, {B, T}), from_vector(types, {B, T}), m,
                               /*skip_padding=*/true});
    Tensor v;
    if (pooling == "cls") {
      v = h.select(1, 0);
    } else {
      Tensor w = m.to(h.dtype()).unsqueeze(2);  // (B,T,1): 1 at tokens
      if (pooling == "mean") {
        v = div(sum(mul(h, w), {1}), clamp(sum(w, {1}), 1e-9, INFINITY));
      } else {  // max over tokens: padding can never win
        v = amax(where(ne(w, zeros_like(w)), h, full_like(h, -1e9)), {1});
      }
    }
    if (normalize) {
      Tensor norm = sqrt(sum(mul(v, v), {1}, true));
      v = div(v, clamp(norm, 1e-12, INFINITY));
    }
    parts.push_back(v.contiguous());
  }
  Tensor sorted = parts.size() == 1 ? parts[0] : cat(parts, 0);
  // row i of the result is the text order[j] = i
  std::vector<int64_t> where_is(texts.size());
  for (size_t j = 0; j < order.size(); ++j)
    where_is[static_cast<size_t>(order[j])] = static_cast<int64_t>(j);
  return index_select(sorted, 0, from_vector(where_is, {static_cast<int64_t>(where_is.size())}));
}

}  // namespace moxing::models
