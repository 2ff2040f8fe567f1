// Character-level tokenizer against an HF WordLevel tokenizer that splits every character
// (tests/fixtures/tokenizers/make_fixtures.py wrote it and its ids).
#include "moxing/tokenizers/char.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "moxing/core/error.h"

using namespace moxing::tokenizers;
namespace fs = std::filesystem;

namespace {

const std::string kDir = MOXING_FIXTURE_DIR "/tokenizers";

const nlohmann::json& expected() {
  static const nlohmann::json j = [] {
    std::ifstream f(kDir + "/expected.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

void expect_matches_fixture(const Tokenizer& tok) {
  for (const auto& c : expected().at("char")) {
    std::string text = c.at("text");
    auto ids = tok.encode(text);
    EXPECT_EQ(ids, c.at("ids").get<std::vector<int32_t>>()) << "text: " << text;
    EXPECT_EQ(tok.decode(ids), c.at("decoded").get<std::string>()) << "text: " << text;
  }
}

}  // namespace

TEST(CharTokenizer, HFTokenizerJsonMatches) {
  auto tok = load_tokenizer(kDir + "/char/tokenizer.json");
  EXPECT_EQ(tok->type(), "char");
  expect_matches_fixture(*tok);
}

TEST(CharTokenizer, TrainingGivesTheHFVocab) {
  auto tok = CharTokenizer::train(expected().at("corpus").get<std::vector<std::string>>(), {});
  auto hf = load_tokenizer(kDir + "/char/tokenizer.json");
  ASSERT_EQ(tok.vocab_size(), hf->vocab_size());
  for (int32_t id = 0; id < tok.vocab_size(); ++id)
    EXPECT_EQ(tok.id_to_token(id), hf->id_to_token(id));
  expect_matches_fixture(tok);
  std::string dir =
      (fs::temp_directory_path() / ("moxing_char_" + std::to_string(::getpid()))).string();
  tok.save(dir);
  auto back = load_tokenizer(dir);
  expect_matches_fixture(*back);
  fs::remove_all(dir);
}

TEST(CharTokenizer, UnknownCharactersAndSpecialTokens) {
  CharTrainOptions o;
  o.special_tokens = {"<|endoftext|>", "<unk>", "<pad>"};
  auto tok = CharTokenizer::train({"abcabca 中中"}, o);
  EXPECT_EQ(tok.vocab_size(), 3 + 5);
  EXPECT_EQ(tok.id_to_token(3), "a");  // most frequent first
  EXPECT_EQ(tok.unk_id(), 1);
  auto ids = tok.encode("a<pad>z中<|endoftext|>");
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 2, 1, *tok.token_to_id("中"), 0}));
  EXPECT_EQ(tok.decode(ids), "a<pad><unk>中<|endoftext|>");
  EXPECT_EQ(tok.decode(ids, true), "a中");
  EXPECT_EQ(tok.eos_token_id(), 0);
  EXPECT_THROW(tok.encode("bad \xFF"), moxing::Error);
  CharTrainOptions small;
  small.max_vocab = 4;
  small.special_tokens = {"<unk>"};
  auto s = CharTokenizer::train({"aaabbc"}, small);
  EXPECT_EQ(s.vocab_size(), 4);
  EXPECT_EQ(s.encode("cd"), (std::vector<int32_t>{3, 0}));
  CharTrainOptions none;
  none.special_tokens = {};
  auto n = CharTokenizer::train({"ab"}, none);
  EXPECT_THROW(n.encode("abc"), moxing::Error);
}
