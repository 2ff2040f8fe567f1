// BERT WordPiece (see wordpiece.h): normalizer, pre-tokenizer, greedy longest-match-first
// subwords, the post-processor's templates, truncation and padding, and its files.
#include "moxing/tokenizers/wordpiece.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "loaders.h"
#include "merges.h"
#include "moxing/core/error.h"
#include "moxing/io/file.h"
#include "moxing/tokenizers/utf8.h"
#include "pretokenize.h"

namespace moxing::tokenizers {

namespace fs = std::filesystem;

namespace {

utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

// BertNormalizer's control characters: Unicode "Other" but unassigned (Cn), and not \t \n \r.
bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
         cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS;
}

// The CJK ideograph blocks as HF tokenizers lists them (BERT's list, with its Extension D/E
// range starting at U+2B920).
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// BERT's punctuation: every ASCII non-alphanumeric printable character, and Unicode P*.
bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
      (c >= 123 && c <= 126)) {
    return true;
  }
  switch (category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// Calls f(cp) for each code point of valid UTF-8 s.
template <class F>
void for_each_cp(std::string_view s, F&& f) {
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    int len = detail::utf8_sequence(s, i, &cp);
    f(cp);
    i += static_cast<size_t>(len);
  }
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// HF's decoders::wordpiece::cleanup, in its order.
void cleanup(std::string& s) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto [from, to] : kRules) replace_all(s, from, to);
}

std::vector<TemplatePiece> bert_template(int32_t cls, int32_t sep, const WordPieceOptions& o,
                                         bool pair) {
  std::vector<TemplatePiece> t = {{.special = o.cls_token, .ids = {cls}},
                                  {.sequence = 0},
                                  {.special = o.sep_token, .ids = {sep}}};
  if (pair) {
    t.push_back({.sequence = 1, .type_id = 1});
    t.push_back({.special = o.sep_token, .ids = {sep}, .type_id = 1});
  }
  return t;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> tokens,
                                       std::vector<AddedToken> added, WordPieceOptions options)
    : tokens_(std::move(tokens)),
      added_(std::move(added)),
      options_(std::move(options)),
      raw_splitter_(std::make_unique<detail::AddedSplitter>()),
      norm_splitter_(std::make_unique<detail::AddedSplitter>()) {
  if (tokens_.empty()) fail("wordpiece: the vocab is empty");
  if (options_.max_input_chars_per_word < 0) {
    fail("wordpiece: max_input_chars_per_word {} is negative", options_.max_input_chars_per_word);
  }
  n_model_ = tokens_.size();
  for (size_t id = 0; id < tokens_.size(); ++id) {
    check_utf8(tokens_[id], fmt::format("wordpiece: token {}", id));
    // A repeated token keeps its last id, as transformers' load_vocab does.
    vocab_[tokens_[id]] = static_cast<int32_t>(id);
  }
  int32_t max_id = static_cast<int32_t>(tokens_.size()) - 1;
  for (const auto& a : added_) max_id = std::max(max_id, a.id);
  if (static_cast<size_t>(max_id) >= tokens_.size() + added_.size()) {
    fail("wordpiece: added token id {} leaves a gap after the {} vocab tokens", max_id,
         tokens_.size());
  }
  tokens_.resize(static_cast<size_t>(max_id) + 1);
  special_.assign(tokens_.size(), 0);
  for (const auto& a : added_) {
    check_utf8(a.content, "wordpiece: added token");
    if (static_cast<size_t>(a.id) < n_model_ && tokens_[a.id] != a.content) {
      fail("wordpiece: added token '{}' has id {}, which is '{}' in the vocab", a.content, a.id,
           tokens_[a.id]);
    }
    tokens_[a.id] = a.content;
    vocab_.emplace(a.content, a.id);
    special_[a.id] = a.special ? 1 : 0;
    (a.normalized ? norm_splitter_ : raw_splitter_)->add(a.content, a.id, a.lstrip, a.rstrip);
  }
  auto unk = vocab_.find(options_.unk_token);
  if (unk == vocab_.end()) {
    fail(
        "wordpiece: the unk token '{}' is not in the vocab (add it to the vocab, or name the "
        "vocab's unknown token as unk_token)",
        options_.unk_token);
  }
  unk_id_ = unk->second;
  if (auto p = vocab_.find(options_.pad_token); p != vocab_.end()) pad_id_ = p->second;
  auto cls = vocab_.find(options_.cls_token), sep = vocab_.find(options_.sep_token);
  if (cls != vocab_.end() && sep != vocab_.end()) {
    single_ = bert_template(cls->second, sep->second, options_, false);
    pair_ = bert_template(cls->second, sep->second, options_, true);
  } else {
    single_ = {{.sequence = 0}};
    pair_ = {{.sequence = 0}, {.sequence = 1, .type_id = 1}};
  }
}

WordPieceTokenizer::WordPieceTokenizer(const WordPieceTokenizer& o)
    : Tokenizer(o),
      wordpiece_decoder(o.wordpiece_decoder),
      tokens_(o.tokens_),
      vocab_(o.vocab_),
      n_model_(o.n_model_),
      added_(o.added_),
      special_(o.special_),
      options_(o.options_),
      unk_id_(o.unk_id_),
      pad_id_(o.pad_id_),
      single_(o.single_),
      pair_(o.pair_),
      raw_splitter_(std::make_unique<detail::AddedSplitter>(*o.raw_splitter_)),
      norm_splitter_(std::make_unique<detail::AddedSplitter>(*o.norm_splitter_)) {}

WordPieceTokenizer::WordPieceTokenizer(WordPieceTokenizer&& o) noexcept = default;
WordPieceTokenizer::~WordPieceTokenizer() = default;

void WordPieceTokenizer::set_templates(std::vector<TemplatePiece> single,
                                       std::vector<TemplatePiece> pair) {
  for (const auto* t : {&single, &pair}) {
    for (const auto& p : *t) {
      if (p.sequence > (t == &pair ? 1 : 0)) {
        fail("wordpiece: a template refers to sequence {} that it does not have",
             p.sequence == 0 ? "A" : "B");
      }
      for (int32_t id : p.ids) {
        if (id < 0 || id >= vocab_size()) {
          fail("wordpiece: the template token '{}' has id {}, out of range [0, {})", p.special, id,
               vocab_size());
        }
      }
    }
  }
  single_ = std::move(single);
  pair_ = std::move(pair);
}

std::string WordPieceTokenizer::normalize(std::string_view text) const {
  const auto& n = options_.normalizer;
  std::string out;
  out.reserve(text.size() + 8);
  for_each_cp(text, [&](char32_t c) {
    if (n.clean_text) {
      if (c == 0 || c == 0xFFFD || is_control(c)) return;
      if (detail::is_white_space(c)) c = ' ';
    }
    if (n.handle_chinese_chars && is_cjk(c)) {
      out += ' ';
      detail::append_utf8(out, c);
      out += ' ';
    } else {
      detail::append_utf8(out, c);
    }
  });
  if (n.strip_accents.value_or(n.lowercase)) {
    bool ascii = std::all_of(out.begin(), out.end(), [](char ch) { return (ch & 0x80) == 0; });
    if (!ascii) {
      utf8proc_uint8_t* nfd = nullptr;
      auto len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(out.data()),
                              static_cast<utf8proc_ssize_t>(out.size()), &nfd, UTF8PROC_DECOMPOSE);
      if (len < 0) fail("wordpiece: NFD failed ({})", utf8proc_errmsg(len));
      std::string_view decomposed(reinterpret_cast<const char*>(nfd), static_cast<size_t>(len));
      std::string kept;
      kept.reserve(decomposed.size());
      for_each_cp(decomposed, [&](char32_t c) {
        if (category(c) != UTF8PROC_CATEGORY_MN) detail::append_utf8(kept, c);
      });
      std::free(nfd);
      out = std::move(kept);
    }
  }
  if (n.lowercase) {
    std::string lower;
    lower.reserve(out.size());
    for_each_cp(out, [&](char32_t c) {
      if (c < 128) {
        lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      } else if (c == 0x130) {
        lower += "i\xCC\x87";  // İ's full lowercase mapping: i + combining dot above
      } else {
        detail::append_utf8(
            lower, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
      }
    });
    out = std::move(lower);
  }
  return out;
}

// The words of text (valid UTF-8), and the added tokens between them (id >= 0):
// emit(word, -1) or emit(token, id).
template <class F>
void WordPieceTokenizer::for_each_word(std::string_view text, F&& emit) const {
  raw_splitter_->split(text, [&](std::string_view raw, int32_t raw_id) {
    if (raw_id >= 0) {
      emit(raw, raw_id);
      return;
    }
    std::string normalized = normalize(raw);
    norm_splitter_->split(normalized, [&](std::string_view s, int32_t id) {
      if (id >= 0) {
        emit(s, id);
        return;
      }
      // BertPreTokenizer: whitespace separates words and is dropped; punctuation is a word.
      size_t start = 0, i = 0;
      while (i < s.size()) {
        char32_t c;
        size_t len = static_cast<size_t>(detail::utf8_sequence(s, i, &c));
        bool space = detail::is_white_space(c), punct = !space && is_punctuation(c);
        if (space || punct) {
          if (i > start) emit(s.substr(start, i - start), -1);
          if (punct) emit(s.substr(i, len), -1);
          start = i + len;
        }
        i += len;
      }
      if (start < s.size()) emit(s.substr(start), -1);
    });
  });
}

void WordPieceTokenizer::encode_word(std::string_view w, std::vector<int32_t>& ids) const {
  int64_t chars = 0;
  for (char ch : w) chars += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  if (chars > options_.max_input_chars_per_word) {
    ids.push_back(unk_id_);
    return;
  }
  const size_t first = ids.size();
  std::string piece = options_.continuing_subword_prefix;
  const size_t prefix = piece.size();
  size_t start = 0;
  while (start < w.size()) {
    size_t end = w.size();
    int32_t found = -1;
    while (start < end) {
      std::string_view sub = w.substr(start, end - start);
      if (start > 0) {
        piece.resize(prefix);
        piece.append(sub);
        sub = piece;
      }
      if (auto it = vocab_.find(sub);
          it != vocab_.end() && static_cast<size_t>(it->second) < n_model_) {
        found = it->second;
        break;
      }
      do {
        --end;
      } while (end > start && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80);
    }
    if (found < 0) {
      ids.resize(first);
      ids.push_back(unk_id_);
      return;
    }
    ids.push_back(found);
    start = end;
  }
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text) const {
  check_utf8(text, "encode");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 4);
  for_each_word(text, [&](std::string_view w, int32_t id) {
    if (id >= 0) {
      ids.push_back(id);
    } else {
      encode_word(w, ids);
    }
  });
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (int32_t id : encode(text)) out.push_back(tokens_[id]);
  return out;
}

std::string WordPieceTokenizer::decode(std::span<const int32_t> ids,
                                       bool skip_special_tokens) const {
  std::string out, piece;
  bool first = true;
  const std::string& prefix = options_.continuing_subword_prefix;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size())
      fail("decode: id {} is out of range [0, {})", id, vocab_size());
    if (skip_special_tokens && special_[id]) continue;
    const std::string& t = tokens_[id];
    if (!wordpiece_decoder) {
      if (!first) out += ' ';
      out += t;
    } else {
      if (first) {
        piece = t;
      } else if (!prefix.empty() && t.starts_with(prefix)) {
        piece.assign(t, prefix.size());
      } else {
        piece = " " + t;
      }
      if (options_.decoder_cleanup) cleanup(piece);
      out += piece;
    }
    first = false;
  }
  return out;
}

std::optional<int32_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::string WordPieceTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail("id_to_token: id {} is out of range [0, {})", id, vocab_size());
  return tokens_[id];
}

std::string WordPieceTokenizer::token_bytes(int32_t id) const {
  const std::string t = id_to_token(id);
  const std::string& prefix = options_.continuing_subword_prefix;
  if (wordpiece_decoder && !prefix.empty() && t.starts_with(prefix)) return t.substr(prefix.size());
  return " " + t;
}

bool WordPieceTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

// ---- training

WordPieceTokenizer WordPieceTokenizer::train(const std::vector<std::string>& texts,
                                             const WordPieceTrainOptions& o) {
  WordPieceOptions wo;
  wo.normalizer = o.normalizer;
  if (std::find(o.special_tokens.begin(), o.special_tokens.end(), wo.unk_token) ==
      o.special_tokens.end()) {
    fail("wordpiece train: the special tokens need the unk token '{}'", wo.unk_token);
  }
  const WordPieceTokenizer probe({wo.unk_token}, {}, wo);  // its normalizer and pre-tokenizer
  std::map<std::string, int64_t> word_counts;  // sorted, so that ids do not depend on hashing
  for (size_t t = 0; t < texts.size(); ++t) {
    check_utf8(texts[t], fmt::format("wordpiece train: text {}", t));
    probe.for_each_word(texts[t],
                        [&](std::string_view w, int32_t) { ++word_counts[std::string(w)]; });
  }
  std::vector<std::string> tokens;
  std::unordered_map<std::string, int32_t> vocab;
  auto intern = [&](const std::string& s) {
    auto [it, fresh] = vocab.emplace(s, static_cast<int32_t>(tokens.size()));
    if (fresh) tokens.push_back(s);
    return it->second;
  };
  for (const auto& s : o.special_tokens) {
    check_utf8(s, "wordpiece train: special token");
    intern(s);
  }
  std::map<char32_t, int> alphabet;
  for (const auto& [w, c] : word_counts) for_each_cp(w, [&](char32_t cp) { alphabet[cp] = 1; });
  for (const auto& [cp, unused] : alphabet) {
    std::string s;
    detail::append_utf8(s, cp);
    intern(s);
  }
  const std::string& prefix = wo.continuing_subword_prefix;
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  for (const auto& [w, c] : word_counts) {
    std::vector<int32_t> syms;
    for_each_cp(w, [&](char32_t cp) {
      std::string s = syms.empty() ? "" : prefix;
      detail::append_utf8(s, cp);
      syms.push_back(intern(s));
    });
    words.push_back(std::move(syms));
    counts.push_back(c);
  }
  detail::learn_merges(words, counts, tokens, vocab, o.vocab_size, o.min_frequency, o.progress,
                       "wordpiece train", [&](int32_t a, int32_t b) {
                         const std::string& tb = tokens[b];
                         return tokens[a] +
                                (tb.starts_with(prefix) ? tb.substr(prefix.size()) : tb);
                       });
  std::vector<AddedToken> added;
  for (size_t i = 0; i < o.special_tokens.size(); ++i) {
    const std::string& s = o.special_tokens[i];
    if (vocab.at(s) != static_cast<int32_t>(added.size())) continue;  // listed twice
    added.push_back({.id = vocab.at(s), .content = s, .special = true, .normalized = false});
  }
  return WordPieceTokenizer(std::move(tokens), std::move(added), std::move(wo));
}

// ---- model inputs

namespace {

size_t n_added(const std::vector<TemplatePiece>& t) {
  size_t n = 0;
  for (const auto& p : t) n += p.sequence < 0 ? p.ids.size() : 0;
  return n;
}

// HF's TruncationStrategy::LongestFirst for at most max tokens in all.
void truncate_longest_first(std::vector<int32_t>& a, std::vector<int32_t>* b, size_t max) {
  size_t total = a.size() + (b ? b->size() : 0);
  if (total <= max) return;
  if (!b) {
    a.resize(max);
    return;
  }
  size_t n1 = a.size(), n2 = b->size();
  bool swap = n1 > n2;
  if (swap) std::swap(n1, n2);
  n2 = n1 > max ? n1 : std::max(n1, max - n1);
  if (n1 + n2 > max) {
    n1 = max / 2;
    n2 = n1 + max % 2;
  }
  if (swap) std::swap(n1, n2);
  a.resize(std::min(a.size(), n1));
  b->resize(std::min(b->size(), n2));
}

}  // namespace

Encoding WordPieceTokenizer::post_process(std::vector<int32_t> a,
                                          std::optional<std::vector<int32_t>> b,
                                          const EncodeOptions& o) const {
  const auto& tmpl = b ? pair_ : single_;
  if (o.max_length < 0 || o.pad_to < 0) {
    fail("encode: max_length {} and pad_to {} must not be negative", o.max_length, o.pad_to);
  }
  if (o.max_length > 0) {
    size_t added = o.add_special_tokens ? n_added(tmpl) : 0;
    if (static_cast<size_t>(o.max_length) < added) {
      fail("encode: max_length {} leaves no room: the special tokens alone take {}", o.max_length,
           added);
    }
    truncate_longest_first(a, b ? &*b : nullptr, static_cast<size_t>(o.max_length) - added);
  }
  Encoding e;
  auto append = [&](const std::vector<int32_t>& ids, int32_t type) {
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    e.token_type_ids.insert(e.token_type_ids.end(), ids.size(), type);
  };
  if (o.add_special_tokens) {
    for (const auto& p : tmpl) append(p.sequence < 0 ? p.ids : p.sequence == 0 ? a : *b, p.type_id);
  } else {
    append(a, 0);
    if (b) append(*b, 1);
  }
  e.attention_mask.assign(e.ids.size(), 1);
  pad(e, o.pad_to);
  return e;
}

void WordPieceTokenizer::pad(Encoding& e, int64_t length) const {
  if (static_cast<int64_t>(e.ids.size()) >= length) return;
  if (pad_id_ < 0) {
    fail("encode: padding needs the pad token '{}', which is not in the vocab", options_.pad_token);
  }
  size_t n = static_cast<size_t>(length) - e.ids.size();
  e.ids.insert(e.ids.end(), n, pad_id_);
  e.token_type_ids.insert(e.token_type_ids.end(), n, 0);
  e.attention_mask.insert(e.attention_mask.end(), n, 0);
}

Encoding WordPieceTokenizer::encode_for_model(std::string_view text,
                                              std::optional<std::string_view> pair,
                                              const EncodeOptions& o) const {
  std::optional<std::vector<int32_t>> b;
  if (pair) b = encode(*pair);
  return post_process(encode(text), std::move(b), o);
}

std::vector<Encoding> WordPieceTokenizer::encode_batch(std::span<const std::string> texts,
                                                       const EncodeOptions& o) const {
  std::vector<Encoding> out;
  int64_t longest = o.pad_to;
  for (const auto& t : texts) {
    out.push_back(encode_for_model(t, std::nullopt, o));
    longest = std::max(longest, static_cast<int64_t>(out.back().ids.size()));
  }
  for (auto& e : out) pad(e, longest);
  return out;
}

std::vector<Encoding> WordPieceTokenizer::encode_batch(
    std::span<const std::pair<std::string, std::string>> pairs, const EncodeOptions& o) const {
  std::vector<Encoding> out;
  int64_t longest = o.pad_to;
  for (const auto& [a, b] : pairs) {
    out.push_back(encode_for_model(a, b, o));
    longest = std::max(longest, static_cast<int64_t>(out.back().ids.size()));
  }
  for (auto& e : out) pad(e, longest);
  return out;
}

// ---- files

std::string WordPieceTokenizer::to_json() const {
  using ojson = nlohmann::ordered_json;
  ojson vocab = ojson::object();
  for (size_t id = 0; id < n_model_; ++id) vocab[tokens_[id]] = id;
  auto template_json = [](const std::vector<TemplatePiece>& t) {
    ojson out = ojson::array();
    for (const auto& p : t) {
      if (p.sequence >= 0) {
        out.push_back(
            {{"Sequence", {{"id", p.sequence == 0 ? "A" : "B"}, {"type_id", p.type_id}}}});
      } else {
        out.push_back({{"SpecialToken", {{"id", p.special}, {"type_id", p.type_id}}}});
      }
    }
    return out;
  };
  ojson specials = ojson::object();
  for (const auto* t : {&single_, &pair_}) {
    for (const auto& p : *t) {
      if (p.sequence >= 0) continue;
      ojson toks = ojson::array();
      for (int32_t id : p.ids) toks.push_back(tokens_[id]);
      specials[p.special] = {{"id", p.special}, {"ids", p.ids}, {"tokens", std::move(toks)}};
    }
  }
  const auto& n = options_.normalizer;
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = detail::added_tokens_to_json(added_);
  j["normalizer"] = {{"type", "BertNormalizer"},
                     {"clean_text", n.clean_text},
                     {"handle_chinese_chars", n.handle_chinese_chars},
                     {"strip_accents", nullptr},
                     {"lowercase", n.lowercase}};
  if (n.strip_accents) j["normalizer"]["strip_accents"] = *n.strip_accents;
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", template_json(single_)},
                         {"pair", template_json(pair_)},
                         {"special_tokens", std::move(specials)}};
  if (wordpiece_decoder) {
    j["decoder"] = {{"type", "WordPiece"},
                    {"prefix", options_.continuing_subword_prefix},
                    {"cleanup", options_.decoder_cleanup}};
  } else {
    j["decoder"] = nullptr;
  }
  j["model"] = {{"type", "WordPiece"},
                {"unk_token", options_.unk_token},
                {"continuing_subword_prefix", options_.continuing_subword_prefix},
                {"max_input_chars_per_word", options_.max_input_chars_per_word},
                {"vocab", std::move(vocab)}};
  return j.dump(2);
}

void WordPieceTokenizer::save(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("save tokenizer: cannot create the directory {}: {}", dir, ec.message());
  detail::write_text_file((fs::path(dir) / "tokenizer.json").string(), to_json());
  std::string vocab;
  for (size_t id = 0; id < n_model_; ++id) vocab += tokens_[id] + "\n";
  detail::write_text_file((fs::path(dir) / "vocab.txt").string(), vocab);
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_txt(const std::string& dir) {
  const std::string path = (fs::path(dir) / "vocab.txt").string();
  std::string text = read_text_file(path);
  check_utf8(text, path);
  std::vector<std::string> tokens;
  for (size_t start = 0; start < text.size();) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl;
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.push_back(std::move(line));
    start = end + 1;
  }
  if (tokens.empty())
    fail("{}: the vocab is empty (a BERT vocab.txt has one token per line)", path);
  WordPieceOptions o;
  const fs::path config = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(config)) {
    nlohmann::json c;
    try {
      c = nlohmann::json::parse(read_text_file(config.string()));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON ({})", config.string(), e.what());
    }
    if (!c.is_object()) fail("{}: not a JSON object", config.string());
    auto flag = [&](const char* key, bool def) {
      auto v = detail::json_field(c, key);
      if (v && !v->is_boolean()) fail("{}: \"{}\" is not true or false", config.string(), key);
      return v ? v->get<bool>() : def;
    };
    o.normalizer.lowercase = flag("do_lower_case", true);
    o.normalizer.handle_chinese_chars = flag("tokenize_chinese_chars", true);
    if (detail::json_field(c, "strip_accents"))
      o.normalizer.strip_accents = flag("strip_accents", false);
    using Field = std::pair<const char*, std::string*>;
    for (auto [key, field] : std::initializer_list<Field>{{"unk_token", &o.unk_token},
                                                          {"cls_token", &o.cls_token},
                                                          {"sep_token", &o.sep_token},
                                                          {"pad_token", &o.pad_token}}) {
      if (auto v = detail::json_field(c, key); v && v->is_string()) *field = v->get<std::string>();
    }
  }
  std::vector<AddedToken> added;
  std::map<std::string, int32_t> last_id;
  for (size_t id = 0; id < tokens.size(); ++id) last_id[tokens[id]] = static_cast<int32_t>(id);
  for (const auto& s :
       {o.pad_token, o.unk_token, o.cls_token, o.sep_token, std::string("[MASK]")}) {
    if (auto it = last_id.find(s); it != last_id.end()) {
      added.push_back({.id = it->second, .content = s, .special = true, .normalized = false});
    }
  }
  try {
    return WordPieceTokenizer(std::move(tokens), std::move(added), std::move(o));
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
}

namespace {

// tokenizer.json "model" of type WordPiece, with its normalizer, pre-tokenizer,
// post-processor and decoder.
WordPieceTokenizer wordpiece_from_json(const nlohmann::json& j) {
  using detail::json_field;
  using detail::json_type_of;
  const auto& model = j.at("model");
  WordPieceOptions o;
  o.normalizer = {.clean_text = false, .handle_chinese_chars = false, .lowercase = false};
  if (auto u = json_field(model, "unk_token")) {
    if (!u->is_string()) fail("tokenizer.json: model \"unk_token\" is not a string");
    o.unk_token = u->get<std::string>();
  }
  if (auto p = json_field(model, "continuing_subword_prefix")) {
    if (!p->is_string()) fail("tokenizer.json: \"continuing_subword_prefix\" is not a string");
    o.continuing_subword_prefix = p->get<std::string>();
  }
  if (auto m = json_field(model, "max_input_chars_per_word")) {
    if (!m->is_number_integer() || m->get<int64_t>() < 0) {
      fail("tokenizer.json: \"max_input_chars_per_word\" {} is not a count", m->dump());
    }
    o.max_input_chars_per_word = m->get<int64_t>();
  }
  const char* fix =
      "moxing reads WordPiece with BERT's pipeline: a BertNormalizer (or none) and a "
      "BertPreTokenizer, as transformers writes them for BERT; a folder with only vocab.txt "
      "gets that pipeline";
  if (auto n = json_field(j, "normalizer")) {
    std::string t = json_type_of(*n, "normalizer");
    if (t != "BertNormalizer") {
      fail("tokenizer.json: unsupported normalizer type '{}' for WordPiece ({})", t, fix);
    }
    auto flag = [&](const char* k, bool def) {
      auto v = json_field(*n, k);
      if (v && !v->is_boolean()) fail("tokenizer.json: normalizer \"{}\" is not a boolean", k);
      return v ? v->get<bool>() : def;
    };
    o.normalizer.clean_text = flag("clean_text", true);
    o.normalizer.handle_chinese_chars = flag("handle_chinese_chars", true);
    o.normalizer.lowercase = flag("lowercase", true);
    if (json_field(*n, "strip_accents")) o.normalizer.strip_accents = flag("strip_accents", false);
  }
  auto pre = json_field(j, "pre_tokenizer");
  std::string pre_type = pre ? json_type_of(*pre, "pre_tokenizer") : "none";
  if (pre_type != "BertPreTokenizer") {
    fail("tokenizer.json: unsupported pre_tokenizer type '{}' for WordPiece ({})", pre_type, fix);
  }
  bool decoder = false;
  if (auto d = json_field(j, "decoder")) {
    std::string t = json_type_of(*d, "decoder");
    if (t != "WordPiece") fail("tokenizer.json: unsupported decoder type '{}' for WordPiece", t);
    decoder = true;
    auto prefix = json_field(*d, "prefix");
    if (prefix && (!prefix->is_string() || *prefix != o.continuing_subword_prefix)) {
      fail("tokenizer.json: the WordPiece decoder prefix {} is not the model's '{}'",
           prefix->dump(), o.continuing_subword_prefix);
    }
    auto c = json_field(*d, "cleanup");
    o.decoder_cleanup = !c || !c->is_boolean() || c->get<bool>();
  }
  auto vj = json_field(model, "vocab");
  if (!vj || !vj->is_object()) fail("tokenizer.json: model has no \"vocab\" object");
  std::map<int32_t, std::string> by_id;
  for (auto it = vj->begin(); it != vj->end(); ++it) {
    int32_t id =
        detail::id_from_json(it.value(), fmt::format("tokenizer.json: token '{}'", it.key()));
    if (!by_id.emplace(id, it.key()).second) {
      fail("tokenizer.json: id {} is given to two tokens, '{}' and '{}'", id, by_id[id], it.key());
    }
  }
  std::vector<std::string> tokens;
  for (auto& [id, t] : by_id) {
    if (id != static_cast<int32_t>(tokens.size())) {
      fail("tokenizer.json: the vocab ids are not 0..{} without gaps (missing {})",
           by_id.size() - 1, tokens.size());
    }
    tokens.push_back(std::move(t));
  }
  if (tokens.empty()) fail("tokenizer.json: the WordPiece vocab is empty");
  WordPieceTokenizer tok(std::move(tokens), detail::added_tokens_from_json(j), o);
  tok.wordpiece_decoder = decoder;
  std::vector<TemplatePiece> single = {{.sequence = 0}};
  std::vector<TemplatePiece> pair = {{.sequence = 0}, {.sequence = 1, .type_id = 1}};
  if (auto p = json_field(j, "post_processor")) {
    std::string t = json_type_of(*p, "post_processor");
    auto special_ids = [&](const nlohmann::json& name_id) {
      if (!name_id.is_array() || name_id.size() != 2 || !name_id[0].is_string()) {
        fail("tokenizer.json: BertProcessing wants [token, id] pairs, got {}", name_id.dump());
      }
      return std::pair{name_id[0].get<std::string>(),
                       detail::id_from_json(name_id[1], "tokenizer.json: BertProcessing")};
    };
    if (t == "BertProcessing") {
      auto cls = special_ids(p->at("cls")), sep = special_ids(p->at("sep"));
      single = {{.special = cls.first, .ids = {cls.second}},
                {.sequence = 0},
                {.special = sep.first, .ids = {sep.second}}};
      pair = single;
      pair.push_back({.sequence = 1, .type_id = 1});
      pair.push_back({.special = sep.first, .ids = {sep.second}, .type_id = 1});
    } else if (t == "TemplateProcessing") {
      auto specials = json_field(*p, "special_tokens");
      auto parse = [&](const char* key) {
        auto arr = json_field(*p, key);
        if (!arr || !arr->is_array()) fail("tokenizer.json: TemplateProcessing has no \"{}\"", key);
        std::vector<TemplatePiece> out;
        for (const auto& e : *arr) {
          TemplatePiece piece;
          if (auto s = json_field(e, "Sequence")) {
            std::string id = s->at("id").get<std::string>();
            if (id != "A" && id != "B") fail("tokenizer.json: template sequence '{}'", id);
            piece.sequence = id == "A" ? 0 : 1;
            piece.type_id = detail::id_from_json(s->at("type_id"), "tokenizer.json: type_id");
          } else if (auto st = json_field(e, "SpecialToken")) {
            piece.special = st->at("id").get<std::string>();
            piece.type_id = detail::id_from_json(st->at("type_id"), "tokenizer.json: type_id");
            const nlohmann::json* def =
                specials ? json_field(*specials, piece.special.c_str()) : nullptr;
            if (!def) {
              fail("tokenizer.json: the template's special token '{}' is not in \"special_tokens\"",
                   piece.special);
            }
            for (const auto& id : def->at("ids")) {
              piece.ids.push_back(detail::id_from_json(id, "tokenizer.json: special token id"));
            }
          } else {
            fail("tokenizer.json: a template piece is neither Sequence nor SpecialToken: {}",
                 e.dump());
          }
          out.push_back(std::move(piece));
        }
        return out;
      };
      single = parse("single");
      pair = parse("pair");
    } else {
      fail("tokenizer.json: unsupported post_processor type '{}' for WordPiece", t);
    }
  }
  tok.set_templates(std::move(single), std::move(pair));
  return tok;
}

TokenizerModel make_wordpiece_model() {
  return {.model_type = "WordPiece",
          .from_json = [](const nlohmann::json& j) -> std::unique_ptr<Tokenizer> {
            return std::make_unique<WordPieceTokenizer>(wordpiece_from_json(j));
          },
          .folder_files = {"vocab.txt"},
          .from_folder = [](const std::string& dir) -> std::unique_ptr<Tokenizer> {
            return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_txt(dir));
          }};
}

}  // namespace

MOXING_REGISTER_TOKENIZER(make_wordpiece_model);

}  // namespace moxing::tokenizers
