// `moxing train` on a GPT config, then `moxing generate` (streaming, JSON, cache against no
// cache, stop strings, bad prompts) and `moxing perplexity` on its run folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"

namespace fs = std::filesystem;
using moxing::testing::run_cli;

namespace {

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("moxing_lm_cli_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Trains once for all tests: a 1-layer GPT on lines that repeat "abc".
class LmCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = temp_dir();
    fs::remove_all(dir_ / "run");
    std::ofstream text(dir_ / "c.txt");
    for (int i = 0; i < 80; ++i) text << (i % 2 ? "abcabcabc\n" : "xyzxyz 春风\n");
    text.close();
    std::ofstream cfg(dir_ / "lm.toml");
    cfg << "[model]\nname = \"gpt\"\nn_layer = 1\nn_head = 2\nn_embd = 16\nn_positions = 16\n"
           "dropout = 0.0\n[data]\nname = \"text\"\nformat = \"lines\"\ntokenizer = \"char\"\n"
           "val_fraction = 0.2\nbatch_size = 8\nfiles = [\""
        << (dir_ / "c.txt").string()
        << "\"]\n[optim]\nname = \"adamw\"\nlr = 1e-2\n[train]\nsteps = 60\neval_every = 30\n"
           "best_metric = \"val/loss\"\n";
    cfg.close();
    train_ = run_cli("train " + (dir_ / "lm.toml").string() + " --out " + (dir_ / "run").string() +
                     " --json");
  }
  static std::string run() { return (dir_ / "run").string(); }
  static inline fs::path dir_;
  static inline moxing::testing::CliResult train_;
};

TEST_F(LmCli, TrainReportsTheBaselineAndWritesAModelFolder) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  EXPECT_TRUE(has(train_.out, "unigram entropy")) << train_.out;
  auto j = nlohmann::json::parse(train_.out.substr(train_.out.find("{\n")));
  EXPECT_EQ(j.at("steps").get<int>(), 60);
  EXPECT_LT(j.at("val_loss").get<double>(), j.at("baseline_loss").get<double>());
  EXPECT_GT(j.at("val_perplexity").get<double>(), 1.0);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) {
    EXPECT_TRUE(fs::exists(dir_ / "run" / "final" / f)) << f;
  }
}

TEST_F(LmCli, GreedyGenerationIsTheSameWithAndWithoutTheCache) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto a = run_cli("generate " + run() + " --prompt abcab --greedy --max-new-tokens 12 --json");
  auto b = run_cli("generate " + run() +
                   " --prompt abcab --greedy --max-new-tokens 12 --no-cache --json");
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja.at("ids"), jb.at("ids"));
  EXPECT_EQ(ja.at("text"), jb.at("text"));
  EXPECT_EQ(ja.at("text").get<std::string>().rfind("cabc", 0), 0u) << a.out;
  // streamed: the prompt, then the text, on stdout
  auto s = run_cli("generate " + run() + " --prompt abcab --greedy --max-new-tokens 12");
  ASSERT_EQ(s.code, 0) << s.out;
  EXPECT_EQ(s.out.rfind("abcab" + ja.at("text").get<std::string>(), 0), 0u) << s.out;
}

TEST_F(LmCli, StopStringEndsTheTextBeforeIt) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto r = run_cli("generate " + run() +
                   " --prompt abcab --greedy --max-new-tokens 12 --stop ca --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("stop_reason"), "stop");
  EXPECT_FALSE(has(j.at("text").get<std::string>(), "ca")) << r.out;
}

TEST_F(LmCli, BadPromptsAndFoldersAreClearErrors) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto r = run_cli("generate " + run() + " --prompt \"$(printf 'ab\\377c')\"");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "invalid UTF-8 at byte 2")) << r.out;
  r = run_cli("generate " + run() +
              " --prompt \"$(printf 'ab\\377c')\" --replace-invalid --greedy "
              "--max-new-tokens 2 --json");
  EXPECT_EQ(r.code, 0) << r.out;
  std::string long_prompt(40, 'a');
  r = run_cli("generate " + run() + " --prompt " + long_prompt);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "at most 16")) << r.out;
  r = run_cli("generate " + (dir_ / "nowhere").string());
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "does not exist")) << r.out;
  fs::create_directories(dir_ / "broken");
  fs::copy_file(dir_ / "run" / "final" / "tokenizer.json", dir_ / "broken" / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  std::ofstream(dir_ / "broken" / "config.json") << "{\"model_type\": \"mamba\"}";
  r = run_cli("generate " + (dir_ / "broken").string());
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "mamba")) << r.out;
}

TEST_F(LmCli, PerplexityPrintsTokensLossAndPerplexity) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  std::ofstream(dir_ / "eval.txt") << "abcabcabc\nabcabcabc\n";
  auto r = run_cli("perplexity " + run() + " " + (dir_ / "eval.txt").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j.at("tokens").get<int>(), 10);
  EXPECT_NEAR(j.at("perplexity").get<double>(), std::exp(j.at("loss").get<double>()), 1e-9);
  auto t = run_cli("perplexity " + run() + " " + (dir_ / "eval.txt").string());
  EXPECT_TRUE(has(t.out, "perplexity")) << t.out;
}

}  // namespace

namespace {

TEST_F(LmCli, EvalScoresTheValidationSplitAsTrainingDid) {
  ASSERT_EQ(train_.code, 0) << train_.out;
  auto trained = nlohmann::json::parse(train_.out.substr(train_.out.find("{\n")));
  auto r = run_cli("eval " + run() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j.at("loss").get<double>(), trained.at("val_loss").get<double>(), 1e-6);
  EXPECT_NEAR(j.at("baseline_loss").get<double>(), trained.at("baseline_loss").get<double>(),
              1e-12);
  auto t = run_cli("eval " + run());
  EXPECT_TRUE(has(t.out, "perplexity")) << t.out;
}

}  // namespace
