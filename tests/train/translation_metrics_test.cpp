// BLEU and chrF against sacreBLEU (tests/fixtures/translation_metrics.py wrote the fixture):
// the 13a tokens of lines with symbols, numbers, entities and other scripts, and corpus
// scores of identical, perturbed, short, empty and unmatched hypotheses, with one and two
// reference streams.
#include "moxing/train/translation_metrics.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "expect_error.h"

namespace moxing::train {
namespace {

nlohmann::json fixture() {
  std::ifstream in(std::string(MOXING_FIXTURE_DIR) + "/translation_metrics.json");
  return nlohmann::json::parse(in);
}

TEST(TranslationMetrics, Tokenize13aMatchesSacreBleu) {
  const nlohmann::json f = fixture();
  ASSERT_GE(f.at("tokenized").size(), 10u);
  for (const auto& t : f.at("tokenized")) {
    EXPECT_EQ(tokenize_13a(t.at("line").get<std::string>()),
              t.at("tokens").get<std::vector<std::string>>())
        << t.at("line");
  }
}

TEST(TranslationMetrics, CorpusBleuAndChrfMatchSacreBleu) {
  const nlohmann::json f = fixture();
  ASSERT_GE(f.at("cases").size(), 8u);
  for (const auto& c : f.at("cases")) {
    const auto hyps = c.at("hyps").get<std::vector<std::string>>();
    const auto refs = c.at("refs").get<std::vector<std::vector<std::string>>>();
    const std::string name = c.at("name");
    BleuScore b = corpus_bleu(hyps, refs);
    EXPECT_NEAR(b.score, c.at("bleu").get<double>(), 1e-9) << name;
    EXPECT_NEAR(b.brevity_penalty, c.at("bp").get<double>(), 1e-12) << name;
    EXPECT_EQ(b.sys_len, c.at("sys_len").get<int64_t>()) << name;
    EXPECT_EQ(b.ref_len, c.at("ref_len").get<int64_t>()) << name;
    for (size_t n = 0; n < 4; ++n) {
      EXPECT_NEAR(b.precisions[n], c.at("precisions")[n].get<double>(), 1e-9) << name << n;
    }
    EXPECT_NEAR(corpus_chrf(hyps, refs), c.at("chrf").get<double>(), 1e-9) << name;
  }
}

TEST(TranslationMetrics, BadInputIsAnError) {
  using moxing::testing::expect_error;
  expect_error(
      [] {
        corpus_bleu({"a", "b"}, {{"a"}});
      },
      "reference stream 1 has 1 sentences for 2 hypotheses");
  expect_error([] { corpus_chrf({"a"}, {}); }, "no reference stream");
  expect_error(
      [] {
        corpus_bleu({"ok", "bad \xff"}, {{"ok", "ok"}});
      },
      "the hypothesis of sentence 2 is not valid UTF-8");
  EXPECT_EQ(corpus_bleu({"x y z"}, {{"x y z"}}).to_string(),
            "BLEU = 0.00 100.0/100.0/100.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 3 ref_len = 3)");
}

}  // namespace
}  // namespace moxing::train
