// Sentence embeddings against sentence-transformers: sentence_tiny/ and its reference vectors
// come from tests/fixtures/models/make_sentence_fixture.py (mean pooling + Normalize, a window
// of 16 tokens that the long text overruns; cls pooling without normalization).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "expect_error.h"
#include "model_checks.h"
#include "moxing/io/file.h"
#include "moxing/models/sentence.h"

namespace moxing::models {
namespace {

namespace fs = std::filesystem;
using moxing::testing::expect_error;
using moxing::testing::max_abs_diff;
using moxing::testing::TempDir;

const std::string kFixtures = std::string(MOXING_FIXTURE_DIR) + "/models";
const std::string kDir = kFixtures + "/sentence_tiny";

nlohmann::json reference() {
  return nlohmann::json::parse(read_text_file(kFixtures + "/sentence_tiny_reference.json"));
}

Tensor vectors(const nlohmann::json& rows) {
  std::vector<float> v;
  for (const auto& row : rows)
    for (const auto& x : row) v.push_back(x.get<float>());
  return from_vector(v, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
}

TEST(SentenceEncoder, MatchesSentenceTransformers) {
  nlohmann::json ref = reference();
  std::vector<std::string> texts = ref["texts"].get<std::vector<std::string>>();
  SentenceEncoder s = SentenceEncoder::load(kDir);
  EXPECT_EQ(s.pooling, "mean");
  EXPECT_TRUE(s.normalize);
  EXPECT_EQ(s.max_seq_length, 16);  // from the tokenizer's model_max_length
  s.batch_size = 2;                 // batches of mixed lengths, padded
  Tensor v = s.embed(texts);
  EXPECT_LT(max_abs_diff(v, vectors(ref["mean_normalized"])), 1e-5);
  // one at a time gives the same vectors: padding changes nothing
  Tensor one = s.embed({texts[1]});
  EXPECT_LT(max_abs_diff(one, v.narrow(0, 1, 1)), 1e-5);

  SentenceEncoder c = SentenceEncoder::load(kDir, {.pooling = "cls", .normalize = false});
  EXPECT_LT(max_abs_diff(c.embed(texts), vectors(ref["cls"])), 1e-5);
}

TEST(SentenceEncoder, ErrorsNameTheFileAndTheFix) {
  SentenceEncoder s = SentenceEncoder::load(kDir);
  expect_error([&] { s.embed({"fine", ""}); }, "embed: text 1 is empty");
  expect_error([&] { SentenceEncoder::load(kDir, {.pooling = "weighted"}); },
               "pooling 'weighted' is not supported");

  TempDir tmp("sentence_errors");
  for (const auto& e : fs::directory_iterator(kDir)) {
    fs::copy(e.path(), fs::path(tmp.path) / e.path().filename(), fs::copy_options::recursive);
  }
  std::ofstream(tmp.path + "/modules.json")
      << R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Dense"}])";
  expect_error([&] { SentenceEncoder::load(tmp.path); },
               "module type 'sentence_transformers.models.Dense' is not supported");
  std::ofstream(tmp.path + "/modules.json") << "[";
  expect_error([&] { SentenceEncoder::load(tmp.path); }, "modules.json: invalid JSON");
  fs::remove(tmp.path + "/modules.json");
  fs::remove(tmp.path + "/tokenizer.json");
  fs::remove(tmp.path + "/vocab.txt");
  expect_error([&] { SentenceEncoder::load(tmp.path); }, tmp.path);
}

}  // namespace
}  // namespace moxing::models
