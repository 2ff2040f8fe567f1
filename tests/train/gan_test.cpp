// The gan task on a tiny Fashion-MNIST-layout data set (tests/support/tiny_fashion.h) with a
// small dcgan: each update phase changes only its own model's weights, every epoch writes its
// sample grid (a PNG file and a TensorBoard image record), a run stopped and resumed ends
// byte-identical to an uninterrupted one, a resume with another model config is refused, and
// bad data keys are errors. Also the Inception Score on known distributions and the grid.
#include "moxing/train/tasks/gan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "expect_error.h"
#include "moxing/data/image.h"
#include "moxing/data/mnist.h"
#include "moxing/io/file.h"
#include "moxing/io/tfevents.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/reduction.h"
#include "moxing/train/estimate.h"
#include "moxing/train/trainer.h"
#include "tiny_fashion.h"

namespace moxing::train {
namespace {

namespace fs = std::filesystem;
using moxing::testing::expect_error;

std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/gan_" + name;
  fs::remove_all(d);
  return d;
}

// 64 training images (16 held out for validation) and 20 test images, made once.
const std::string& tiny_data() {
  static const std::string dir = [] {
    std::string d = fresh_dir("data");
    moxing::testing::write_tiny_fashion(d, 80, 20);
    return d;
  }();
  return dir;
}

// A dcgan small enough for a step in milliseconds: batches of 16, so 4 steps an epoch.
Config tiny_config(int64_t epochs = 2) {
  Config c;
  c.model.name = "dcgan";
  c.model.fields = {
      {"nz", 8}, {"generator_channels", {16, 8}}, {"discriminator_channels", {8, 16}}};
  c.data.name = "fashion-mnist";
  c.data.path = tiny_data();
  c.data.val_fraction = 0.2;
  c.data.batch_size = 16;
  c.data.eval_batch_size = 8;
  c.data.fields = {{"num_samples", 16}};
  c.optim.lr = 2e-4;
  c.optim.beta1 = 0.5;
  c.train.epochs = epochs;
  c.train.log_every = 1;
  c.train.best_metric = "val/loss_generator";
  return c;
}

TrainOptions quiet(const std::string& out) {
  TrainOptions o;
  o.out_dir = out;
  o.progress = false;
  return o;
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- a task that runs the gan task and records both models' weights at each training_step

struct WeightLog {
  struct Entry {
    int64_t step, phase;
    std::vector<float> generator, discriminator;
  };
  std::vector<Entry> entries;
};
WeightLog& weight_log() {
  static WeightLog log;
  return log;
}

std::vector<float> flat(const models::Model& m) {
  std::vector<float> out;
  for (const Tensor& p : m.module->parameters()) {
    std::vector<float> v = p.to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

class RecordingGan : public Task {
 public:
  explicit RecordingGan(const Config& config) : inner_(make_task("gan", config)) {}
  void check_data_config() const override { inner_->check_data_config(); }
  std::optional<nlohmann::json> data_fields() const override { return inner_->data_fields(); }
  nlohmann::json setup_data(Run& run) override { return inner_->setup_data(run); }
  void configure(Run& run, models::Model model) override {
    inner_->configure(run, std::move(model));
  }
  int64_t steps_per_epoch() const override { return inner_->steps_per_epoch(); }
  int64_t micro_batches(int64_t step) const override { return inner_->micro_batches(step); }
  StepOutput training_step(Run& run, int64_t step, int64_t micro) override {
    weight_log().entries.push_back(
        {step, run.phase(), flat(run.model("generator")), flat(run.model("discriminator"))});
    return inner_->training_step(run, step, micro);
  }
  std::vector<std::vector<std::string>> update_phases() const override {
    return inner_->update_phases();
  }
  std::optional<Metrics> validate(Run& run) override { return inner_->validate(run); }
  EvalReport evaluate(const LoadedRun& run, const std::string& path) override {
    return inner_->evaluate(run, path);
  }

 private:
  std::unique_ptr<Task> inner_;
};

std::unique_ptr<Task> make_recording_gan(const Config& config) {
  return std::make_unique<RecordingGan>(config);
}
MOXING_REGISTER_TASK("gan-recorded", make_recording_gan);

TEST(Gan, EachPhaseChangesOnlyItsOwnModel) {
  Config c = tiny_config();
  c.train.task = "gan-recorded";
  c.train.steps = 3;
  weight_log() = {};
  fit(c, quiet(fresh_dir("phases")));
  const auto& e = weight_log().entries;
  ASSERT_EQ(e.size(), 6u);  // 3 steps x 2 phases
  for (size_t i = 0; i + 1 < e.size(); ++i) {
    ASSERT_EQ(e[i].phase, static_cast<int64_t>(i % 2));
    if (e[i].phase == 0) {
      // the discriminator phase moved the discriminator and not the generator
      EXPECT_EQ(e[i + 1].generator, e[i].generator) << "step " << e[i].step;
      EXPECT_NE(e[i + 1].discriminator, e[i].discriminator) << "step " << e[i].step;
    } else {
      EXPECT_EQ(e[i + 1].discriminator, e[i].discriminator) << "step " << e[i].step;
      EXPECT_NE(e[i + 1].generator, e[i].generator) << "step " << e[i].step;
    }
  }
}

// The image records of a run's TensorBoard files: (tag, height, width, colorspace, png).
struct ImageRecord {
  std::string tag;
  int64_t step = 0, height = 0, width = 0, colorspace = 0;
  std::string png;
};

uint64_t varint(std::string_view b, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; pos < b.size(); shift += 7) {
    auto byte = static_cast<uint8_t>(b[pos++]);
    v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return v;
  }
  throw std::runtime_error("truncated varint");
}

// Calls on_field(field, wire type, varint value, bytes) for each field of a protobuf message.
template <class F>
void fields(std::string_view msg, F&& on_field) {
  size_t pos = 0;
  while (pos < msg.size()) {
    const uint64_t key = varint(msg, pos);
    const auto field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    if (wire == 0) {
      on_field(field, wire, varint(msg, pos), std::string_view());
    } else if (wire == 2) {
      const uint64_t n = varint(msg, pos);
      if (pos + n > msg.size()) throw std::runtime_error("truncated bytes");
      on_field(field, wire, 0, msg.substr(pos, n));
      pos += n;
    } else if (wire == 1 || wire == 5) {
      pos += wire == 1 ? 8 : 4;
    } else {
      throw std::runtime_error("unexpected wire type");
    }
  }
}

std::vector<ImageRecord> image_records(const std::string& run) {
  std::vector<ImageRecord> out;
  for (const auto& entry : fs::directory_iterator(run)) {
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) != 0) continue;
    const std::string bytes = bytes_of(entry.path());
    for (size_t pos = 0; pos + 12 <= bytes.size();) {
      uint64_t n;
      std::memcpy(&n, bytes.data() + pos, 8);
      std::string_view data(bytes.data() + pos + 12, n);
      uint32_t crc;
      std::memcpy(&crc, bytes.data() + pos + 12 + n, 4);
      EXPECT_EQ(crc, masked_crc32c(data.data(), data.size()));
      pos += 12 + n + 4;
      ImageRecord r;
      fields(data, [&](int f, int, uint64_t v, std::string_view b) {
        if (f == 2) r.step = static_cast<int64_t>(v);
        if (f != 5) return;
        fields(b, [&](int, int, uint64_t, std::string_view value) {  // Summary.value
          fields(value, [&](int vf, int, uint64_t, std::string_view vb) {
            if (vf == 1) r.tag = vb;
            if (vf != 4) return;
            fields(vb, [&](int imf, int, uint64_t iv, std::string_view ib) {  // Image
              if (imf == 1) r.height = static_cast<int64_t>(iv);
              if (imf == 2) r.width = static_cast<int64_t>(iv);
              if (imf == 3) r.colorspace = static_cast<int64_t>(iv);
              if (imf == 4) r.png = ib;
            });
          });
        });
      });
      if (!r.png.empty()) out.push_back(r);
    }
  }
  return out;
}

TEST(Gan, EveryEpochWritesItsSampleGridAndTensorBoardImage) {
  const std::string run = fresh_dir("samples");
  TrainSummary s = fit(tiny_config(2), quiet(run));
  EXPECT_EQ(s.steps, 8);
  // 16 fixed latents, 8 a row: 2 rows of 28 + 2 padding pixels, and 2 more
  for (int epoch : {1, 2}) {
    const fs::path png = fs::path(run) / "samples" / fmt::format("epoch-{}.png", epoch);
    ASSERT_TRUE(fs::exists(png)) << png;
    Tensor img = data::read_image(png.string());
    EXPECT_EQ(img.shape(), (Shape{62, 242, 1}));
    EXPECT_GT(max(img.to(DType::f32)).item<double>(), 0.0) << "a black grid";
  }
  EXPECT_FALSE(fs::exists(fs::path(run) / "samples" / "epoch-3.png"));
  std::vector<ImageRecord> images = image_records(run);
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].tag, "samples");
  EXPECT_EQ(images[0].step, 4);
  EXPECT_EQ(images[1].step, 8);
  EXPECT_EQ(images[1].height, 62);
  EXPECT_EQ(images[1].width, 242);
  EXPECT_EQ(images[1].colorspace, 1);
  EXPECT_EQ(images[1].png, bytes_of(fs::path(run) / "samples" / "epoch-2.png"));
  // the metrics: each phase's loss, D(x) and D(G(z)), and the held-out adversarial losses
  std::ifstream in(run + "/metrics.jsonl");
  int train = 0, val = 0, test = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["split"] == "train") {
      ++train;
      EXPECT_NEAR(j["loss"].get<double>(),
                  j["loss_discriminator"].get<double>() + j["loss_generator"].get<double>(), 1e-9);
      EXPECT_GT(j["d_real"].get<double>(), 0.0);
      EXPECT_LT(j["d_fake"].get<double>(), 1.0);
    } else if (j["split"] == "val") {
      ++val;
      for (const char* k : {"loss_discriminator", "loss_generator", "d_real", "d_fake",
                            "accuracy_real", "accuracy_fake"}) {
        EXPECT_TRUE(j.contains(k)) << k;
      }
    } else if (j["split"] == "test") {
      ++test;
    }
  }
  EXPECT_EQ(train, 8);
  EXPECT_EQ(val, 2);
  EXPECT_EQ(test, 1);
  // the checkpoint: the generator is the folder's model, the discriminator beside it
  const fs::path final_dir = fs::path(run) / "final";
  EXPECT_EQ(models::read_config_json(final_dir.string())["architectures"][0], "DCGANGenerator");
  EXPECT_EQ(models::read_config_json((final_dir / "discriminator").string())["architectures"][0],
            "DCGANDiscriminator");
  EXPECT_TRUE(fs::exists(final_dir / "optimizer-generator.safetensors"));
  EXPECT_TRUE(fs::exists(final_dir / "optimizer-discriminator.safetensors"));
  LoadedRun loaded = load_run(run);
  EXPECT_NE(loaded.model.as<models::ImageGenerator>(), nullptr);
}

TEST(Gan, StoppedAndResumedRunEndsAsAnUninterruptedOne) {
  Config c = tiny_config(2);
  const std::string full = fresh_dir("full"), split = fresh_dir("split");
  fit(c, quiet(full));
  TrainOptions first = quiet(split);
  first.stop_after_step = 3;  // mid-epoch
  EXPECT_TRUE(fit(c, first).interrupted);
  EXPECT_FALSE(fs::exists(fs::path(split) / "samples" / "epoch-1.png"));
  TrainOptions rest = quiet(split);
  rest.resume = true;
  EXPECT_FALSE(fit(c, rest).interrupted);
  for (const char* f :
       {"final/model.safetensors", "final/discriminator/model.safetensors",
        "final/optimizer-generator.safetensors", "samples/epoch-1.png", "samples/epoch-2.png"}) {
    EXPECT_EQ(bytes_of(fs::path(split) / f), bytes_of(fs::path(full) / f)) << f;
  }
}

TEST(Gan, ResumeWithAnotherModelIsRefused) {
  Config c = tiny_config(1);
  const std::string run = fresh_dir("other_model");
  TrainOptions first = quiet(run);
  first.stop_after_step = 2;
  fit(c, first);
  c.model.fields["nz"] = 4;
  TrainOptions rest = quiet(run);
  rest.resume = true;
  expect_error([&] { fit(c, rest); }, "the config's model differs from the one checkpoint");
  expect_error([&] { fit(c, rest); }, "generator nz 8 in");
}

TEST(Gan, MemoryEstimateCountsBothModels) {
  Config c = tiny_config();
  MemoryEstimate e = estimate_training_memory(c);
  const models::Family& f = models::find_family("dcgan");
  models::Model g = models::build_model(f, c.model.fields);
  models::Model d = models::build_model(f, c.model.fields, "DCGANDiscriminator");
  const int64_t params = g.module->num_parameters() + d.module->num_parameters();
  EXPECT_EQ(e.task, "gan");
  EXPECT_EQ(e.parameters, params);
  // f32 weights, plus buffers (BatchNorm statistics) and the fixed latents of the grids
  EXPECT_GE(e.weight_bytes, static_cast<uint64_t>(params) * 4);
  EXPECT_LT(e.weight_bytes, static_cast<uint64_t>(params) * 4 + 2048);
  EXPECT_TRUE(e.stepped);  // the generator phase on the meta device, BatchNorm included
  EXPECT_EQ(e.gradient_bytes, static_cast<uint64_t>(params) * 4);  // both models' gradients
  EXPECT_GT(e.activation_bytes, 0u);
}

TEST(Gan, BadDataKeysAreClearErrors) {
  Config c = tiny_config();
  c.data.fields["normalize"] = true;  // images are always scaled to [-1, 1]
  expect_error([&] { c.validate(); }, "normalize");
  c = tiny_config();
  c.data.name = "imagefolder";
  expect_error([&] { c.validate(); }, "'imagefolder' is not known (valid: fashion-mnist)");
  c = tiny_config();
  c.data.fields["num_samples"] = 0;
  expect_error([&] { c.validate(); }, "num_samples must be > 0");
  c = tiny_config();
  c.data.batch_size = 100;  // more than the 64 training images
  expect_error([&] { fit(c, quiet(fresh_dir("big_batch"))); }, "fewer than one batch of 100");
}

// Generated images are in [-1, 1]; the classifier takes what its own loader gives (here
// normalized with Fashion-MNIST's mean and std): the test images scaled to [-1, 1] and scored
// through probs() get the probabilities its loader's images get.
TEST(Gan, ScorerScalesImagesAsTheClassifiersLoader) {
  Config c;
  c.model.name = "cnn";
  c.model.fields = {{"channels", {4}}, {"hidden", {8}}};
  c.data.path = tiny_data();
  c.data.batch_size = 16;
  c.data.fields = {{"normalize", true}};
  c.train.steps = 4;
  const std::string run = fresh_dir("classifier");
  fit(c, quiet(run));
  ImageClassifierScorer scorer(run);
  EXPECT_EQ(scorer.class_names().at(9), "Ankle_boot");
  data::MnistDataset test(tiny_data(), /*train=*/false);  // [0, 1]
  Tensor images = sub(mul(test.images().to(DType::f32), 2.0 / 255.0), 1.0).unsqueeze(1);
  Tensor want = scorer.test_probs();
  Tensor got = scorer.probs(images);
  ASSERT_EQ(got.shape(), (Shape{20, 10}));
  EXPECT_LT(max(abs(sub(got, want))).item<double>(), 1e-5);
  // scored as if unnormalized, they would not match
  Tensor raw = scorer.probs(sub(mul(images, 0.5), 0.5));
  EXPECT_GT(max(abs(sub(raw, want))).item<double>(), 1e-3);
  expect_error([&] { scorer.probs(zeros({2, 1, 32, 32})); }, "takes (1,28,28) images");
  Config gan = tiny_config(1);
  gan.train.steps = 1;
  const std::string gan_run = fresh_dir("not_a_classifier");
  fit(gan, quiet(gan_run));
  expect_error([&] { ImageClassifierScorer bad(gan_run); }, "is not an image classifier");
}

TEST(Gan, InceptionScoreOfKnownDistributions) {
  // one-hot predictions spread evenly over K classes: IS = K; all one class: 1; uniform: 1
  std::vector<float> onehot(40 * 4, 0.0f), same(40 * 4, 0.0f), uniform(40 * 4, 0.25f);
  for (int i = 0; i < 40; ++i) {
    onehot[static_cast<size_t>(i * 4 + i % 4)] = 1;
    same[static_cast<size_t>(i * 4 + 2)] = 1;
  }
  InceptionScore a = inception_score(from_vector<float>(onehot, {40, 4}), 10);
  EXPECT_NEAR(a.score, 4.0, 1e-9);
  EXPECT_NEAR(a.split_mean, 4.0, 1e-9);  // each split of 4 rows holds every class once
  EXPECT_NEAR(a.split_std, 0.0, 1e-6);
  EXPECT_EQ(a.histogram, (std::vector<int64_t>{10, 10, 10, 10}));
  InceptionScore b = inception_score(from_vector<float>(same, {40, 4}), 1);
  EXPECT_NEAR(b.score, 1.0, 1e-12);
  EXPECT_EQ(b.histogram, (std::vector<int64_t>{0, 0, 40, 0}));
  EXPECT_NEAR(inception_score(from_vector<float>(uniform, {40, 4}), 1).score, 1.0, 1e-9);
  // two rows: p = (0.9, 0.1) and (0.1, 0.9): KL to (0.5, 0.5) is 0.9 ln 1.8 + 0.1 ln 0.2
  InceptionScore c = inception_score(from_vector<float>({0.9f, 0.1f, 0.1f, 0.9f}, {2, 2}), 1);
  EXPECT_NEAR(c.score, std::exp(0.9 * std::log(1.8) + 0.1 * std::log(0.2)), 1e-6);
  expect_error([] { inception_score(zeros({3})); }, "expected probabilities (N,K)");
  expect_error([] { inception_score(zeros({3, 2}), 4); }, "splits must be in 1..3");
}

TEST(Gan, SampleGridValuesAndLatentsFromTheSeed) {
  // -1 is black, 1 white, the padding black
  Tensor images =
      from_vector<float>({-1.0f, 1.0f, 1.0f, -1.0f, 0.0f, 1.0f, 0.0f, -1.0f}, {2, 1, 2, 2});
  Tensor grid = data::make_grid(images, 8, 1);
  EXPECT_EQ(grid.shape(), (Shape{4, 7, 1}));
  std::vector<uint8_t> g = grid.to_vector<uint8_t>();
  EXPECT_EQ(g[1 * 7 + 1], 0);
  EXPECT_EQ(g[1 * 7 + 2], 255);
  EXPECT_EQ(g[1 * 7 + 4], 128);  // 0 -> 127.5, rounded as save_image
  EXPECT_EQ(g[0], 0);
  expect_error([] { data::make_grid(zeros({2, 2})); }, "expected floating images (N,C,H,W)");
  EXPECT_EQ(latent_noise(3, 4, 7).to_vector<float>(), latent_noise(3, 4, 7).to_vector<float>());
  EXPECT_NE(latent_noise(3, 4, 7).to_vector<float>(), latent_noise(3, 4, 8).to_vector<float>());
  expect_error([] { latent_noise(0, 4, 1); }, "needs n > 0");
}

}  // namespace
}  // namespace moxing::train
