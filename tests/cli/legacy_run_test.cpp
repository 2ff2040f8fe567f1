// Run folders written before model families (tests/fixtures/legacy_runs, made by
// make_legacy_runs.sh with that version) still resume, evaluate and generate.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli_run.h"
#include "op_harness.h"

namespace {

namespace fs = std::filesystem;
using moxing::testing::contains;
using moxing::testing::run_cli;

const fs::path kFixtures = fs::path(MOXING_FIXTURE_DIR) / "legacy_runs";

// A copy of the fixture run, in a folder where its relative corpus path resolves.
fs::path copy_run(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("moxing_legacy_" + std::to_string(::getpid()));
  fs::remove_all(d / name);
  fs::create_directories(d);
  fs::copy(kFixtures / name, d / name, fs::copy_options::recursive);
  fs::copy_file(kFixtures / "corpus.txt", d / "corpus.txt", fs::copy_options::overwrite_existing);
  return d;
}

TEST(LegacyRun, LanguageModelResumesEvaluatesAndGenerates) {
  fs::path d = copy_run("lm-run");
  std::string run = (d / "lm-run").string();
  auto r = run_cli("train --resume " + run + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "resuming from " + run + "/checkpoints/step-3 (step 3)")) << r.out;
  EXPECT_TRUE(contains(r.out, "\"steps\": 6")) << r.out;
  EXPECT_FALSE(contains(r.out, "config differs")) << r.out;
  auto e = run_cli("eval " + run + " --json");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_TRUE(contains(e.out, "\"perplexity\"")) << e.out;
  auto g =
      run_cli("generate " + run + "/checkpoints/step-3 --prompt abc --greedy --max-new-tokens 4");
  EXPECT_EQ(g.code, 0) << g.out;
}

TEST(LegacyRun, ClassifierResumesAndEvaluates) {
  fs::path d = copy_run("mlp-run");
  std::string run = (d / "mlp-run").string();
  // the old checkpoint has no config.json: eval rebuilds the model from its trainer state
  auto e = run_cli("eval " + run + "/checkpoints/step-3 --json");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_TRUE(contains(e.out, "\"accuracy\"")) << e.out;
  auto r = run_cli("train --resume " + run + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "\"steps\": 6")) << r.out;
  EXPECT_FALSE(contains(r.out, "config differs")) << r.out;
  EXPECT_TRUE(fs::exists(d / "mlp-run" / "final" / "config.json"));
}

}  // namespace
