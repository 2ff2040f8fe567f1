// The small synthetic check of the translate task (label "slow", release build only):
// scripts/make-numbers-dataset writes numbers below 10^4 in Chinese numerals and English words,
// examples/seq2seq-numbers.toml trains a smaller Marian (width 64, 2+2 layers) on them for 600
// steps (about 20 s on one thread), and the test numbers, none of them seen in training, must
// come out exactly right at least 95% of the time with 4 beams (a run measured 0.995).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"

namespace fs = std::filesystem;
using moxing::testing::run_cli;

TEST(Seq2SeqNumbers, SmallNumbersTranslateExactly) {
  const fs::path dir = fs::temp_directory_path() / ("moxing_numbers_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string source = MOXING_SOURCE_DIR;
  const std::string make = "python3 " + source +
                           "/scripts/make-numbers-dataset --max 9999 --train 4000 --eval 200 "
                           "--seed 1 " +
                           (dir / "data").string() + " >/dev/null";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  const std::string sets =
      " --set data.path=" + (dir / "data").string() +
      " --set model.d_model=64 --set model.encoder_layers=2 --set model.decoder_layers=2"
      " --set model.encoder_ffn_dim=128 --set model.decoder_ffn_dim=128"
      " --set model.max_position_embeddings=32 --set data.vocab_size=400"
      " --set data.val_decode_sentences=100 --set optim.lr=3e-3 --set schedule.warmup_steps=50"
      " --set train.steps=600 --set train.eval_every=600 --set train.checkpoint_every=600";
  auto r = run_cli("train " + source + "/examples/seq2seq-numbers.toml --out " +
                   (dir / "run").string() + sets + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find("{\n")));
  const double exact = j.at("test").at("exact_match").get<double>();
  EXPECT_GE(exact, 0.95) << r.out;
  EXPECT_GT(j.at("test").at("bleu").get<double>(), 95.0);
  // the run translates new input too
  auto t = run_cli("translate " + (dir / "run").string() + " --text 三千零二十一 --beam 4");
  ASSERT_EQ(t.code, 0) << t.out;
  EXPECT_NE(t.out.find("thousand"), std::string::npos) << t.out;
  fs::remove_all(dir);
}
