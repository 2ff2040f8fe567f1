// Byte-level BPE encode, decode, and its files (see bpe.h). Training is in bpe_train.cpp.
// Merges are applied lowest rank first, leftmost first on ties, which is what HF's
// word.merge_all does with its priority queue; short words use a scan over cached pair
// ranks instead of a heap, since for them it is faster.
#include "moxing/tokenizers/bpe.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <set>
#include <sstream>

#include "loaders.h"
#include "moxing/core/error.h"
#include "moxing/io/file.h"
#include "moxing/tokenizers/utf8.h"
#include "pretokenize.h"

namespace moxing::tokenizers {

namespace detail {

/// Pair of ids (packed in a uint64) -> (rank, merged id), open addressing.
struct PairTable {
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t id = 0;
  };
  static constexpr uint64_t kEmpty = ~0ull;
  std::vector<Slot> slots;
  uint64_t mask = 0;
  int shift = 64;

  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void reserve(size_t n) {
    size_t cap = 16;
    int bits = 4;
    while (cap < 2 * n) {
      cap *= 2;
      ++bits;
    }
    slots.assign(cap, Slot{});
    mask = cap - 1;
    shift = 64 - bits;
  }
  size_t home(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift; }
  void insert(uint64_t key, int32_t rank, int32_t id) {
    size_t i = home(key);
    while (slots[i].key != kEmpty && slots[i].key != key) i = (i + 1) & mask;
    slots[i] = {key, rank, id};
  }
  const Slot* find(int32_t a, int32_t b) const {
    uint64_t key = pack(a, b);
    size_t i = home(key);
    while (true) {
      const Slot& s = slots[i];
      if (s.key == key) return &s;
      if (s.key == kEmpty) return nullptr;
      i = (i + 1) & mask;
    }
  }
};

struct BpeIndex {
  PairTable pairs;
  AddedSplitter splitter;
};

/// word bytes -> ids, in shards each behind a mutex so that threads rarely contend.
struct BpeCache {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex m;
    std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map;
  };
  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxPerShard = 1 << 16;  // then new words are no longer cached
  static constexpr size_t kMaxWordBytes = 256;
  std::array<Shard, kShards> shards;
};

}  // namespace detail

namespace {

constexpr int32_t kNoRank = INT32_MAX;

std::vector<std::pair<std::string, std::string>> parse_merges_lines(std::istream& in,
                                                                    const std::string& what) {
  std::vector<std::pair<std::string, std::string>> merges;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.starts_with("#version")) continue;
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos || sp == 0 ||
        sp + 1 == line.size()) {
      fail("{}: line {}: a merge is two tokens separated by one space, got '{}'", what, lineno,
           line);
    }
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  return merges;
}

}  // namespace

ByteLevelBPE::ByteLevelBPE(std::unordered_map<std::string, int32_t> vocab,
                           std::vector<std::pair<std::string, std::string>> merges,
                           std::vector<AddedToken> added)
    : token_to_id_(std::move(vocab)),
      index_(std::make_unique<detail::BpeIndex>()),
      added_(std::move(added)),
      cache_(std::make_unique<detail::BpeCache>()) {
  int32_t max_id = -1;
  for (const auto& [tok, id] : token_to_id_) {
    if (id < 0) fail("bpe: token '{}' has a negative id {}", tok, id);
    max_id = std::max(max_id, id);
  }
  for (const auto& a : added_) {
    if (a.id < 0) fail("bpe: added token '{}' has a negative id {}", a.content, a.id);
    check_utf8(a.content, "bpe: added token");
    max_id = std::max(max_id, a.id);
  }
  const size_t n = static_cast<size_t>(max_id) + 1;
  // Ids may leave gaps, but not so many that a corrupt file allocates gigabytes.
  const size_t known = token_to_id_.size() + added_.size();
  if (n > 4 * known + 1024) {
    fail("bpe: id {} is far beyond the {} tokens (ids should be 0..{})", max_id, known, known - 1);
  }
  id_to_token_.assign(n, "");
  bytes_.assign(n, "");
  special_.assign(n, 0);
  in_vocab_.assign(n, 0);
  for (const auto& [tok, id] : token_to_id_) {
    if (in_vocab_[id])
      fail("bpe: id {} is given to two tokens, '{}' and '{}'", id, tok, id_to_token_[id]);
    id_to_token_[id] = tok;
    in_vocab_[id] = 1;
    std::string raw;
    bytes_[id] = detail::mapped_to_bytes(tok, raw) ? raw : tok;
  }
  for (const auto& a : added_) {
    if (!in_vocab_[a.id]) {
      id_to_token_[a.id] = a.content;
      std::string raw;
      bytes_[a.id] = detail::mapped_to_bytes(a.content, raw) ? raw : a.content;
    }
    token_to_id_.emplace(a.content, a.id);
    special_[a.id] = a.special ? 1 : 0;
    index_->splitter.add(a.content, a.id, a.lstrip, a.rstrip);
  }
  const auto& b2u = detail::byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    std::string m;
    detail::append_utf8(m, b2u[b]);
    auto it = token_to_id_.find(m);
    byte_id_[b] = it == token_to_id_.end() ? -1 : it->second;
  }
  index_->pairs.reserve(merges.size());
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    auto ia = token_to_id_.find(a), ib = token_to_id_.find(b);
    for (auto [it, t] : {std::pair{ia, &a}, std::pair{ib, &b}}) {
      if (it == token_to_id_.end()) {
        fail("bpe: merge {} '{} {}': token '{}' is not in the vocab", r, a, b, *t);
      }
    }
    auto im = token_to_id_.find(a + b);
    if (im == token_to_id_.end()) {
      fail("bpe: merge {} '{} {}': the merged token '{}' is not in the vocab", r, a, b, a + b);
    }
    merges_.emplace_back(ia->second, ib->second);
    index_->pairs.insert(detail::PairTable::pack(ia->second, ib->second), static_cast<int32_t>(r),
                         im->second);
  }
}

ByteLevelBPE::ByteLevelBPE(const ByteLevelBPE& o)
    : Tokenizer(o),
      add_prefix_space(o.add_prefix_space),
      use_regex(o.use_regex),
      ignore_merges(o.ignore_merges),
      individual_digits(o.individual_digits),
      id_to_token_(o.id_to_token_),
      token_to_id_(o.token_to_id_),
      merges_(o.merges_),
      index_(std::make_unique<detail::BpeIndex>(*o.index_)),
      byte_id_(o.byte_id_),
      added_(o.added_),
      bytes_(o.bytes_),
      special_(o.special_),
      in_vocab_(o.in_vocab_),
      cache_(std::make_unique<detail::BpeCache>()) {}

ByteLevelBPE::ByteLevelBPE(ByteLevelBPE&& o) noexcept = default;

ByteLevelBPE& ByteLevelBPE::operator=(ByteLevelBPE o) noexcept {
  std::swap(add_prefix_space, o.add_prefix_space);
  std::swap(use_regex, o.use_regex);
  std::swap(ignore_merges, o.ignore_merges);
  std::swap(individual_digits, o.individual_digits);
  std::swap(id_to_token_, o.id_to_token_);
  std::swap(token_to_id_, o.token_to_id_);
  std::swap(merges_, o.merges_);
  std::swap(index_, o.index_);
  std::swap(byte_id_, o.byte_id_);
  std::swap(added_, o.added_);
  std::swap(bytes_, o.bytes_);
  std::swap(special_, o.special_);
  std::swap(in_vocab_, o.in_vocab_);
  std::swap(cache_, o.cache_);
  return *this;
}

ByteLevelBPE::~ByteLevelBPE() = default;

std::vector<int32_t> ByteLevelBPE::encode(std::string_view text) const {
  check_utf8(text, "encode");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  index_->splitter.split(text, [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
    } else {
      encode_segment(piece, ids);
    }
  });
  return ids;
}

void ByteLevelBPE::encode_segment(std::string_view text, std::vector<int32_t>& ids) const {
  if (individual_digits) {
    // Digits first: each number character is a piece, the runs between go on to ByteLevel
    size_t run = 0, i = 0;
    while (i < text.size()) {
      const detail::CharInfo c = detail::char_at(text, i);
      if (c.cls == detail::kNumber) {
        if (i > run) encode_pieces(text.substr(run, i - run), ids);
        encode_pieces(text.substr(i, c.len), ids);
        run = i + c.len;
      }
      i += c.len;
    }
    if (run < text.size()) encode_pieces(text.substr(run), ids);
    return;
  }
  encode_pieces(text, ids);
}

void ByteLevelBPE::encode_pieces(std::string_view text, std::vector<int32_t>& ids) const {
  std::string prefixed;
  if (add_prefix_space && text[0] != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  if (use_regex) {
    detail::split_gpt2(text, [&](std::string_view w) { encode_word(w, ids); });
  } else {
    encode_word(text, ids);
  }
}

void ByteLevelBPE::encode_word(std::string_view w, std::vector<int32_t>& ids) const {
  if (w.size() == 1) {
    int32_t id = byte_id_[static_cast<unsigned char>(w[0])];
    if (id >= 0) ids.push_back(id);
    return;
  }
  if (ignore_merges) {
    auto it = token_to_id_.find(detail::bytes_to_mapped(w));
    if (it != token_to_id_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = w.size() <= detail::BpeCache::kMaxWordBytes;
  detail::BpeCache::Shard* shard = nullptr;
  if (cacheable) {
    size_t h = detail::BpeCache::Hash{}(w);
    shard = &cache_->shards[(h >> 7) % detail::BpeCache::kShards];
    std::lock_guard lock(shard->m);
    auto it = shard->map.find(w);
    if (it != shard->map.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<int32_t> syms;
  syms.clear();
  for (char c : w) {
    int32_t id = byte_id_[static_cast<unsigned char>(c)];
    if (id >= 0) syms.push_back(id);
  }
  merge_word(syms);
  ids.insert(ids.end(), syms.begin(), syms.end());
  if (cacheable) {
    std::lock_guard lock(shard->m);
    if (shard->map.size() < detail::BpeCache::kMaxPerShard) {
      shard->map.emplace(std::string(w), syms);
    }
  }
}

void ByteLevelBPE::merge_word(std::vector<int32_t>& s) const {
  const auto& table = index_->pairs;
  size_t n = s.size();
  if (n < 2) return;
  constexpr size_t kScanMax = 64;
  if (n <= kScanMax) {
    // rank[i], merged[i]: the merge of the pair (s[i], s[i+1]).
    int32_t rank[kScanMax], merged[kScanMax];
    auto look = [&](size_t i) {
      const auto* slot = table.find(s[i], s[i + 1]);
      rank[i] = slot ? slot->rank : kNoRank;
      merged[i] = slot ? slot->id : -1;
    };
    for (size_t i = 0; i + 1 < n; ++i) look(i);
    while (n > 1) {
      int32_t best = kNoRank;
      size_t bi = 0;
      for (size_t i = 0; i + 1 < n; ++i) {
        if (rank[i] < best) {
          best = rank[i];
          bi = i;
        }
      }
      if (best == kNoRank) break;
      s[bi] = merged[bi];
      for (size_t k = bi + 1; k + 1 < n; ++k) s[k] = s[k + 1];
      for (size_t k = bi; k + 2 < n; ++k) {
        rank[k] = rank[k + 1];
        merged[k] = merged[k + 1];
      }
      --n;
      if (bi > 0) look(bi - 1);
      if (bi + 1 < n) look(bi);
    }
    s.resize(n);
    return;
  }
  // Long words: a linked list of symbols and a heap of (rank, position) candidates; stale
  // candidates (a symbol merged away meanwhile) are skipped when popped.
  struct Cand {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    int32_t j = next[i];
    if (const auto* slot = table.find(s[i], s[j])) heap.push({slot->rank, i, s[i], s[j], slot->id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int32_t j = next[c.pos];
    if (s[c.pos] != c.left || j < 0 || s[j] != c.right) continue;
    s[c.pos] = c.merged;
    s[j] = -1;
    next[c.pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) s[out++] = s[i];
  s.resize(out);
}

std::string ByteLevelBPE::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      fail("decode: id {} is out of range [0, {})", id, vocab_size());
    }
    if (skip_special_tokens && special_[id]) continue;
    out += bytes_[id];
  }
  return replace_invalid_utf8(out);
}

std::optional<int32_t> ByteLevelBPE::token_to_id(std::string_view token) const {
  auto it = token_to_id_.find(std::string(token));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string ByteLevelBPE::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail("id_to_token: id {} is out of range [0, {})", id, vocab_size());
  return id_to_token_[id];
}

std::string ByteLevelBPE::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail("token_bytes: id {} is out of range [0, {})", id, vocab_size());
  return bytes_[id];
}

bool ByteLevelBPE::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

std::vector<std::pair<std::string, std::string>> ByteLevelBPE::merges() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges_.size());
  for (auto [a, b] : merges_) out.emplace_back(id_to_token_[a], id_to_token_[b]);
  return out;
}

std::string ByteLevelBPE::to_json() const {
  using ojson = nlohmann::ordered_json;
  ojson vocab = ojson::object();
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    if (in_vocab_[id]) vocab[id_to_token_[id]] = id;
  }
  bool spaces = false;  // "a b" strings cannot hold a token with a space: then write pairs
  for (auto [a, b] : merges_) {
    spaces |= id_to_token_[a].find(' ') != std::string::npos ||
              id_to_token_[b].find(' ') != std::string::npos;
  }
  ojson merges = ojson::array();
  for (auto [a, b] : merges_) {
    if (spaces) {
      merges.push_back(ojson::array({id_to_token_[a], id_to_token_[b]}));
    } else {
      merges.push_back(id_to_token_[a] + " " + id_to_token_[b]);
    }
  }
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = detail::added_tokens_to_json(added_);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"},
                        {"add_prefix_space", add_prefix_space},
                        {"trim_offsets", true},
                        {"use_regex", use_regex}};
  if (individual_digits) {
    ojson digits = {{"type", "Digits"}, {"individual_digits", true}};
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", ojson::array({digits, j["pre_tokenizer"]})}};
  }
  j["post_processor"] = {{"type", "ByteLevel"},
                         {"add_prefix_space", true},
                         {"trim_offsets", false},
                         {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"},
                  {"add_prefix_space", true},
                  {"trim_offsets", true},
                  {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", ignore_merges},
                {"vocab", std::move(vocab)},
                {"merges", std::move(merges)}};
  return j.dump(2);
}

void ByteLevelBPE::save(const std::string& dir) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("save tokenizer: cannot create the directory {}: {}", dir, ec.message());
  detail::write_text_file((fs::path(dir) / "tokenizer.json").string(), to_json());
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    if (in_vocab_[id]) vocab[id_to_token_[id]] = id;
  }
  detail::write_text_file((fs::path(dir) / "vocab.json").string(), vocab.dump());
  std::string merges = "#version: 0.2\n";
  for (auto [a, b] : merges_) merges += id_to_token_[a] + " " + id_to_token_[b] + "\n";
  detail::write_text_file((fs::path(dir) / "merges.txt").string(), merges);
}

ByteLevelBPE ByteLevelBPE::from_vocab_merges(const std::string& vocab_json,
                                             const std::string& merges_txt) {
  nlohmann::json vj;
  try {
    vj = nlohmann::json::parse(read_text_file(vocab_json));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", vocab_json, e.what());
  }
  if (!vj.is_object()) fail("{}: expected an object token -> id", vocab_json);
  std::unordered_map<std::string, int32_t> vocab;
  for (auto it = vj.begin(); it != vj.end(); ++it) {
    vocab[it.key()] =
        detail::id_from_json(it.value(), fmt::format("{}: token '{}'", vocab_json, it.key()));
  }
  std::istringstream in(read_text_file(merges_txt));
  auto merges = parse_merges_lines(in, merges_txt);
  // GPT-2's end-of-text token is in its vocab.json; HF's GPT2Tokenizer treats it as special.
  std::vector<AddedToken> added;
  if (auto it = vocab.find("<|endoftext|>"); it != vocab.end()) {
    added.push_back({.id = it->second, .content = "<|endoftext|>"});
  }
  return ByteLevelBPE(std::move(vocab), std::move(merges), std::move(added));
}

namespace detail {

const nlohmann::json* json_field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return (it == j.end() || it->is_null()) ? nullptr : &*it;
}

std::string json_type_of(const nlohmann::json& j, const char* what) {
  if (!j.is_object()) fail("tokenizer.json: \"{}\" is not an object", what);
  auto t = json_field(j, "type");
  if (!t || !t->is_string()) fail("tokenizer.json: \"{}\" has no \"type\"", what);
  return t->get<std::string>();
}

ByteLevelBPE bpe_from_json(const nlohmann::json& j) {
  const auto* model = json_field(j, "model");
  if (!model) fail("tokenizer.json: no \"model\"");
  if (!model->is_object()) fail("tokenizer.json: \"model\" is not an object");
  std::string type = json_field(*model, "type") ? json_type_of(*model, "model") : "BPE";
  if (type != "BPE") fail("tokenizer.json: unsupported model type '{}'", type);
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (auto v = json_field(*model, k); v && !(v->is_string() && v->get<std::string>().empty())) {
      fail("tokenizer.json: unsupported BPE option \"{}\" = {}", k, v->dump());
    }
  }
  if (auto v = json_field(*model, "dropout"); v && v->is_number() && v->get<double>() != 0.0) {
    fail("tokenizer.json: unsupported BPE option \"dropout\" = {}", v->dump());
  }
  if (auto v = json_field(*model, "byte_fallback"); v && v->is_boolean() && v->get<bool>()) {
    fail("tokenizer.json: unsupported BPE option \"byte_fallback\" = true");
  }
  if (auto n = json_field(j, "normalizer")) {
    std::string t = json_type_of(*n, "normalizer");
    bool empty_seq = t == "Sequence" && json_field(*n, "normalizers") &&
                     (*n)["normalizers"].is_array() && (*n)["normalizers"].empty();
    if (!empty_seq) fail("tokenizer.json: unsupported normalizer type '{}'", t);
  }
  const nlohmann::json* byte_level = nullptr;
  bool digits = false;
  if (auto p = json_field(j, "pre_tokenizer")) {
    std::string t = json_type_of(*p, "pre_tokenizer");
    if (t == "ByteLevel") {
      byte_level = p;
    } else if (t == "Sequence") {
      auto seq = json_field(*p, "pretokenizers");
      if (!seq || !seq->is_array()) fail("tokenizer.json: pre_tokenizer Sequence has no list");
      for (const auto& e : *seq) {
        std::string et = json_type_of(e, "pre_tokenizer");
        if (et == "Digits" && !byte_level && !digits) {
          auto each = json_field(e, "individual_digits");
          if (!each || !each->is_boolean() || !each->get<bool>()) {
            fail(
                "tokenizer.json: a Digits pre_tokenizer without individual_digits is not "
                "supported");
          }
          digits = true;
          continue;
        }
        if (et != "ByteLevel" || byte_level) {
          fail("tokenizer.json: unsupported pre_tokenizer type '{}' in a Sequence", et);
        }
        byte_level = &e;
      }
    } else {
      fail("tokenizer.json: unsupported pre_tokenizer type '{}'", t);
    }
  }
  if (!byte_level) fail("tokenizer.json: BPE needs a ByteLevel pre_tokenizer, found none");
  if (auto d = json_field(j, "decoder")) {
    std::string t = json_type_of(*d, "decoder");
    if (t != "ByteLevel") fail("tokenizer.json: unsupported decoder type '{}'", t);
  }
  if (auto p = json_field(j, "post_processor")) {
    std::string t = json_type_of(*p, "post_processor");
    // transformers writes GPT-2's as a TemplateProcessing whose single template is the text
    // alone ([Sequence A]): nothing is added, so it is the identity
    bool identity_template = false;
    if (t == "TemplateProcessing") {
      auto single = p->find("single");
      identity_template = single != p->end() && single->is_array() && single->size() == 1 &&
                          (*single)[0].is_object() && (*single)[0].contains("Sequence");
      if (!identity_template) {
        fail(
            "tokenizer.json: the TemplateProcessing post_processor adds special tokens around "
            "the text, which moxing does not apply (it reads templates of the text alone)");
      }
    }
    if (t != "ByteLevel" && !identity_template) {
      fail("tokenizer.json: unsupported post_processor type '{}'", t);
    }
  }
  auto vj = json_field(*model, "vocab");
  if (!vj || !vj->is_object()) fail("tokenizer.json: model has no \"vocab\" object");
  std::unordered_map<std::string, int32_t> vocab;
  for (auto it = vj->begin(); it != vj->end(); ++it) {
    vocab[it.key()] = id_from_json(it.value(), fmt::format("tokenizer.json: token '{}'", it.key()));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (auto mj = json_field(*model, "merges")) {
    if (!mj->is_array()) fail("tokenizer.json: model \"merges\" is not a list");
    for (size_t r = 0; r < mj->size(); ++r) {
      const auto& m = (*mj)[r];
      if (m.is_string()) {
        std::istringstream in(m.get<std::string>());
        auto one = parse_merges_lines(in, fmt::format("tokenizer.json: merge {}", r));
        if (one.size() != 1) fail("tokenizer.json: merge {} is empty", r);
        merges.push_back(one[0]);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        fail("tokenizer.json: merge {} is neither \"a b\" nor [\"a\", \"b\"]: {}", r, m.dump());
      }
    }
  }
  ByteLevelBPE bpe(std::move(vocab), std::move(merges), added_tokens_from_json(j));
  auto flag = [](const nlohmann::json& o, const char* k, bool def) {
    auto v = json_field(o, k);
    return v && v->is_boolean() ? v->get<bool>() : def;
  };
  bpe.add_prefix_space = flag(*byte_level, "add_prefix_space", true);
  bpe.use_regex = flag(*byte_level, "use_regex", true);
  bpe.ignore_merges = flag(*model, "ignore_merges", false);
  bpe.individual_digits = digits;
  return bpe;
}

ByteLevelBPE bpe_from_gguf(const GgufFile& file) {
  const std::string& where = file.path;
  const GgufValue* model = file.find("tokenizer.ggml.model");
  if (model == nullptr) fail("{}: no tokenizer in the metadata (tokenizer.ggml.model)", where);
  const std::string& type = model->as_string("tokenizer.ggml.model");
  if (type != "gpt2") {
    fail(
        "{}: tokenizer.ggml.model \"{}\" is not supported yet (moxing reads \"gpt2\", "
        "byte-level BPE)",
        where, type);
  }
  // llama.cpp names the pre-tokenizer; each name is a regex of its own
  std::string pre = "default";
  if (const GgufValue* p = file.find("tokenizer.ggml.pre"))
    pre = p->as_string("tokenizer.ggml.pre");
  if (pre != "default" && pre != "gpt2" && pre != "gpt-2" && pre != "smollm") {
    fail("{}: tokenizer.ggml.pre \"{}\" is not supported yet (moxing reads gpt-2 and smollm)",
         where, pre);
  }
  const std::vector<std::string> tokens =
      file.get("tokenizer.ggml.tokens").as_strings("tokenizer.ggml.tokens");
  std::vector<int64_t> types(tokens.size(), 1);
  if (const GgufValue* t = file.find("tokenizer.ggml.token_type")) {
    if (t->items.size() != tokens.size()) {
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", where, t->items.size(),
           tokens.size());
    }
    for (size_t i = 0; i < tokens.size(); ++i) types[i] = t->items[i].as_int("token_type");
  }
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<AddedToken> added;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (!vocab.emplace(tokens[i], id).second) {
      fail("{}: token {} ('{}') appears twice in tokenizer.ggml.tokens", where, i, tokens[i]);
    }
    // 3: control (special), 4: user-defined; both are matched in the raw text
    if (types[i] == 3 || types[i] == 4) {
      AddedToken a;
      a.id = id;
      a.content = tokens[i];
      a.special = types[i] == 3;
      added.push_back(a);
    }
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (const GgufValue* m = file.find("tokenizer.ggml.merges")) {
    for (const std::string& line : m->as_strings("tokenizer.ggml.merges")) {
      const size_t space = line.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == line.size()) {
        fail("{}: merge '{}' is not two tokens separated by a space", where, line);
      }
      merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    }
  }
  ByteLevelBPE bpe(std::move(vocab), std::move(merges), std::move(added));
  bpe.add_prefix_space = false;
  bpe.use_regex = true;
  bpe.individual_digits = pre == "smollm";
  return bpe;
}

std::vector<AddedToken> added_tokens_from_json(const nlohmann::json& j) {
  std::vector<AddedToken> out;
  auto a = json_field(j, "added_tokens");
  if (!a) return out;
  if (!a->is_array()) fail("tokenizer.json: \"added_tokens\" is not a list");
  for (const auto& t : *a) {
    auto id = json_field(t, "id");
    auto content = json_field(t, "content");
    if (!id || !id->is_number_integer() || !content || !content->is_string()) {
      fail("tokenizer.json: an added token needs an integer \"id\" and a \"content\": {}",
           t.dump());
    }
    AddedToken at;
    at.id = id_from_json(
        *id, fmt::format("tokenizer.json: added token '{}'", content->get<std::string>()));
    at.content = content->get<std::string>();
    auto flag = [&](const char* k, bool def) {
      auto v = json_field(t, k);
      return v && v->is_boolean() ? v->get<bool>() : def;
    };
    at.special = flag("special", false);
    at.single_word = flag("single_word", false);
    at.lstrip = flag("lstrip", false);
    at.rstrip = flag("rstrip", false);
    at.normalized = flag("normalized", !at.special);
    if (at.single_word) {
      fail("tokenizer.json: added token '{}': \"single_word\": true is not supported", at.content);
    }
    out.push_back(std::move(at));
  }
  return out;
}

nlohmann::ordered_json added_tokens_to_json(const std::vector<AddedToken>& added) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& a : added) {
    out.push_back({{"id", a.id},
                   {"content", a.content},
                   {"single_word", a.single_word},
                   {"lstrip", a.lstrip},
                   {"rstrip", a.rstrip},
                   {"normalized", a.normalized},
                   {"special", a.special}});
  }
  return out;
}

int32_t id_from_json(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number_integer()) fail("{}: the id {} is not an integer", what, v.dump());
  int64_t id = v.get<int64_t>();
  if (v.is_number_unsigned() && v.get<uint64_t>() > INT32_MAX) id = -1;
  if (id < 0 || id > INT32_MAX) fail("{}: the id {} is out of range [0, 2^31)", what, v.dump());
  return static_cast<int32_t>(id);
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail("{}: cannot open for writing", path);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) fail("{}: write failed", path);
}

}  // namespace detail

namespace {

TokenizerModel make_bpe_model() {
  return {.model_type = "BPE",
          .from_json = [](const nlohmann::json& j) -> std::unique_ptr<Tokenizer> {
            return std::make_unique<ByteLevelBPE>(detail::bpe_from_json(j));
          },
          .folder_files = {"vocab.json", "merges.txt"},
          .from_folder = [](const std::string& dir) -> std::unique_ptr<Tokenizer> {
            namespace fs = std::filesystem;
            return std::make_unique<ByteLevelBPE>(ByteLevelBPE::from_vocab_merges(
                (fs::path(dir) / "vocab.json").string(), (fs::path(dir) / "merges.txt").string()));
          }};
}

}  // namespace

MOXING_REGISTER_TOKENIZER(make_bpe_model);

GgufMetadata gguf_metadata(const Tokenizer& tokenizer, const std::string& where) {
  const auto* bpe = dynamic_cast<const ByteLevelBPE*>(&tokenizer);
  MOXING_CHECK(bpe != nullptr,
               "{}: GGUF files get byte-level BPE tokenizers (llama.cpp's \"gpt2\" model); this "
               "model's tokenizer is {}",
               where, tokenizer.type());
  std::vector<std::string> tokens;
  std::vector<GgufValue> types;
  std::set<int32_t> added;
  for (const AddedToken& a : bpe->added_tokens()) added.insert(a.id);
  for (int64_t i = 0; i < bpe->vocab_size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    std::string t = bpe->id_to_token(id);
    // llama.cpp's types: 1 normal, 3 control (special), 4 user-defined, 5 unused
    int64_t type = bpe->is_special(id) ? 3 : added.count(id) ? 4 : 1;
    if (t.empty()) {
      t = fmt::format("[PAD{}]", i);
      type = 5;
    }
    tokens.push_back(std::move(t));
    types.push_back(GgufValue::of_int(GgufValueType::I32, type));
  }
  std::vector<std::string> merges;
  for (const auto& [a, b] : bpe->merges()) merges.push_back(a + " " + b);
  GgufMetadata m;
  m.emplace_back("tokenizer.ggml.model", GgufValue::of_string("gpt2"));
  m.emplace_back("tokenizer.ggml.pre",
                 GgufValue::of_string(bpe->individual_digits ? "smollm" : "gpt-2"));
  m.emplace_back("tokenizer.ggml.tokens", GgufValue::of_strings(tokens));
  m.emplace_back("tokenizer.ggml.token_type",
                 GgufValue::of_array(GgufValueType::I32, std::move(types)));
  m.emplace_back("tokenizer.ggml.merges", GgufValue::of_strings(merges));
  return m;
}

}  // namespace moxing::tokenizers
