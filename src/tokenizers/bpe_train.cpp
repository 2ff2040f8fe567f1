// Byte-level BPE training, the algorithm of HF's BpeTrainer: words are counted once each
// (deduplicated with their frequency), every adjacent pair's count is kept in a table
// updated incrementally as merges are applied, and a max-heap with lazily refreshed counts
// picks the next pair (highest count, then the smaller pair of ids).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <queue>
#include <unordered_map>

#include "merges.h"
#include "moxing/core/error.h"
#include "moxing/tokenizers/bpe.h"
#include "moxing/tokenizers/utf8.h"
#include "pretokenize.h"

namespace moxing::tokenizers {

namespace {

uint64_t pack(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Candidate {
  int64_t count;
  uint64_t pair;
  int32_t where;  // index of the list of words that had the pair when it was pushed
  // Max-heap order: higher count first, then the smaller pair (as HF's Merge ordering).
  bool operator<(const Candidate& o) const {
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

struct PairDelta {
  uint64_t pair;
  int32_t delta;
};

// Merges every (a, b) in word (left to right) into m, reporting the pair changes the way HF's
// Word::merge does (the neighbours before and after each merge).
void merge_in_word(std::vector<int32_t>& w, int32_t a, int32_t b, int32_t m,
                   std::vector<PairDelta>& changes) {
  size_t out = 0;
  const size_t n = w.size();
  size_t i = 0;
  while (i < n) {
    if (i + 1 < n && w[i] == a && w[i + 1] == b) {
      if (out > 0) {
        changes.push_back({pack(w[out - 1], a), -1});
        changes.push_back({pack(w[out - 1], m), +1});
      }
      if (i + 2 < n) {
        changes.push_back({pack(b, w[i + 2]), -1});
        changes.push_back({pack(m, w[i + 2]), +1});
      }
      w[out++] = m;
      i += 2;
    } else {
      w[out++] = w[i++];
    }
  }
  w.resize(out);
}

}  // namespace

namespace detail {

std::vector<std::pair<int32_t, int32_t>> learn_merges(
    std::vector<std::vector<int32_t>>& words, const std::vector<int64_t>& counts,
    std::vector<std::string>& tokens, std::unordered_map<std::string, int32_t>& vocab,
    int64_t vocab_size, int64_t min_frequency, bool progress, const char* what,
    const std::function<std::string(int32_t, int32_t)>& merged_token) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  // Pair counts and, per pair, the words that have it.
  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (size_t wi = 0; wi < words.size(); ++wi) {
    const auto& w = words[wi];
    for (size_t i = 0; i + 1 < w.size(); ++i) {
      uint64_t p = pack(w[i], w[i + 1]);
      pair_counts[p] += counts[wi];
      auto& list = where[p];
      if (list.empty() || list.back() != static_cast<int32_t>(wi)) {
        list.push_back(static_cast<int32_t>(wi));
      }
    }
  }
  std::vector<std::vector<int32_t>> lists;
  std::priority_queue<Candidate> heap;
  auto push_all = [&](std::unordered_map<uint64_t, std::vector<int32_t>>& m) {
    for (auto& [p, list] : m) {
      int64_t c = pair_counts[p];
      if (c <= 0) continue;
      lists.push_back(std::move(list));
      heap.push({c, p, static_cast<int32_t>(lists.size() - 1)});
    }
    m.clear();
  };
  push_all(where);

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<int64_t> stamp(words.size(), -1);
  std::vector<PairDelta> changes;
  std::unordered_map<uint64_t, std::vector<int32_t>> update;
  while (static_cast<int64_t>(tokens.size()) < vocab_size && !heap.empty()) {
    Candidate top = heap.top();
    heap.pop();
    int64_t now = pair_counts[top.pair];
    if (top.count != now) {
      top.count = now;
      heap.push(top);
      continue;
    }
    if (top.count < 1 || top.count < min_frequency) break;
    const auto a = static_cast<int32_t>(top.pair >> 32);
    const auto b = static_cast<int32_t>(top.pair & 0xFFFFFFFFu);
    std::string merged = merged_token(a, b);
    auto [it, fresh] = vocab.emplace(merged, static_cast<int32_t>(tokens.size()));
    if (fresh) tokens.push_back(merged);
    const int32_t m = it->second;
    const auto step = static_cast<int64_t>(merges.size());
    merges.emplace_back(a, b);
    for (int32_t wi : lists[top.where]) {
      if (stamp[wi] == step) continue;
      stamp[wi] = step;
      changes.clear();
      merge_in_word(words[wi], a, b, m, changes);
      for (const auto& ch : changes) {
        pair_counts[ch.pair] += ch.delta * counts[wi];
        if (ch.delta > 0) {
          auto& list = update[ch.pair];
          if (list.empty() || list.back() != wi) list.push_back(wi);
        }
      }
    }
    push_all(update);
    if (progress && merges.size() % 1000 == 0) {
      std::fprintf(stderr, "%s: %zu merges, vocab %zu, %.1f s\n", what, merges.size(),
                   tokens.size(), std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }

  return merges;
}

}  // namespace detail

ByteLevelBPE ByteLevelBPE::train(const std::vector<std::string>& texts, const BpeTrainOptions& o) {
  const int64_t base = 256 + static_cast<int64_t>(o.special_tokens.size());
  if (o.vocab_size < base) {
    fail("bpe train: vocab_size {} is smaller than the 256 byte tokens + {} special tokens",
         o.vocab_size, o.special_tokens.size());
  }
  // Words and their counts.
  std::unordered_map<std::string, int64_t> word_counts;
  for (size_t t = 0; t < texts.size(); ++t) {
    check_utf8(texts[t], fmt::format("bpe train: text {}", t));
    detail::split_gpt2(texts[t], [&](std::string_view w) { ++word_counts[std::string(w)]; });
  }
  // Ids: special tokens, then the bytes in the order of their mapped characters.
  std::vector<std::string> tokens;
  std::unordered_map<std::string, int32_t> vocab;
  for (const auto& s : o.special_tokens) {
    check_utf8(s, "bpe train: special token");
    if (vocab.emplace(s, static_cast<int32_t>(tokens.size())).second) tokens.push_back(s);
  }
  std::vector<std::pair<char32_t, int>> alphabet;
  for (int b = 0; b < 256; ++b) alphabet.emplace_back(detail::byte_to_unicode()[b], b);
  std::sort(alphabet.begin(), alphabet.end());
  std::array<int32_t, 256> byte_id{};
  for (auto [cp, b] : alphabet) {
    std::string m;
    detail::append_utf8(m, cp);
    auto [it, fresh] = vocab.emplace(m, static_cast<int32_t>(tokens.size()));
    if (fresh) tokens.push_back(m);
    byte_id[b] = it->second;
  }
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  words.reserve(word_counts.size());
  for (const auto& [w, c] : word_counts) {
    std::vector<int32_t> syms(w.size());
    for (size_t i = 0; i < w.size(); ++i) syms[i] = byte_id[static_cast<unsigned char>(w[i])];
    words.push_back(std::move(syms));
    counts.push_back(c);
  }
  word_counts.clear();
  auto merges = detail::learn_merges(words, counts, tokens, vocab, o.vocab_size, o.min_frequency,
                                     o.progress, "bpe train",
                                     [&](int32_t a, int32_t b) { return tokens[a] + tokens[b]; });

  std::vector<std::pair<std::string, std::string>> merge_tokens;
  merge_tokens.reserve(merges.size());
  for (auto [a, b] : merges) merge_tokens.emplace_back(tokens[a], tokens[b]);
  std::vector<AddedToken> added;
  for (const auto& s : o.special_tokens) added.push_back({.id = vocab.at(s), .content = s});
  return ByteLevelBPE(std::move(vocab), std::move(merge_tokens), std::move(added));
}

}  // namespace moxing::tokenizers
