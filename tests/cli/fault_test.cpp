// Resume that survives SIGKILL: a small run of each task, with dropout on, is killed again and
// again at seeded points (MOXING_FAULT_KILL_AT: after an optimizer step, inside a checkpoint
// write, between swapping a checkpoint in and removing the old one), resumed each time, and
// must end with the weights of an uninterrupted run, byte for byte.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "cli_run.h"
#include "moxing/io/checkpoint.h"
#include "moxing/train/checkpoint.h"

namespace {

namespace fs = std::filesystem;
using moxing::testing::run_cli;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("moxing_fault_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string corpus() {
  std::string out;
  const char* lines[] = {"abcabcabc", "xyzxyz", "hello world", "春眠不觉晓", "处处闻啼鸟"};
  for (int i = 0; i < 60; ++i) out += std::string(lines[i % 5]) + "\n%\n";
  return out;
}

// Runs the config uninterrupted into dir/full, then with kills into dir/killed until it
// finishes; returns the number of kills.
int run_with_kills(const fs::path& dir, const fs::path& config, uint32_t seed, int kills_wanted) {
  auto full = run_cli("train " + config.string() + " --out " + (dir / "full").string());
  EXPECT_EQ(full.code, 0) << full.out;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> point(1, 10);
  int kills = 0;
  const std::string killed = (dir / "killed").string();
  for (int attempt = 0; attempt < 60; ++attempt) {
    bool resume = moxing::train::latest_checkpoint(killed).has_value();
    std::string args =
        resume ? "train --resume " + killed : "train " + config.string() + " --out " + killed;
    if (kills < kills_wanted) {
      setenv("MOXING_FAULT_KILL_AT", std::to_string(point(rng)).c_str(), 1);
    }
    auto r = run_cli(args);
    unsetenv("MOXING_FAULT_KILL_AT");
    if (r.code == 0) break;
    EXPECT_TRUE(r.code == -1 || r.code == 137) << "attempt " << attempt << ":\n" << r.out;
    if (!(r.code == -1 || r.code == 137)) break;
    ++kills;
  }
  EXPECT_EQ(moxing::read_text_file((dir / "full" / "final" / "model.safetensors").string()),
            moxing::read_text_file((dir / "killed" / "final" / "model.safetensors").string()));
  return kills;
}

TEST(Fault, LanguageModelResumesExactlyAfterSigkills) {
  fs::path d = temp_dir("lm");
  std::ofstream(d / "c.txt") << corpus();
  std::ofstream(d / "lm.toml")
      << "[model]\nname = \"gpt\"\nn_layer = 1\nn_head = 2\nn_embd = 16\n"
         "n_positions = 16\ndropout = 0.1\n"
         "[data]\nname = \"text\"\nfiles = [\""
      << (d / "c.txt").string()
      << "\"]\nformat = \"fortune\"\ntokenizer = \"char\"\n"
         "val_fraction = 0.2\nbatch_size = 8\n"
         "[optim]\nname = \"adamw\"\nlr = 1e-2\n"
         "[train]\nsteps = 60\neval_every = 10\ncheckpoint_every = 3\n"
         "keep_checkpoints = 2\nlog_every = 5\nbest_metric = \"val/loss\"\n";
  EXPECT_GE(run_with_kills(d, d / "lm.toml", 7, 12), 12);
}

TEST(Fault, ClassifierResumesExactlyAfterSigkills) {
  fs::path d = temp_dir("mlp");
  std::ofstream(d / "mlp.toml")
      << "[model]\nname = \"mlp\"\nhidden = [32]\nhidden_dropout_prob = 0.2\n"
         "[data]\nname = \"fashion-mnist\"\nval_fraction = 0.02\nbatch_size = 64\n"
         "eval_batch_size = 600\n"
         "[optim]\nname = \"adam\"\nlr = 1e-3\n"
         "[train]\nsteps = 60\neval_every = 10\ncheckpoint_every = 3\nkeep_checkpoints = 2\n"
         "log_every = 5\n";
  EXPECT_GE(run_with_kills(d, d / "mlp.toml", 11, 12), 12);
}

}  // namespace
