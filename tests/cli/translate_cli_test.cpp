// `moxing train` of the translate task on a tiny pair table, then `moxing eval` and
// `moxing translate` (greedy and beams, with and without the cache, JSON) on its run folder, and
// the errors of bad input: lines too long without truncation, a max_length beyond the model's
// positions, a key of another data source, more beams than the vocabulary, an empty text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"

namespace fs = std::filesystem;
using moxing::testing::run_cli;

namespace {

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

const char* kWords[] = {"one", "two", "three", "four", "five", "six"};
const char* kWorte[] = {"eins", "zwei", "drei", "vier", "fünf", "sechs"};

// Trains once for all tests: 1+1 layers of width 16 on word-for-word pairs.
class TranslateCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("moxing_translate_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    for (const char* split : {"train", "validation", "test"}) {
      std::ofstream f(dir_ / "data" / (std::string(split) + ".csv"));
      f << "de,en\n";
      const int n = std::string(split) == "train" ? 120 : 12;
      for (int i = 0; i < n; ++i) {
        const int a = i % 6, b = (i / 6 + i) % 6;
        f << kWorte[a] << " " << kWorte[b] << "," << kWords[a] << " " << kWords[b] << "\n";
      }
    }
    std::ofstream cfg(dir_ / "t.toml");
    cfg << "[model]\nname = \"marian\"\nd_model = 16\nencoder_layers = 1\ndecoder_layers = 1\n"
           "encoder_attention_heads = 2\ndecoder_attention_heads = 2\nencoder_ffn_dim = 32\n"
           "decoder_ffn_dim = 32\nmax_position_embeddings = 16\ndropout = 0.0\n"
           "[data]\nname = \"csv\"\npath = \""
        << (dir_ / "data").string()
        << "\"\nsource_column = \"de\"\ntarget_column = \"en\"\nvocab_size = 300\n"
           "batch_size = 16\nval_decode_sentences = 6\nnum_beams = 2\n"
           "[optim]\nname = \"adamw\"\nlr = 1e-2\n[train]\nsteps = 40\neval_every = 20\n"
           "best_metric = \"val/bleu\"\n";
    cfg.close();
    train_ = run_cli("train " + config() + " --out " + run() + " --json");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string config() { return (dir_ / "t.toml").string(); }
  static std::string run() { return (dir_ / "run").string(); }
  static inline fs::path dir_;
  static inline moxing::testing::CliResult train_;
};

TEST_F(TranslateCli, TrainReportsTranslationScoresAndWritesAMarianFolder) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto j = nlohmann::json::parse(train_.out.substr(train_.out.find("{\n")));
  EXPECT_EQ(j.at("steps").get<int>(), 40);
  for (const char* k : {"loss", "bleu", "chrf", "exact_match"}) {
    EXPECT_TRUE(j.at("test").contains(k)) << k;
    EXPECT_TRUE(j.at("val").contains(k)) << k;
  }
  EXPECT_LT(j.at("val").at("loss").get<double>(), std::log(300.0));  // below a uniform guess
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
    EXPECT_TRUE(fs::exists(dir_ / "run" / "final" / f)) << f;
  std::ifstream c(dir_ / "run" / "final" / "config.json");
  auto config = nlohmann::json::parse(c);
  EXPECT_EQ(config.at("model_type"), "marian");
  EXPECT_EQ(config.at("eos_token_id"), 0);  // </s>, first of the trained BPE's specials
  EXPECT_EQ(config.at("decoder_start_token_id"), config.at("pad_token_id"));
  std::ifstream t(dir_ / "run" / "test_metrics.json");
  auto report = nlohmann::json::parse(t);
  EXPECT_EQ(report.at("samples").size(), 10u);
  EXPECT_EQ(report.at("num_beams"), 2);
}

TEST_F(TranslateCli, EvalScoresTheTestSplit) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto r = run_cli("eval " + run() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find("{\n")));
  EXPECT_EQ(j.at("split"), "test");
  EXPECT_GE(j.at("bleu").get<double>(), 0.0);
  EXPECT_LE(j.at("exact_match").get<double>(), 1.0);
  auto text = run_cli("eval " + run());
  ASSERT_EQ(text.code, 0) << text.out;
  EXPECT_TRUE(has(text.out, "samples:")) << text.out;
}

TEST_F(TranslateCli, TranslateGivesTheSameTokensWithAndWithoutTheCache) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  const std::string texts = " --text \"eins zwei\" --text \"drei vier fünf\" --text sechs";
  for (const char* beam : {"1", "3"}) {
    auto a = run_cli("translate " + run() + texts + " --beam " + beam + " --json");
    auto b = run_cli("translate " + run() + texts + " --beam " + beam + " --json --no-cache");
    ASSERT_EQ(a.code, 0) << a.out;
    ASSERT_EQ(b.code, 0) << b.out;
    auto ja = nlohmann::json::parse(a.out.substr(a.out.find('[')));
    auto jb = nlohmann::json::parse(b.out.substr(b.out.find('[')));
    ASSERT_EQ(ja.size(), 3u);
    EXPECT_EQ(ja, jb) << "beam " << beam;
    EXPECT_EQ(ja[1].at("text"), "drei vier fünf");
  }
}

// separate source and target BPEs (the model gets separate tables) and learned positions
TEST_F(TranslateCli, SeparateVocabulariesAndLearnedPositionsTrainAndTranslate) {
  const std::string out = (dir_ / "separate").string();
  auto r = run_cli("train " + config() + " --out " + out +
                   " --set data.target_tokenizer=bpe --set data.target_vocab_size=280"
                   " --set model.position_embeddings=learned --set train.steps=20 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "for the sources and a bpe one of 280 for the targets")) << r.out;
  EXPECT_TRUE(has(r.out, "learned positions")) << r.out;
  const fs::path final_dir = fs::path(out) / "final";
  EXPECT_TRUE(fs::exists(final_dir / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(final_dir / "target_tokenizer" / "tokenizer.json"));
  std::ifstream c(final_dir / "config.json");
  auto saved = nlohmann::json::parse(c);
  EXPECT_EQ(saved.at("share_encoder_decoder_embeddings"), false);
  // the source BPE runs out of pairs to merge on the small table before 300 tokens
  EXPECT_GT(saved.at("vocab_size").get<int>(), 259);
  EXPECT_LE(saved.at("vocab_size").get<int>(), 300);
  EXPECT_EQ(saved.at("decoder_vocab_size"), 280);
  EXPECT_EQ(saved.at("position_embeddings"), "learned");
  auto t = run_cli("translate " + out + " --text \"eins zwei\" --json");
  ASSERT_EQ(t.code, 0) << t.out;
  auto e = run_cli("eval " + out + " --json");
  ASSERT_EQ(e.code, 0) << e.out;
  auto bad = run_cli("train " + config() + " --out " + (dir_ / "bad_target").string() +
                     " --set data.target_tokenizer=bpe --set data.target_vocab_size=100");
  EXPECT_NE(bad.code, 0);
  EXPECT_TRUE(has(bad.out, "target_vocab_size > 259")) << bad.out;
}

TEST_F(TranslateCli, BadInputIsAClearError) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto beams = run_cli("translate " + run() + " --text eins --beam 100000");
  EXPECT_NE(beams.code, 0);
  EXPECT_TRUE(has(beams.out, "beams are more than the target vocabulary")) << beams.out;
  auto empty = run_cli("translate " + run() + " --text \"\"");
  EXPECT_NE(empty.code, 0);
  EXPECT_TRUE(has(empty.out, "empty")) << empty.out;
  auto cut = run_cli("train " + config() + " --out " + (dir_ / "cut").string() +
                     " --set data.max_length=2 --set data.truncate=false");
  EXPECT_NE(cut.code, 0);
  EXPECT_TRUE(has(cut.out, "train.csv:2: the source has more than max_length = 2")) << cut.out;
  auto window = run_cli("train " + config() + " --out " + (dir_ / "window").string() +
                        " --set data.max_length=40");
  EXPECT_NE(window.code, 0);
  EXPECT_TRUE(has(window.out, "longer than the model's max_position_embeddings (16)"))
      << window.out;
  auto key = run_cli("train " + config() + " --out " + (dir_ / "key").string() +
                     " --set data.text_column=x");
  EXPECT_NE(key.code, 0);
  EXPECT_TRUE(has(key.out, "text_column")) << key.out;
  EXPECT_TRUE(has(key.out, "source_column")) << key.out;
}

}  // namespace
