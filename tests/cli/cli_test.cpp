// Runs the moxing binary: --version, --help, bad arguments, and `bench --quick --json`.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "moxing/moxing.h"

#include "cli_run.h"

namespace {

using Result = moxing::testing::CliResult;

Result run(const std::string& args) { return moxing::testing::run_cli(args); }

}  // namespace

TEST(Cli, Version) {
  Result r = run("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("moxing 0."), std::string::npos) << r.out;
}

TEST(Cli, HelpListsBench) {
  Result r = run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("bench"), std::string::npos) << r.out;
}

TEST(Cli, UnknownSubcommandFails) {
  Result r = run("no-such-command");
  EXPECT_NE(r.code, 0);
}

TEST(Cli, BenchQuickJsonHasTheFields) {
  Result r = run("bench --quick --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("threads").get<int>(), 1);
  EXPECT_GT(j.at("fma_peak_gflops").get<double>(), 0.0);
  for (const char* n : {"256", "512", "1024", "2048"}) {
    EXPECT_GT(j.at("sgemm_gflops").at(n).get<double>(), 0.0) << n;
  }
  EXPECT_LT(j.at("sgemm_max_rel_error").get<double>(), 1e-4);
  EXPECT_GT(j.at("triad_gbps").get<double>(), 0.0);
  EXPECT_GT(j.at("add_gbps").get<double>(), 0.0);
  EXPECT_GT(j.at("softmax_gbps").get<double>(), 0.0);
}

TEST(Cli, InfoJsonOnAFile) {
  Result r = run("info --json " MOXING_FIXTURE_DIR "/safetensors/all_dtypes.safetensors");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("parameters").get<int64_t>(), 30);
  EXPECT_EQ(j.at("files").at(0).at("metadata").at("step").get<std::string>(), "42");
}

TEST(Cli, InfoOnAFolderCountsEveryFile) {
  Result r = run("info --json " MOXING_FIXTURE_DIR "/safetensors");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("tensors").get<int64_t>(), 21);
}

TEST(Cli, InfoTableNamesTensors) {
  Result r = run("info " MOXING_FIXTURE_DIR "/safetensors/all_dtypes.safetensors");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("F32"), std::string::npos) << r.out;
}

TEST(Cli, InfoOnAGgufFileShowsTypesAndBitsPerWeight) {
  Result r = run("info --json " MOXING_FIXTURE_DIR "/gguf/tiny.gguf");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("tensors").get<int64_t>(), 9);
  EXPECT_EQ(j.at("types").at("Q4_K").at("weights").get<int64_t>(), 1024);
  EXPECT_EQ(j.at("types").at("Q4_K").at("bytes").get<int64_t>(), 576);  // 4.5 bits per weight
  EXPECT_EQ(j.at("metadata").at("general.architecture").get<std::string>(), "llama");
  Result table = run("info " MOXING_FIXTURE_DIR "/gguf/tiny.gguf");
  ASSERT_EQ(table.code, 0) << table.out;
  EXPECT_NE(table.out.find("Q6_K"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("bits per weight"), std::string::npos) << table.out;
}

TEST(Cli, InfoOnABadFileFailsWithTheProblem) {
  std::string path = ::testing::TempDir() + "/three_bytes.safetensors";
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  fwrite("abc", 1, 3, f);
  fclose(f);
  Result r = run("info " + path);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("shorter than the 8-byte header length"), std::string::npos) << r.out;
}

TEST(Cli, InfoOnAMissingPathFails) {
  Result r = run("info /no/such/file.safetensors");
  EXPECT_NE(r.code, 0);
}

TEST(Cli, InfoConfigEstimatesTrainingMemory) {
  Result r = run("info --json --config " MOXING_SOURCE_DIR "/examples/cnn-fashion-mnist.toml");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("task").get<std::string>(), "image-classification");
  const auto weights = j.at("weight_bytes").get<int64_t>();
  EXPECT_EQ(weights, 4 * j.at("parameters").get<int64_t>());
  EXPECT_GT(j.at("activation_bytes").get<int64_t>(), 0);
  EXPECT_GE(j.at("peak_bytes").get<int64_t>(), 3 * weights);

  Result text = run("info --config " MOXING_SOURCE_DIR "/examples/gpt-poetry-zh.toml");
  ASSERT_EQ(text.code, 0) << text.out;
  for (const char* part : {"parameters", "gradients", "optimizer", "activations", "peak"}) {
    EXPECT_NE(text.out.find(part), std::string::npos) << part << "\n" << text.out;
  }
}

TEST(Cli, InfoConfigOnAMissingFileNamesIt) {
  Result r = run("info --config /no/such/config.toml");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("/no/such/config.toml"), std::string::npos) << r.out;
}

// train -> eval -> predict on Fashion-MNIST (Debian's dataset-fashion-mnist), 30 steps.
TEST(Cli, TrainEvalPredictOnFashionMnist) {
  std::string out = ::testing::TempDir() + "/cli_train_run";
  std::filesystem::remove_all(out);
  Result r = run("train " MOXING_SOURCE_DIR "/examples/mlp-fashion-mnist.toml --out " + out +
                 " --set train.steps=30 --set train.log_every=10 --set train.threads=1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto summary = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
  EXPECT_EQ(summary.at("steps").get<int64_t>(), 30);
  EXPECT_GT(summary.at("test_accuracy").get<double>(), 0.5);  // 30 steps already learn a lot
  for (const char* f : {"config.toml", "metrics.jsonl", "curves.png", "final/model.safetensors",
                        "final/trainer_state.json"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  }

  Result e = run("eval " + out + " --json");
  ASSERT_EQ(e.code, 0) << e.out;
  auto j = nlohmann::json::parse(e.out.substr(e.out.find('{')));
  for (const char* k : {"accuracy", "precision_macro", "recall_macro", "f1_macro",
                        "roc_auc_ovr_macro", "per_class", "confusion_matrix"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_EQ(j.at("per_class").size(), 10u);

  // predict on a PNG written here: every probability in [0, 1], three classes listed
  std::string png = ::testing::TempDir() + "/cli_predict.png";
  moxing::data::write_png(png, moxing::full({28, 28, 1}, 128, moxing::DType::u8));
  Result p = run("predict " + out + " " + png + " --json");
  ASSERT_EQ(p.code, 0) << p.out;
  auto preds = nlohmann::json::parse(p.out.substr(p.out.find('[')));
  ASSERT_EQ(preds.size(), 1u);
  ASSERT_EQ(preds[0].at("top").size(), 3u);
  for (const auto& c : preds[0].at("top")) {
    double prob = c.at("probability").get<double>();
    EXPECT_TRUE(prob >= 0.0 && prob <= 1.0) << prob;
  }
  Result missing = run("predict " + out + " /no/such/image.png");
  EXPECT_NE(missing.code, 0);

  Result bad = run("train " MOXING_SOURCE_DIR "/examples/mlp-fashion-mnist.toml --out " + out +
                   "-bad --set optim.no_such_key=1");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("no_such_key"), std::string::npos) << bad.out;
}

// Ctrl-C during training saves a checkpoint and exits 130; --resume continues from it.
TEST(Cli, SigintSavesACheckpoint) {
  std::string out = ::testing::TempDir() + "/cli_sigint_run";
  std::filesystem::remove_all(out);
  std::string config = MOXING_SOURCE_DIR "/examples/mlp-fashion-mnist.toml";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* devnull = std::fopen("/dev/null", "w");
    if (devnull != nullptr) {
      dup2(fileno(devnull), 1);
      dup2(fileno(devnull), 2);
    }
    execl(MOXING_CLI, MOXING_CLI, "train", config.c_str(), "--out", out.c_str(), "--set",
          "train.steps=1000000", "--set", "train.threads=1", static_cast<char*>(nullptr));
    _exit(127);
  }
  // wait until training logs its first steps (at most 60 s)
  std::string log = out + "/metrics.jsonl";
  for (int i = 0; i < 600; ++i) {
    if (std::filesystem::exists(log) && std::filesystem::file_size(log) > 0) break;
    usleep(100000);
  }
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  auto latest = moxing::train::latest_checkpoint(out);
  ASSERT_TRUE(latest.has_value());
  EXPECT_TRUE(std::filesystem::exists(*latest + "/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(*latest + "/optimizer.safetensors"));
}
