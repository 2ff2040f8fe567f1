// `moxing embed` on the sentence-transformers fixture (tests/fixtures/models/sentence_tiny):
// the vectors of make_sentence_fixture.py, JSON output, overrides and errors.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "moxing/io/file.h"

namespace moxing {
namespace {

using moxing::testing::run_cli;

const std::string kFixtures = std::string(MOXING_SOURCE_DIR) + "/tests/fixtures/models";
const std::string kDir = kFixtures + "/sentence_tiny";

TEST(EmbedCli, JsonVectorsMatchSentenceTransformers) {
  nlohmann::json ref =
      nlohmann::json::parse(read_text_file(kFixtures + "/sentence_tiny_reference.json"));
  auto r = run_cli("embed " + kDir + " --json --text 'A quiet film about memory.' --text ok");
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<nlohmann::json> rows;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line[0] == '{') rows.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[1]["text"], "ok");
  for (size_t i = 0; i < 2; ++i) {
    const auto& expected = ref["mean_normalized"][i == 0 ? 0 : 4];
    ASSERT_EQ(rows[i]["embedding"].size(), expected.size());
    for (size_t j = 0; j < expected.size(); ++j) {
      EXPECT_NEAR(rows[i]["embedding"][j].get<double>(), expected[j].get<double>(), 1e-5);
    }
  }
  EXPECT_NE(r.out.find("2 texts, 32 dimensions, mean pooling, normalized, window 16 tokens"),
            std::string::npos)
      << r.out;
  r = run_cli("embed " + kDir + " --pooling cls --no-normalize --text ok");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("cls pooling, window 16"), std::string::npos) << r.out;
}

TEST(EmbedCli, BadInputGetsClearErrors) {
  auto r = run_cli("embed " + kDir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no text (give --text T or --file F"), std::string::npos) << r.out;
  const std::string bad = ::testing::TempDir() + "/moxing_embed_bad.txt";
  std::ofstream(bad) << "fine\nbad \xff\n";
  r = run_cli("embed " + kDir + " --file " + bad);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("line 2: invalid UTF-8 at byte 4"), std::string::npos) << r.out;
  r = run_cli("embed " + kFixtures + "/gpt2_tiny --text hi");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is not a text encoder"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moxing
