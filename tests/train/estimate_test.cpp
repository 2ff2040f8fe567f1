// Training memory estimates on the meta device: the parts add up as the optimizer and the
// model say, the peak equals what the same two steps hold on the CPU, nothing real is allocated,
// a model folder's weights are not read, and what the config cannot tell is noted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "moxing/core/allocator.h"
#include "moxing/models/causal_lm.h"
#include "moxing/moxing.h"
#include "moxing/train/estimate.h"
#include "moxing/train/trainer.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
namespace fs = std::filesystem;

namespace {

train::Config gpt_config(const std::string& optimizer) {
  return train::Config::from_toml(R"(
[model]
name = "gpt2"
n_layer = 2
n_head = 2
n_embd = 32
n_positions = 24
dropout = 0.1
[data]
name = "text"
files = ["unused.txt"]
tokenizer = "bpe"
vocab_size = 300
batch_size = 4
[optim]
name = ")" + optimizer + R"("
)");
}

uint64_t cpu_in_use() { return allocator_stats(DeviceType::cpu).bytes_in_use; }

}  // namespace

TEST(Estimate, PartsFollowTheModelAndTheOptimizer) {
  const uint64_t cpu_before = cpu_in_use();
  const uint64_t gen_offset = default_generator().offset();
  train::MemoryEstimate adamw = train::estimate_training_memory(gpt_config("adamw"));
  EXPECT_EQ(cpu_in_use(), cpu_before);  // meta only
  EXPECT_EQ(default_generator().offset(), gen_offset);
  ASSERT_TRUE(adamw.stepped);
  EXPECT_EQ(adamw.task, "causal-lm");
  EXPECT_GT(adamw.parameters, 0);
  EXPECT_EQ(adamw.weight_bytes, static_cast<uint64_t>(adamw.parameters) * 4);
  EXPECT_EQ(adamw.gradient_bytes, adamw.weight_bytes);
  EXPECT_EQ(adamw.optimizer_bytes, 2 * adamw.weight_bytes);  // exp_avg and exp_avg_sq
  EXPECT_GT(adamw.activation_bytes, 0u);
  EXPECT_EQ(adamw.peak_bytes, adamw.weight_bytes + adamw.gradient_bytes + adamw.optimizer_bytes +
                                  adamw.activation_bytes);

  train::MemoryEstimate sgd = train::estimate_training_memory(gpt_config("sgd"));
  EXPECT_EQ(sgd.optimizer_bytes, 0u);  // plain SGD keeps no state
  EXPECT_EQ(sgd.weight_bytes, adamw.weight_bytes);
}

// The meta device counts what the CPU holds: the same model, batch and two AdamW steps on the
// CPU reach the estimated peak.
TEST(Estimate, PeakIsWhatTheSameStepsHoldOnTheCpu) {
  train::Config config = gpt_config("adamw");
  train::MemoryEstimate e = train::estimate_training_memory(config);

  const uint64_t before = cpu_in_use();
  nlohmann::json fields = config.model.resolved();
  fields["vocab_size"] = 300;
  models::Model m = models::build_model(models::find_family("gpt2"), fields);
  m.module->train();
  EXPECT_EQ(cpu_in_use() - before, e.weight_bytes);
  auto& lm = m.expect<models::CausalLM>("a causal language model");
  auto opt = optim::make_optimizer("adamw", m.module->parameters());
  allocator_reset_peak(DeviceType::cpu);
  const int64_t B = 4, T = 24;
  for (int step = 0; step < 2; ++step) {
    Tensor x = randint(0, 300, {B, T}), y = randint(0, 300, {B, T});
    Tensor logits = lm.lm_head(lm.hidden_states(x));
    Tensor loss = cross_entropy(logits.reshape({B * T, 300}), y.reshape({B * T}));
    x = Tensor();
    y = Tensor();
    logits = Tensor();
    loss.backward();
    loss = Tensor();
    opt->step();
    opt->zero_grad();
  }
  const uint64_t peak = allocator_stats(DeviceType::cpu).peak_bytes - before;
  // the CPU run also holds its random inputs (2 x B x T int64)
  EXPECT_NEAR(static_cast<double>(peak), static_cast<double>(e.peak_bytes),
              0.02 * static_cast<double>(peak));
}

TEST(Estimate, AModelFolderIsMeasuredWithoutReadingItsWeights) {
  fs::path dir = fs::temp_directory_path() / ("moxing_estimate_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  nlohmann::json fields = gpt_config("adamw").model.resolved();
  fields["vocab_size"] = 300;
  models::Model m = models::build_model(models::find_family("gpt2"), fields);
  m.save_pretrained(dir.string());
  fs::resize_file(dir / "model.safetensors", 10);  // damaged weights: never read

  train::Config config = train::training_config_of(dir.string());
  EXPECT_EQ(config.model.pretrained, dir.string());
  EXPECT_EQ(train::task_name(config), "causal-lm");
  config.data.batch_size = 2;
  train::MemoryEstimate e = train::estimate_training_memory(config);
  EXPECT_EQ(e.parameters, m.module->num_parameters());
  EXPECT_EQ(e.weight_bytes, static_cast<uint64_t>(e.parameters) * 4);
  EXPECT_TRUE(e.stepped);
  fs::remove_all(dir);
}

TEST(Estimate, NotesWhatOnlyTheDataTells) {
  train::Config config = gpt_config("adamw");
  config.data.fields["tokenizer"] = "char";  // every character of the text: known after reading it
  config.data.fields["vocab_size"] = 0;
  train::MemoryEstimate e = train::estimate_training_memory(config);
  ASSERT_EQ(e.notes.size(), 1u);
  EXPECT_TRUE(contains(e.notes[0], "vocab_size = 50257")) << e.notes[0];

  train::Config mlp = train::Config::from_toml(R"(
[model]
name = "mlp"
hidden = [64]
[data]
name = "fashion-mnist"
batch_size = 16
[optim]
name = "sgd"
momentum = 0.9
)");
  train::MemoryEstimate m = train::estimate_training_memory(mlp);
  EXPECT_TRUE(m.notes.empty());
  EXPECT_EQ(m.parameters, 784 * 64 + 64 + 64 * 10 + 10);
  EXPECT_EQ(m.optimizer_bytes, m.weight_bytes);  // one momentum buffer per parameter
}
