// BLEU and chrF as sacreBLEU computes them (see the header): the same tokenization, the same
// sufficient statistics summed over the corpus, the same smoothing.
#include "moxing/train/translation_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <unordered_map>

#include "moxing/core/error.h"
#include "moxing/tokenizers/utf8.h"

namespace moxing::train {

namespace {

// The code points of s (valid UTF-8, checked by the caller).
std::u32string code_points(std::string_view s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const int n = tokenizers::detail::utf8_sequence(s, i, &cp);
    MOXING_CHECK(n > 0, "translation metrics: invalid UTF-8 at byte {}", i);
    out.push_back(cp);
    i += static_cast<size_t>(n);
  }
  return out;
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) tokenizers::detail::append_utf8(out, c);
  return out;
}

// Python's str.isspace(): what str.split() splits on
bool is_space(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x85 ||
         c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
         c == 0x202f || c == 0x205f || c == 0x3000;
}

// str.split(): runs of whitespace separate words; none at either end
std::vector<std::u32string> split_words(std::u32string_view s) {
  std::vector<std::u32string> words;
  std::u32string cur;
  for (char32_t c : s) {
    if (is_space(c)) {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

// [\{-\~\[-\` -\&\(-\+\:-\@\/]: the symbols rule 1 of 13a sets apart
bool is_13a_symbol(char32_t c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
         (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

void check_text(const std::string& s, const char* what, size_t i) {
  MOXING_CHECK(tokenizers::find_invalid_utf8(s) == std::string::npos,
               "translation metrics: the {} of sentence {} is not valid UTF-8", what, i + 1);
}

void check_streams(const std::vector<std::string>& hyps,
                   const std::vector<std::vector<std::string>>& refs) {
  MOXING_CHECK(!refs.empty(), "translation metrics: no reference stream");
  for (size_t k = 0; k < refs.size(); ++k) {
    MOXING_CHECK(refs[k].size() == hyps.size(),
                 "translation metrics: reference stream {} has {} sentences for {} hypotheses",
                 k + 1, refs[k].size(), hyps.size());
  }
  for (size_t i = 0; i < hyps.size(); ++i) {
    check_text(hyps[i], "hypothesis", i);
    for (const auto& r : refs) check_text(r[i], "reference", i);
  }
}

using NgramCounts = std::map<std::vector<std::string>, int64_t>;

NgramCounts word_ngrams(const std::vector<std::string>& words, int max_order) {
  NgramCounts counts;
  for (int n = 1; n <= max_order; ++n) {
    for (size_t i = 0; i + static_cast<size_t>(n) <= words.size(); ++i) {
      ++counts[std::vector<std::string>(words.begin() + static_cast<std::ptrdiff_t>(i),
                                        words.begin() + static_cast<std::ptrdiff_t>(i + n))];
    }
  }
  return counts;
}

// Python's math.log with sacreBLEU's my_log: log(0) is -9999999999
double my_log(double x) { return x == 0 ? -9999999999.0 : std::log(x); }

}  // namespace

std::vector<std::string> tokenize_13a(std::string_view text) {
  std::string line(text);
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    replace_all(line, "&quot;", "\"");
    replace_all(line, "&amp;", "&");
    replace_all(line, "&lt;", "<");
    replace_all(line, "&gt;", ">");
  }
  const std::u32string s = code_points(" " + line + " ");
  // each rule is one left-to-right pass of non-overlapping matches, as re.sub makes it
  std::u32string a;
  for (char32_t c : s) {
    if (is_13a_symbol(c)) {
      a += U' ';
      a += c;
      a += U' ';
    } else {
      a += c;
    }
  }
  std::u32string b;  // ([^0-9])([\.,]) -> \1 \2 (space after)
  for (size_t i = 0; i < a.size();) {
    if (i + 1 < a.size() && !is_digit(a[i]) && (a[i + 1] == '.' || a[i + 1] == ',')) {
      b += a[i];
      b += U' ';
      b += a[i + 1];
      b += U' ';
      i += 2;
    } else {
      b += a[i++];
    }
  }
  std::u32string c;  // ([\.,])([^0-9]) -> " \1 \2"
  for (size_t i = 0; i < b.size();) {
    if (i + 1 < b.size() && (b[i] == '.' || b[i] == ',') && !is_digit(b[i + 1])) {
      c += U' ';
      c += b[i];
      c += U' ';
      c += b[i + 1];
      i += 2;
    } else {
      c += b[i++];
    }
  }
  std::u32string d;  // ([0-9])(-) -> "\1 \2 "
  for (size_t i = 0; i < c.size();) {
    if (i + 1 < c.size() && is_digit(c[i]) && c[i + 1] == '-') {
      d += c[i];
      d += U" - ";
      i += 2;
    } else {
      d += c[i++];
    }
  }
  std::vector<std::string> out;
  for (const auto& w : split_words(d)) out.push_back(to_utf8(w));
  return out;
}

std::string BleuScore::to_string() const {
  return fmt::format(
      "BLEU = {:.2f} {:.1f}/{:.1f}/{:.1f}/{:.1f} (BP = {:.3f} ratio = {:.3f} hyp_len = {} "
      "ref_len = {})",
      score, precisions[0], precisions[1], precisions[2], precisions[3], brevity_penalty,
      ref_len > 0 ? static_cast<double>(sys_len) / static_cast<double>(ref_len) : 0.0, sys_len,
      ref_len);
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references) {
  check_streams(hypotheses, references);
  constexpr int kOrder = 4;
  BleuScore r;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const std::vector<std::string> hyp = tokenize_13a(hypotheses[i]);
    const auto hyp_len = static_cast<int64_t>(hyp.size());
    NgramCounts ref_max;
    int64_t closest_diff = -1, closest_len = -1;
    for (const auto& stream : references) {
      const std::vector<std::string> ref = tokenize_13a(stream[i]);
      const auto len = static_cast<int64_t>(ref.size());
      const int64_t diff = std::llabs(hyp_len - len);
      if (closest_diff == -1 || diff < closest_diff) {
        closest_diff = diff;
        closest_len = len;
      } else if (diff == closest_diff && len < closest_len) {
        closest_len = len;
      }
      for (const auto& [ngram, count] : word_ngrams(ref, kOrder)) {
        int64_t& m = ref_max[ngram];
        m = std::max(m, count);
      }
    }
    r.sys_len += hyp_len;
    r.ref_len += closest_len;
    for (const auto& [ngram, count] : word_ngrams(hyp, kOrder)) {
      const size_t n = ngram.size() - 1;
      r.total[n] += count;
      auto it = ref_max.find(ngram);
      if (it != ref_max.end()) r.correct[n] += std::min(count, it->second);
    }
  }
  if (r.sys_len < r.ref_len) {
    r.brevity_penalty =
        r.sys_len > 0
            ? std::exp(1 - static_cast<double>(r.ref_len) / static_cast<double>(r.sys_len))
            : 0.0;
  }
  if (std::all_of(r.correct.begin(), r.correct.end(), [](int64_t c) { return c == 0; })) {
    return r;  // no match at all: 0, as sacreBLEU stops early
  }
  double smooth = 1;
  for (int n = 0; n < kOrder; ++n) {
    if (r.total[n] == 0) break;
    if (r.correct[n] == 0) {
      smooth *= 2;
      r.precisions[n] = 100.0 / (smooth * static_cast<double>(r.total[n]));
    } else {
      r.precisions[n] = 100.0 * static_cast<double>(r.correct[n]) / static_cast<double>(r.total[n]);
    }
  }
  double log_sum = 0;
  for (double p : r.precisions) log_sum += my_log(p);
  r.score = r.brevity_penalty * std::exp(log_sum / kOrder);
  return r;
}

namespace {

constexpr int kCharOrder = 6;
constexpr double kBeta = 2;

using CharCounts = std::array<std::unordered_map<std::u32string, int64_t>, kCharOrder>;

CharCounts char_ngrams(const std::string& sentence) {
  std::u32string s;
  for (const auto& w : split_words(code_points(sentence))) s += w;  // whitespace removed
  CharCounts counts;
  for (int n = 1; n <= kCharOrder; ++n) {
    for (size_t i = 0; i + static_cast<size_t>(n) <= s.size(); ++i) {
      ++counts[static_cast<size_t>(n - 1)][s.substr(i, static_cast<size_t>(n))];
    }
  }
  return counts;
}

// [hyp, ref, match] counts per order
using ChrfStats = std::array<int64_t, 3 * kCharOrder>;

ChrfStats match_stats(const CharCounts& hyp, const CharCounts& ref) {
  ChrfStats st{};
  for (size_t n = 0; n < static_cast<size_t>(kCharOrder); ++n) {
    int64_t hyp_count = 0, match = 0, ref_count = 0;
    for (const auto& [g, c] : hyp[n]) {
      hyp_count += c;
      auto it = ref[n].find(g);
      if (it != ref[n].end()) match += std::min(c, it->second);
    }
    for (const auto& [g, c] : ref[n]) ref_count += c;
    st[3 * n] = ref[n].empty() ? 0 : hyp_count;  // no hits counted without reference n-grams
    st[3 * n + 1] = ref_count;
    st[3 * n + 2] = match;
  }
  return st;
}

// chrF++.py-compatible: precision and recall averaged over the orders both sides have
double chrf_score(const ChrfStats& st) {
  const double factor = kBeta * kBeta;
  double avg_prec = 0, avg_rec = 0;
  int effective = 0;
  for (size_t n = 0; n < static_cast<size_t>(kCharOrder); ++n) {
    const auto hyp = static_cast<double>(st[3 * n]), ref = static_cast<double>(st[3 * n + 1]),
               match = static_cast<double>(st[3 * n + 2]);
    if (hyp > 0 && ref > 0) {
      avg_prec += match / hyp;
      avg_rec += match / ref;
      ++effective;
    }
  }
  if (effective == 0) return 0;
  avg_prec /= effective;
  avg_rec /= effective;
  if (avg_prec + avg_rec == 0) return 0;
  return 100 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
}

}  // namespace

double corpus_chrf(const std::vector<std::string>& hypotheses,
                   const std::vector<std::vector<std::string>>& references) {
  check_streams(hypotheses, references);
  ChrfStats total{};
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const CharCounts hyp = char_ngrams(hypotheses[i]);
    ChrfStats best{};
    double best_f = -1;
    for (const auto& stream : references) {
      ChrfStats st = match_stats(hyp, char_ngrams(stream[i]));
      const double f = chrf_score(st);
      if (f > best_f) {
        best_f = f;
        best = st;
      }
    }
    for (size_t j = 0; j < total.size(); ++j) total[j] += best[j];
  }
  return chrf_score(total);
}

}  // namespace moxing::train
