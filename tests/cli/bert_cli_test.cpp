// `moxing fill-mask` and `moxing classify` on the BERT pipeline fixtures
// (tests/fixtures/models/bert_pipeline_{mlm,cls}): the answers of transformers' fill-mask and
// text-classification pipelines in bert_pipeline_reference.json (make_bert_pipeline_fixture.py),
// the --json shapes and the text output, and bad input as clear errors with a nonzero exit.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "moxing/io/file.h"

namespace moxing {
namespace {

using moxing::testing::run_cli;

const std::string kFixtures = std::string(MOXING_SOURCE_DIR) + "/tests/fixtures/models";
const std::string kMlm = kFixtures + "/bert_pipeline_mlm";
const std::string kCls = kFixtures + "/bert_pipeline_cls";

nlohmann::json reference() {
  return nlohmann::json::parse(read_text_file(kFixtures + "/bert_pipeline_reference.json"));
}

// The JSON array a --json command prints (notes on stderr may come before it).
nlohmann::json json_of(const std::string& out) {
  size_t start = out.rfind("[\n", 0) == 0 ? 0 : out.find("\n[\n");
  if (start == std::string::npos) {
    ADD_FAILURE() << "no JSON array: " << out;
    return nlohmann::json::array();
  }
  if (start > 0) ++start;
  try {
    return nlohmann::json::parse(out.substr(start));
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << out;
    return nlohmann::json::array();
  }
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

TEST(FillMaskCli, JsonMatchesTransformersPipeline) {
  const nlohmann::json ref = reference()["fill_mask"];
  std::string args = "fill-mask " + kMlm + " --json";
  for (const auto& r : ref) args += " --text " + quoted(r["text"].get<std::string>());
  auto r = run_cli(args);
  ASSERT_EQ(r.code, 0) << r.out;
  nlohmann::json out = json_of(r.out);
  ASSERT_TRUE(out.is_array());
  ASSERT_EQ(out.size(), ref.size()) << r.out;
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(out[i]["text"], ref[i]["text"]);
    // one list per [MASK], in text order, of the top 5 (transformers' default)
    ASSERT_EQ(out[i]["masks"].size(), ref[i]["masks"].size()) << i;
    for (size_t m = 0; m < ref[i]["masks"].size(); ++m) {
      const auto& want = ref[i]["masks"][m];
      const auto& got = out[i]["masks"][m];
      ASSERT_EQ(got.size(), want.size()) << i << "/" << m;
      for (size_t k = 0; k < want.size(); ++k) {
        SCOPED_TRACE(::testing::Message() << "text " << i << ", mask " << m << ", rank " << k);
        EXPECT_EQ(got[k].size(), 4u) << got[k].dump();
        EXPECT_EQ(got[k]["token"], want[k]["token"]);
        EXPECT_EQ(got[k]["token_str"], want[k]["token_str"]);
        EXPECT_EQ(got[k]["sequence"], want[k]["sequence"]);
        EXPECT_NEAR(got[k]["score"].get<double>(), want[k]["score"].get<double>(), 1e-4);
      }
    }
  }
}

TEST(FillMaskCli, TextOutputTopAndFile) {
  const nlohmann::json ref = reference()["fill_mask"];
  const std::string text = ref[0]["text"];
  auto r = run_cli("fill-mask " + kMlm + " --top 2 --text " + quoted(text));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(text + "\n"), std::string::npos) << r.out;
  // each line: the token, its score with 4 decimals, the filled-in text
  for (size_t k = 0; k < 2; ++k) {
    const auto& w = ref[0]["masks"][0][k];
    char score[16];
    std::snprintf(score, sizeof score, "%.4f", w["score"].get<double>());
    const std::string line = w["token_str"].get<std::string>();
    size_t at = r.out.find("  " + line + " ");
    ASSERT_NE(at, std::string::npos) << r.out;
    size_t eol = r.out.find('\n', at);
    std::string row = r.out.substr(at, eol - at);
    EXPECT_NE(row.find(score), std::string::npos) << row;
    EXPECT_NE(row.find(w["sequence"].get<std::string>()), std::string::npos) << row;
  }
  EXPECT_EQ(r.out.find(ref[0]["masks"][0][2]["sequence"].get<std::string>()), std::string::npos)
      << "--top 2 shows a third answer: " << r.out;
  // several masks: a numbered list per [MASK]
  const std::string file = ::testing::TempDir() + "/moxing_fill_mask_texts.txt";
  std::ofstream(file) << ref[1]["text"].get<std::string>() << "\n\n";
  r = run_cli("fill-mask " + kMlm + " --top 1 --file " + file);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("[MASK] 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[MASK] 2"), std::string::npos) << r.out;
  // --json with --top 1 keeps the list shape
  r = run_cli("fill-mask " + kMlm + " --json --top 1 --file " + file);
  ASSERT_EQ(r.code, 0) << r.out;
  nlohmann::json out = json_of(r.out);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0]["masks"].size(), 2u);
  EXPECT_EQ(out[0]["masks"][1].size(), 1u);
  EXPECT_EQ(out[0]["masks"][1][0]["token"], ref[1]["masks"][1][0]["token"]);
}

TEST(FillMaskCli, BadInputGetsClearErrors) {
  auto r = run_cli("fill-mask " + kMlm + " --text 'no mask here'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("the text has no [MASK] token: no mask here"), std::string::npos) << r.out;
  // a plain BertModel folder (the sentence-transformers fixture) and a classifier
  for (const std::string& dir : {kFixtures + "/sentence_tiny", kCls}) {
    r = run_cli("fill-mask " + dir + " --text 'the [MASK] sat.'");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("without a masked-LM head; fill-mask needs one"), std::string::npos)
        << r.out;
  }
  r = run_cli("fill-mask " + kMlm + " --text ''");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("fill-mask: --text 1 is empty"), std::string::npos) << r.out;
  r = run_cli("fill-mask " + kMlm);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("fill-mask: no text"), std::string::npos) << r.out;
  r = run_cli("fill-mask " + kFixtures + "/no_such_model --text '[MASK]'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no_such_model does not exist"), std::string::npos) << r.out;
}

TEST(ClassifyCli, JsonMatchesTransformersPipeline) {
  const nlohmann::json ref = reference()["classify"];
  std::string args = "classify " + kCls + " --json";
  for (const auto& r : ref) args += " --text " + quoted(r["text"].get<std::string>());
  auto r = run_cli(args);
  ASSERT_EQ(r.code, 0) << r.out;
  nlohmann::json out = json_of(r.out);
  ASSERT_EQ(out.size(), ref.size()) << r.out;
  const std::vector<std::string> ids = {"negative", "neutral", "positive"};
  for (size_t i = 0; i < ref.size(); ++i) {
    SCOPED_TRACE(ref[i]["text"].get<std::string>());
    EXPECT_EQ(out[i]["text"], ref[i]["text"]);
    const auto& want = ref[i]["scores"];
    const auto& top = out[i]["top"];
    ASSERT_EQ(top.size(), 3u);  // default --top 3: every label here
    double best = -1;
    std::string best_label;
    for (const auto& [label, score] : want.items()) {
      if (score.get<double>() > best) best = score.get<double>(), best_label = label;
    }
    EXPECT_EQ(out[i]["label"], best_label);
    double previous = 2;
    for (const auto& t : top) {
      const std::string label = t["label"];
      ASSERT_TRUE(want.contains(label)) << label;
      EXPECT_NEAR(t["score"].get<double>(), want[label].get<double>(), 1e-4) << label;
      EXPECT_EQ(ids[t["id"].get<size_t>()], label);
      EXPECT_LE(t["score"].get<double>(), previous) << "not sorted";
      previous = t["score"].get<double>();
    }
  }
}

TEST(ClassifyCli, TextOutputAndTop) {
  const nlohmann::json ref = reference()["classify"];
  auto r =
      run_cli("classify " + kCls + " --top 1 --text " + quoted(ref[0]["text"].get<std::string>()));
  ASSERT_EQ(r.code, 0) << r.out;
  char line[64];
  std::snprintf(line, sizeof line, "  %-16s %.4f", "negative",
                ref[0]["scores"]["negative"].get<double>());
  EXPECT_NE(r.out.find(line), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("positive"), std::string::npos) << "--top 1 shows more: " << r.out;
  r = run_cli("classify " + kCls + " --json --top 1 --text " +
              quoted(ref[1]["text"].get<std::string>()));
  ASSERT_EQ(r.code, 0) << r.out;
  nlohmann::json out = json_of(r.out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["top"].size(), 1u);
  EXPECT_EQ(out[0]["label"], "positive");
}

TEST(ClassifyCli, BadInputGetsClearErrors) {
  auto r = run_cli("classify " + kCls + " --text ' '");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("classify: --text 1 is empty"), std::string::npos) << r.out;
  r = run_cli("classify " + kMlm + " --text 'fine'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("is not a sequence classifier"), std::string::npos) << r.out;
  r = run_cli("classify " + kFixtures + "/no_such_model --text fine");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no_such_model does not exist"), std::string::npos) << r.out;
  const std::string bad = ::testing::TempDir() + "/moxing_classify_bad.txt";
  std::ofstream(bad) << "fine\nbad \xff\n";
  r = run_cli("classify " + kCls + " --file " + bad);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("line 2: invalid UTF-8"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moxing
