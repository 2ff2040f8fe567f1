// `moxing train` of a tiny dcgan and a tiny cnn on a Fashion-MNIST-layout data set
// (tests/support/tiny_fashion.h), then `moxing sample`: the grid from a seed (the same seed the
// same bytes), the Inception Score and class histogram of samples and of the classifier's real
// test images, `moxing eval` of the gan run, and bad input as clear errors with a nonzero exit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"
#include "moxing/data/image.h"
#include "tiny_fashion.h"

namespace fs = std::filesystem;
using moxing::testing::run_cli;

namespace {

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json json_of(const std::string& out) {
  size_t start = out.rfind("{\n", 0) == 0 ? 0 : out.find("\n{\n");
  if (start == std::string::npos) {
    ADD_FAILURE() << "no JSON object: " << out;
    return {};
  }
  return nlohmann::json::parse(out.substr(start == 0 ? 0 : start + 1));
}

// Trains once for all tests: a dcgan (2 epochs) and a cnn classifier on the same tiny data.
class GanCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("moxing_gan_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    moxing::testing::write_tiny_fashion((dir_ / "data").string(), 80, 30);
    const std::string data = "[data]\nname = \"fashion-mnist\"\npath = \"" +
                             (dir_ / "data").string() + "\"\nval_fraction = 0.2\nbatch_size = 16\n";
    std::ofstream(dir_ / "gan.toml")
        << "[model]\nname = \"dcgan\"\nnz = 8\ngenerator_channels = [16, 8]\n"
           "discriminator_channels = [8, 16]\n"
        << data
        << "[optim]\nname = \"adam\"\nlr = 2e-4\nbeta1 = 0.5\n[train]\nepochs = 2\n"
           "best_metric = \"val/loss_generator\"\n";
    std::ofstream(dir_ / "cnn.toml") << "[model]\nname = \"cnn\"\nchannels = [4]\nhidden = [16]\n"
                                     << data << "normalize = true\n[optim]\nlr = 1e-2\n"
                                     << "[train]\nepochs = 3\n";
    gan_ = run_cli("train " + (dir_ / "gan.toml").string() + " --out " + gan() + " --json");
    cnn_ = run_cli("train " + (dir_ / "cnn.toml").string() + " --out " + cnn() + " --json");
  }
  static std::string gan() { return (dir_ / "gan").string(); }
  static std::string cnn() { return (dir_ / "cnn").string(); }
  static inline fs::path dir_;
  static inline moxing::testing::CliResult gan_, cnn_;
};

TEST_F(GanCli, TrainWritesTheGridsAndBothModels) {
  ASSERT_EQ(gan_.code, 0) << gan_.out;
  EXPECT_TRUE(has(gan_.out, "DCGAN: latent 8")) << gan_.out;
  EXPECT_TRUE(fs::exists(dir_ / "gan" / "samples" / "epoch-2.png"));
  EXPECT_TRUE(fs::exists(dir_ / "gan" / "final" / "discriminator" / "model.safetensors"));
}

TEST_F(GanCli, SampleWritesTheGridOfTheSeed) {
  ASSERT_EQ(gan_.code, 0) << gan_.out;
  const fs::path a = dir_ / "a.png", b = dir_ / "b.png", c = dir_ / "c.png";
  auto r = run_cli("sample " + gan() + " --n 12 --seed 3 --nrow 4 --out " + a.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "12 images from")) << r.out;
  // 4 a row, 3 rows of 28 pixels with 2 of padding around each
  EXPECT_EQ(moxing::data::read_image(a.string()).shape(), (moxing::Shape{92, 122, 1}));
  ASSERT_EQ(run_cli("sample " + gan() + " --n 12 --seed 3 --nrow 4 --out " + b.string()).code, 0);
  ASSERT_EQ(run_cli("sample " + gan() + " --n 12 --seed 4 --nrow 4 --out " + c.string()).code, 0);
  EXPECT_EQ(bytes_of(a), bytes_of(b));
  EXPECT_NE(bytes_of(a), bytes_of(c));
  // the generator folder alone serves as well as the run folder
  ASSERT_EQ(run_cli("sample " + gan() + "/final --n 12 --seed 3 --nrow 4 --out " + b.string()).code,
            0);
  EXPECT_EQ(bytes_of(a), bytes_of(b));
}

TEST_F(GanCli, SampleScoresWithTheClassifier) {
  ASSERT_EQ(gan_.code, 0) << gan_.out;
  ASSERT_EQ(cnn_.code, 0) << cnn_.out;
  auto r = run_cli("sample " + gan() + " --n 50 --classifier " + cnn() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  nlohmann::json j = json_of(r.out);
  for (const char* part : {"samples", "real_test"}) {
    const nlohmann::json& s = j.at(part);
    const double is = s.at("inception_score").get<double>();
    EXPECT_GE(is, 1.0 - 1e-9) << part;
    EXPECT_LE(is, 10.0 + 1e-9) << part;
    int64_t total = 0;
    for (const auto& [name, count] : s.at("histogram").items()) total += count.get<int64_t>();
    EXPECT_EQ(total, s.at("samples").get<int64_t>()) << part;
    EXPECT_EQ(s.at("histogram").size(), 10u);
    EXPECT_TRUE(s.at("histogram").contains("Ankle_boot"));
  }
  EXPECT_EQ(j["samples"]["samples"], 50);
  EXPECT_EQ(j["real_test"]["samples"], 30);
  // the test images are one band per class, which the classifier learns: a high score
  EXPECT_GT(j["real_test"]["inception_score"].get<double>(), 5.0) << r.out;
  auto text = run_cli("sample " + gan() + " --n 50 --classifier " + cnn());
  ASSERT_EQ(text.code, 0) << text.out;
  EXPECT_TRUE(has(text.out, "real test images: 30 images, Inception Score")) << text.out;
}

TEST_F(GanCli, EvalReportsTheAdversarialMetrics) {
  ASSERT_EQ(gan_.code, 0) << gan_.out;
  auto r = run_cli("eval " + gan() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  nlohmann::json j = json_of(r.out);
  EXPECT_EQ(j.at("split"), "test");
  EXPECT_GT(j.at("loss_discriminator").get<double>(), 0.0);
  EXPECT_GE(j.at("accuracy_real").get<double>(), 0.0);
}

TEST_F(GanCli, BadInputIsAClearError) {
  ASSERT_EQ(gan_.code, 0) << gan_.out;
  ASSERT_EQ(cnn_.code, 0) << cnn_.out;
  auto r = run_cli("sample " + cnn() + " --n 4 --out " + (dir_ / "x.png").string());
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "is not an image generator")) << r.out;
  r = run_cli("sample " + gan() + " --n 0 --out " + (dir_ / "x.png").string());
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "--n must be > 0")) << r.out;
  r = run_cli("sample " + gan() + " --n 4");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "nothing to do")) << r.out;
  r = run_cli("sample " + gan() + " --n 4 --classifier " + gan());
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "is not an image classifier")) << r.out;
  r = run_cli("sample " + (dir_ / "missing").string() + " --n 4 --out x.png");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.out, "does not exist")) << r.out;
}

}  // namespace
