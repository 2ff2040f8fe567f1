// The trainer on a tiny synthetic dataset: an interrupted and resumed run logs exactly the
// losses of an uninterrupted one; the run folder's files; non-finite losses stop (naming the
// step, keeping the last good checkpoint) or are skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "moxing/data/dataset.h"
#include "moxing/moxing.h"
#include "moxing/train/checkpoint.h"
#include "moxing/train/trainer.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
namespace fs = std::filesystem;

namespace {

// 96 examples (1,4,4) in 3 classes: the class is the quadrant-sum pattern of the input.
// with_nan puts a NaN into one training example (validation stays finite).
train::DataSplits synthetic(bool with_nan = false) {
  const int64_t n = 96;
  Generator g(11);
  Tensor x = randn({n, 1, 4, 4}, DType::f32, &g);  // (N,1,4,4)
  Tensor xs = x.contiguous();
  std::vector<int64_t> y(static_cast<size_t>(n));
  float* p = xs.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    float top = 0, left = 0;
    for (int64_t r = 0; r < 4; ++r) {
      for (int64_t c = 0; c < 4; ++c) {
        float v = p[i * 16 + r * 4 + c];
        if (r < 2) top += v;
        if (c < 2) left += v;
      }
    }
    y[static_cast<size_t>(i)] = top > 0 ? 0 : (left > 0 ? 1 : 2);
  }
  Tensor yt = from_vector<int64_t>(y, {n});
  auto full = std::make_shared<data::TensorDataset>(xs, yt);
  auto [tr, va] = data::train_val_split(full, 0.25, 5);
  train::DataSplits d;
  d.train = tr;
  if (with_nan) {
    Tensor xn = xs.clone();
    xn.data<float>()[tr->indices().at(10) * 16] = NAN;
    d.train = std::make_shared<data::Subset>(std::make_shared<data::TensorDataset>(xn, yt),
                                             tr->indices());
  }
  d.val = va;
  d.test = va;
  d.channels = 1;
  d.image_size = 4;
  d.num_classes = 3;
  d.class_names = {"top", "left", "other"};
  return d;
}

// A task added by a file, as users add theirs: image classification over the synthetic splits
// (the NaN ones when [data] path is "nan").
std::unique_ptr<train::Task> make_synthetic_task(const train::Config& config) {
  return train::make_image_classification_task(config, synthetic(config.data.path == "nan"));
}
MOXING_REGISTER_TASK("synthetic-images", make_synthetic_task);

// Two models and two optimizers updated in phases, as a GAN updates its discriminator and
// then its generator: y = a(x) and z = b(x) are the first outputs of linear maps at x = 1;
// phase 0 moves a toward 1 ((a - 1)^2), phase 1 moves b toward a ((b - a)^2, which also
// reaches a's weights). It records a(x) as each phase sees it and after the step.
struct PhaseLog {
  std::vector<double> a_phase0, a_phase1, a_after, b_phase1;
};
PhaseLog& phase_log() {
  static PhaseLog log;
  return log;
}

class PhasedTask : public train::Task {
 public:
  explicit PhasedTask(const train::Config& config) : config_(config) {}
  nlohmann::json setup_data(train::Run& run) override {
    (void)run;
    return {{"num_channels", 1}, {"image_size", 1}, {"num_labels", 2}};
  }
  void configure(train::Run& run, models::Model model) override {
    models::Model b = models::build_model(*model.family, model.config);
    a_ = model.module.get();
    b_ = b.module.get();
    for (auto [name, m] : {std::pair{"a", &model}, std::pair{"b", &b}}) {
      optim::ParamGroup g;
      g.params = m->module->parameters();
      std::string model_name = name;
      run.add_model(model_name, std::move(*m));
      run.add_optimizer("opt_" + model_name, model_name, {std::move(g)});
    }
    run.after_optimizer_step.push_back([this](train::Run&) {
      NoGradGuard no_grad;
      phase_log().a_after.push_back(out(*a_).item<double>());
    });
  }
  std::vector<std::vector<std::string>> update_phases() const override {
    return {{"opt_a"}, {"opt_b"}};
  }
  int64_t steps_per_epoch() const override { return 1; }
  train::StepOutput training_step(train::Run& run, int64_t step, int64_t micro) override {
    (void)step;
    (void)micro;
    train::StepOutput o;
    o.items = 1;
    Tensor a = out(*a_);
    if (run.phase() == 0) {
      phase_log().a_phase0.push_back(a.item<double>());
      Tensor d = sub(a, ones_like(a));
      o.loss = sum(mul(d, d));
    } else {
      phase_log().a_phase1.push_back(a.item<double>());
      Tensor b = out(*b_);
      phase_log().b_phase1.push_back(b.item<double>());
      Tensor d = sub(b, a);
      o.loss = sum(mul(d, d));
    }
    return o;
  }
  std::optional<train::Metrics> validate(train::Run& run) override {
    (void)run;
    return std::nullopt;
  }
  train::EvalReport evaluate(const train::LoadedRun& run, const std::string& path) override {
    (void)run;
    (void)path;
    return {};
  }

 private:
  static Tensor out(nn::Module& m) {
    return dynamic_cast<nn::UnaryModule&>(m).forward(ones({1, 1, 1, 1})).select(1, 0);
  }
  const train::Config& config_;
  nn::Module *a_ = nullptr, *b_ = nullptr;
};

std::unique_ptr<train::Task> make_phased_task(const train::Config& config) {
  return std::make_unique<PhasedTask>(config);
}
MOXING_REGISTER_TASK("two-phases", make_phased_task);

train::Config small_config() {
  train::Config c;
  c.train.task = "synthetic-images";
  c.model.fields["hidden"] = {16};
  c.data.batch_size = 8;  // 72 train examples: 9 batches, 5 steps per epoch with grad_accum 2
  c.data.eval_batch_size = 10;
  c.optim.name = "adamw";
  c.optim.lr = 1e-2;
  c.schedule.name = "cosine";
  c.schedule.warmup_steps = 2;
  c.train.steps = 12;
  c.train.grad_accum = 2;
  c.train.clip_grad_norm = 1.0;
  c.train.log_every = 1;
  c.train.eval_every = 4;
  c.train.checkpoint_every = 3;
  c.train.seed = 3;
  return c;
}

std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/trainer_" + name;
  fs::remove_all(d);
  return d;
}

// step -> loss of the train records (the last one of a step, as after a resume).
std::map<int64_t, double> train_losses(const std::string& run) {
  std::map<int64_t, double> out;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.at("split") == "train") out[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
  }
  return out;
}

train::TrainOptions quiet(const std::string& out) {
  train::TrainOptions o;
  o.out_dir = out;
  o.progress = false;
  return o;
}

}  // namespace

TEST(Trainer, ResumedRunGivesExactlyTheSameLosses) {
  train::Config c = small_config();

  std::string full = fresh_dir("full");
  train::TrainSummary a = train::fit(c, quiet(full));
  EXPECT_EQ(a.steps, 12);
  EXPECT_FALSE(a.interrupted);

  std::string split = fresh_dir("split");
  train::TrainOptions first = quiet(split);
  first.stop_after_step = 7;  // mid-epoch, between checkpoints: the stop saves step-7
  train::TrainSummary b1 = train::fit(c, first);
  EXPECT_TRUE(b1.interrupted);
  EXPECT_EQ(b1.steps, 7);
  EXPECT_TRUE(fs::exists(split + "/checkpoints/step-7/trainer_state.json"));
  EXPECT_FALSE(fs::exists(split + "/final"));
  train::TrainOptions second = quiet(split);
  second.resume = true;
  train::TrainSummary b2 = train::fit(c, second);
  EXPECT_EQ(b2.steps, 12);
  EXPECT_FALSE(b2.interrupted);

  auto la = train_losses(full), lb = train_losses(split);
  ASSERT_EQ(la.size(), 12u);
  ASSERT_EQ(lb.size(), 12u);
  for (const auto& [step, loss] : la) EXPECT_EQ(lb.at(step), loss) << "step " << step;
  EXPECT_EQ(*a.test_loss, *b2.test_loss);
  EXPECT_LT(la.at(12), la.at(1));
}

TEST(Trainer, WritesTheRunFolder) {
  train::DataSplits d = synthetic();
  train::Config c = small_config();
  c.train.steps = 0;
  c.train.epochs = 2;
  c.train.grad_accum = 1;
  c.train.eval_every = 0;        // at each epoch end
  c.train.checkpoint_every = 0;  // at each epoch end
  c.train.best_metric = "val/loss";
  std::string run = fresh_dir("files");
  train::TrainSummary s = train::fit(c, quiet(run));
  EXPECT_EQ(s.steps, 18);
  EXPECT_DOUBLE_EQ(s.epochs, 2.0);
  for (const char* f :
       {"config.toml", "metrics.jsonl", "curves.png", "test_metrics.json",
        "checkpoints/step-9/model.safetensors", "checkpoints/step-18/optimizer.safetensors",
        "best/model.safetensors", "final/trainer_state.json"}) {
    EXPECT_TRUE(fs::exists(run + "/" + f)) << f;
  }
  EXPECT_EQ(train::Config::from_file(run + "/config.toml").to_json(), c.to_json());
  nlohmann::json j = s.to_json();
  for (const char* k :
       {"test_accuracy", "test_loss", "val_accuracy", "steps", "epochs", "seconds"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_EQ(j.at("best").at("metric"), "val/loss");

  train::LoadedRun m = train::load_run(run);
  EXPECT_EQ(m.checkpoint_dir, run + "/final");
  EXPECT_EQ(m.trainer_state.at("class_names").size(), 3u);
  EXPECT_EQ(m.model.family->name, "mlp");
  train::EvalResult r =
      train::evaluate(m.model.expect<nn::UnaryModule>("a classifier"), d.test, 7, 3);
  EXPECT_DOUBLE_EQ(r.report.accuracy, *s.test_accuracy);

  // a finished run resumed does nothing more
  train::TrainOptions again = quiet(run);
  again.resume = true;
  EXPECT_EQ(train::fit(c, again).steps, 18);
  std::string e = error_of([&] {
    train::TrainOptions o = quiet(fresh_dir("nothing"));
    o.resume = true;
    train::fit(c, o);
  });
  EXPECT_TRUE(contains(e, "no checkpoint in")) << e;
}

TEST(Trainer, NonFiniteLossStopsAndNamesTheStep) {
  train::Config c = small_config();
  c.data.path = "nan";
  c.train.checkpoint_every = 1;
  c.train.grad_accum = 1;
  c.train.clip_grad_norm = 0;
  c.model.fields["hidden"] = nlohmann::json::array();  // a linear model: NaN reaches the logits
  std::string run = fresh_dir("nan");
  std::string e = error_of([&] { train::fit(c, quiet(run)); });
  const std::string marker = "non-finite loss or gradient at step ";
  size_t at = e.find(marker);
  ASSERT_NE(at, std::string::npos) << e;
  int64_t bad = std::stoll(e.substr(at + marker.size()));
  auto latest = train::latest_checkpoint(run);
  if (bad > 1) {
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(*latest, run + "/checkpoints/step-" + std::to_string(bad - 1));
    EXPECT_TRUE(contains(e, "last good checkpoint: " + *latest)) << e;
  } else {
    EXPECT_FALSE(latest.has_value());
  }

  c.train.skip_nonfinite = true;
  std::string run2 = fresh_dir("nan_skip");
  train::TrainSummary s = train::fit(c, quiet(run2));
  EXPECT_EQ(s.steps, 12);
  auto losses = train_losses(run2);
  for (const auto& [step, loss] : losses) EXPECT_TRUE(std::isfinite(loss)) << step;
  train::LoadedRun lm = train::load_run(run2);
  for (const Tensor& p : lm.model.module->parameters()) {
    Tensor f = p.to(DType::f64).contiguous();
    for (int64_t i = 0; i < f.numel(); ++i) ASSERT_TRUE(std::isfinite(f.data<double>()[i]));
  }
}

// Each phase steps its own optimizer, the second phase sees the first one's update, and a
// phase's gradient on another optimizer's weights is dropped.
TEST(Trainer, UpdatePhasesStepTheirOptimizersInTurn) {
  train::Config c;
  c.train.task = "two-phases";
  c.model.fields["hidden"] = nlohmann::json::array();
  c.optim.name = "sgd";
  c.optim.lr = 0.1;
  c.train.steps = 3;
  c.train.log_every = 1;
  phase_log() = {};
  std::string run = fresh_dir("phases");
  train::fit(c, quiet(run));
  const PhaseLog& log = phase_log();
  ASSERT_EQ(log.a_phase0.size(), 3u);
  ASSERT_EQ(log.a_phase1.size(), 3u);
  ASSERT_EQ(log.a_after.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    // y = w + b at x = 1: an SGD step on (y - 1)^2 moves y by -lr * 2 (y - 1) * 2
    const double a0 = log.a_phase0[i];
    const double expected = a0 - 0.1 * 2 * (a0 - 1) * 2;
    EXPECT_NEAR(log.a_phase1[i], expected, 1e-6) << "phase 1 sees phase 0's update, step " << i;
    EXPECT_NEAR(log.a_after[i], expected, 1e-6) << "phase 1 did not move a, step " << i;
    if (i + 1 < 3) {
      const double b = log.b_phase1[i];
      EXPECT_NEAR(log.b_phase1[i + 1], b - 0.1 * 2 * (b - expected) * 2, 1e-6);
    }
  }
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  int records = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.at("split") != "train") continue;
    ++records;
    EXPECT_NEAR(j.at("loss").get<double>(),
                j.at("loss_opt_a").get<double>() + j.at("loss_opt_b").get<double>(), 1e-12);
  }
  EXPECT_EQ(records, 3);
}
