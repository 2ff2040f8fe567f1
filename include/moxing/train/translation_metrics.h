// Corpus BLEU and chrF of translations, the scores sacreBLEU reports with its defaults: BLEU
// over the "13a" tokenization (mteval-v13a), n-grams up to 4, "exp" smoothing, the brevity
// penalty from the closest reference length; chrF2 over character 6-grams without whitespace.
// Several references per sentence are given as streams, as sacreBLEU takes them:
// references[k][i] is the k-th reference of hypotheses[i]. Text is UTF-8; invalid UTF-8 is an
// error naming the sentence.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moxing::train {

/// sacreBLEU's "13a" tokenizer: punctuation and symbols split off, "." and "," except between
/// digits, "-" after a digit; HTML entities &quot; &amp; &lt; &gt; decoded.
std::vector<std::string> tokenize_13a(std::string_view line);

struct BleuScore {
  double score = 0;                    ///< 0 to 100
  std::array<double, 4> precisions{};  ///< n-gram precisions in percent (smoothed)
  std::array<int64_t, 4> correct{}, total{};
  double brevity_penalty = 1;
  int64_t sys_len = 0, ref_len = 0;
  /// "BLEU = 34.12 65.3/41.0/27.9/19.1 (BP = 0.970 ratio = 0.971 hyp_len = ... ref_len = ...)"
  std::string to_string() const;
};

/// Corpus BLEU of hypotheses against one or more reference streams (each as long as
/// hypotheses).
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references);

/// Corpus chrF (character n-grams up to 6, beta 2, whitespace removed), 0 to 100; per sentence
/// the reference with the best chrF counts, as sacreBLEU picks it.
double corpus_chrf(const std::vector<std::string>& hypotheses,
                   const std::vector<std::vector<std::string>>& references);

}  // namespace moxing::train
