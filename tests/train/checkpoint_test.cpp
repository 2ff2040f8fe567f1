// Checkpoint folders: round trip of model, optimizer and trainer state; latest_checkpoint;
// errors for incomplete folders.
#include <gtest/gtest.h>

#include <filesystem>

#include "moxing/moxing.h"
#include "moxing/train/checkpoint.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<nn::Sequential> make_model() {
  Generator g(7);
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Linear>(3, 4, true, &g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(4, 2, true, &g));
  return m;
}

void train_steps(nn::Sequential& m, optim::Optimizer& opt, int n) {
  Tensor x = arange(0, 12, 1, DType::f32).reshape({4, 3}) / 10.0;
  Tensor y = from_vector<int64_t>({0, 1, 1, 0});
  for (int i = 0; i < n; ++i) {
    opt.zero_grad();
    cross_entropy(m.forward(x), y).backward();
    opt.step();
  }
}

std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/ckpt_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(Checkpoint, ResumeGivesTheSameParametersBitForBit) {
  auto ref = make_model();
  optim::AdamW ref_opt(ref->parameters(), {.lr = 0.01});
  train_steps(*ref, ref_opt, 8);

  auto a = make_model();
  optim::AdamW a_opt(a->parameters(), {.lr = 0.01});
  train_steps(*a, a_opt, 4);
  std::string run = fresh_dir("resume");
  train::save_checkpoint(run + "/checkpoints/step-4", *a, &a_opt, {{"step", 4}, {"epoch", 1}});

  auto b = make_model();
  optim::AdamW b_opt(b->parameters(), {.lr = 0.5});
  auto latest = train::latest_checkpoint(run);
  ASSERT_TRUE(latest.has_value());
  nlohmann::json st = train::load_checkpoint(*latest, *b, &b_opt);
  EXPECT_EQ(st.at("step").get<int>(), 4);
  train_steps(*b, b_opt, 4);
  auto pr = ref->parameters(), pb = b->parameters();
  ASSERT_EQ(pr.size(), pb.size());
  for (size_t i = 0; i < pr.size(); ++i) {
    EXPECT_EQ(pr[i].to_vector<float>(), pb[i].to_vector<float>()) << "parameter " << i;
  }
}

TEST(Checkpoint, LatestPicksTheHighestCompleteStep) {
  std::string run = fresh_dir("latest");
  auto m = make_model();
  train::save_checkpoint(run + "/checkpoints/step-9", *m, nullptr, {{"step", 9}});
  train::save_checkpoint(run + "/checkpoints/step-10", *m, nullptr, {{"step", 10}});
  fs::create_directories(run + "/checkpoints/step-11");  // incomplete: no trainer_state.json
  fs::create_directories(run + "/checkpoints/step-x");
  auto latest = train::latest_checkpoint(run);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(fs::path(*latest).filename().string(), "step-10");
  EXPECT_FALSE(train::latest_checkpoint(fresh_dir("empty")).has_value());
}

TEST(Checkpoint, IncompleteFoldersAreClearErrors) {
  std::string run = fresh_dir("incomplete");
  auto m = make_model();
  fs::create_directories(run + "/half");
  EXPECT_TRUE(contains(error_of([&] { train::load_checkpoint(run + "/half", *m, nullptr); }),
                       "trainer_state.json is missing"));
  EXPECT_TRUE(contains(error_of([&] { train::load_checkpoint(run + "/none", *m, nullptr); }),
                       "is not a folder"));
  train::save_checkpoint(run + "/noopt", *m, nullptr, {{"step", 1}});
  optim::SGD opt(m->parameters(), {.lr = 0.1});
  EXPECT_TRUE(contains(error_of([&] { train::load_checkpoint(run + "/noopt", *m, &opt); }),
                       "no optimizer.safetensors"));
}

TEST(Checkpoint, GeneratorStateRoundTrips) {
  Generator g(123);
  rand({10}, DType::f32, &g);
  nlohmann::json s = train::generator_state(g);
  Generator h(0);
  train::set_generator_state(h, s);
  EXPECT_EQ(rand({5}, DType::f32, &g).to_vector<float>(),
            rand({5}, DType::f32, &h).to_vector<float>());
  EXPECT_TRUE(contains(error_of([&] { train::set_generator_state(h, nlohmann::json::array()); }),
                       "must be an object"));
}
