// The gan task: a generator and a discriminator trained in two update phases (PyTorch's DCGAN
// example as a task: BCE with logits, the discriminator on a real and a fake batch, then the
// generator against the updated discriminator), per-epoch sample grids, and the
// classifier-based Inception Score. The latent batches come from (seed, step), so a resumed run
// draws what an uninterrupted one does without saving loader or noise state.
#include "moxing/train/tasks/gan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/data/dataloader.h"
#include "moxing/data/image.h"
#include "moxing/data/mnist.h"
#include "moxing/io/checkpoint.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"
#include "moxing/train/epoch_batches.h"
#include "moxing/train/logging.h"
#include "moxing/train/tasks/image_classification.h"
#include "moxing/train/trainer.h"

namespace moxing::train {

namespace fs = std::filesystem;

namespace {

// Keys that set the task's random streams apart from the others a seed drives.
constexpr uint64_t kNoiseKey = 0x67616e2d6e6f6973;          // training latents
constexpr uint64_t kValidationKey = 0x67616e2d76616c69;     // validation latents
constexpr uint64_t kDiscriminatorKey = 0x67616e2d64697363;  // the discriminator's init

// z (n,nz) from block offset `draw` << 32 of the stream keyed by seed: draws never overlap.
Tensor noise_draw(int64_t n, int64_t nz, uint64_t seed, uint64_t draw) {
  Generator gen(seed);
  gen.set_offset(draw << 32);
  return randn({n, nz}, DType::f32, &gen);
}

}  // namespace

Tensor latent_noise(int64_t n, int64_t nz, uint64_t seed) {
  MOXING_CHECK(n > 0 && nz > 0, "latent_noise: needs n > 0 and nz > 0, got {} and {}", n, nz);
  return noise_draw(n, nz, seed, 0);
}

Tensor sample_images(models::ImageGenerator& generator, int64_t n, uint64_t seed,
                     int64_t batch_size) {
  MOXING_CHECK(n > 0, "sample: the number of images must be > 0, got {}", n);
  MOXING_CHECK(batch_size > 0, "sample: batch_size must be > 0, got {}", batch_size);
  const bool was_training = generator.is_training();
  generator.eval();
  NoGradGuard no_grad;
  Tensor z = latent_noise(n, generator.latent_size(), seed);  // (n,nz)
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < n; i += batch_size) {
    parts.push_back(generator.forward(z.slice(0, i, std::min(n, i + batch_size))));
  }
  generator.train(was_training);
  return parts.size() == 1 ? parts[0] : cat(parts, 0);
}

InceptionScore inception_score(const Tensor& probs, int64_t splits) {
  MOXING_CHECK(probs.dim() == 2 && probs.size(0) > 0 && probs.size(1) > 1,
               "inception_score: expected probabilities (N,K) with N > 0 and K > 1, got {}",
               shape_str(probs.shape()));
  const int64_t n = probs.size(0), k = probs.size(1);
  MOXING_CHECK(splits > 0 && splits <= n, "inception_score: splits must be in 1..{}, got {}", n,
               splits);
  Tensor p64 = probs.to(DType::f64).contiguous();
  const double* p = p64.data<double>();
  // exp(mean over rows r of sum_y p(y|x_r) (log p(y|x_r) - log p(y))), p(y) over rows [lo, hi)
  auto score = [&](int64_t lo, int64_t hi) {
    std::vector<double> marginal(static_cast<size_t>(k), 0.0);
    for (int64_t r = lo; r < hi; ++r) {
      for (int64_t y = 0; y < k; ++y) marginal[static_cast<size_t>(y)] += p[r * k + y];
    }
    for (double& m : marginal) m /= static_cast<double>(hi - lo);
    double kl = 0;
    for (int64_t r = lo; r < hi; ++r) {
      for (int64_t y = 0; y < k; ++y) {
        const double v = p[r * k + y];
        if (v > 0) kl += v * (std::log(v) - std::log(marginal[static_cast<size_t>(y)]));
      }
    }
    return std::exp(kl / static_cast<double>(hi - lo));
  };
  InceptionScore out;
  out.samples = n;
  out.splits = splits;
  out.score = score(0, n);
  double sum = 0, sum_sq = 0;
  for (int64_t s = 0; s < splits; ++s) {
    double v = score(s * n / splits, (s + 1) * n / splits);
    sum += v;
    sum_sq += v * v;
  }
  out.split_mean = sum / static_cast<double>(splits);
  out.split_std = std::sqrt(
      std::max(0.0, sum_sq / static_cast<double>(splits) - out.split_mean * out.split_mean));
  out.histogram.assign(static_cast<size_t>(k), 0);
  for (int64_t r = 0; r < n; ++r) {
    int64_t best = 0;
    for (int64_t y = 1; y < k; ++y) {
      if (p[r * k + y] > p[r * k + best]) best = y;
    }
    out.histogram[static_cast<size_t>(best)] += 1;
  }
  return out;
}

// ---- the classifier that scores samples

ImageClassifierScorer::ImageClassifierScorer(const std::string& path) : run_(load_run(path)) {
  const std::string task = task_name(run_.config);
  MOXING_CHECK(task == "image-classification",
               "{} is not an image classifier (a run of the image-classification task, e.g. of "
               "examples/cnn-fashion-mnist.toml): its task is {}",
               run_.checkpoint_dir, task);
  model_ = &run_.model.expect<nn::UnaryModule>("an image classifier");
  int64_t k = run_.model.config.value("num_labels", int64_t{0});
  class_names_ = run_.trainer_state.value("class_names", std::vector<std::string>());
  if (class_names_.empty() && run_.config.data.name == "fashion-mnist") {
    class_names_ = data::fashion_mnist_classes();
  }
  if (static_cast<int64_t>(class_names_.size()) != k) {
    class_names_.clear();
    for (int64_t i = 0; i < k; ++i) class_names_.push_back(std::to_string(i));
  }
}

Tensor ImageClassifierScorer::probs(const Tensor& images) {
  MOXING_CHECK(images.dim() == 4, "score: expected images (N,C,H,W), got {}",
               shape_str(images.shape()));
  const ImageFolderOptions o = image_options(run_.config.data);
  const int64_t c = run_.model.config.value("num_channels", images.size(1));
  const int64_t s = run_.model.config.value("image_size", images.size(2));
  MOXING_CHECK(images.size(1) == c && images.size(2) == s && images.size(3) == s,
               "score: the classifier {} takes ({},{},{}) images, the samples are {}",
               run_.checkpoint_dir, c, s, s, shape_str(images.shape()));
  // [-1, 1] -> [0, 1] -> the classifier's normalization, as input_transform applies it
  double mean = 0.5, std = 0.5;
  if (run_.config.data.name == "fashion-mnist") {
    mean = data::kFashionMnistMean;
    std = data::kFashionMnistStd;
  }
  NoGradGuard no_grad;
  model_->eval();
  std::vector<Tensor> parts;
  const int64_t n = images.size(0);
  for (int64_t i = 0; i < n; i += 1000) {
    Tensor x = mul(add(images.slice(0, i, std::min(n, i + 1000)), 1.0), 0.5);
    if (o.normalize) x = mul(add(x, -mean), 1.0 / std);
    parts.push_back(softmax(model_->forward(x.to(DType::f32)), 1));
  }
  return parts.size() == 1 ? parts[0] : cat(parts, 0);
}

Tensor ImageClassifierScorer::test_probs() {
  DataSplits d = load_data(run_.config);
  MOXING_CHECK(d.test != nullptr, "score: the classifier's data ({}) has no test split",
               run_.config.data.name);
  NoGradGuard no_grad;
  model_->eval();
  data::DataLoaderOptions lo;
  lo.batch_size = 1000;
  data::DataLoader loader(d.test, lo);
  std::vector<Tensor> parts;
  for (data::Batch& b : loader.epoch(0)) parts.push_back(softmax(model_->forward(b.input), 1));
  return cat(parts, 0);
}

namespace {

// Fashion-MNIST (or any folder of its IDX files) with images scaled to [-1, 1].
struct GanData {
  data::DatasetPtr train, val, test;
};

GanData load_gan_data(const Config& config) {
  const DataConfig& d = config.data;
  const std::string dir = d.path.empty() ? data::kFashionMnistDir : d.path;
  data::MnistOptions opt;
  opt.transform = [](const Tensor& image, Generator& gen) {
    return data::Normalize({0.5f}, {0.5f})(data::ToTensor{}(image, gen), gen);  // 2x - 1
  };
  GanData out;
  auto full = std::make_shared<data::MnistDataset>(dir, opt);
  const std::string test_images = dir + "/t10k-images-idx3-ubyte";
  if (fs::exists(test_images) || fs::exists(test_images + ".gz")) {
    data::MnistOptions test_opt = opt;
    test_opt.train = false;
    out.test = std::make_shared<data::MnistDataset>(dir, test_opt);
  }
  if (d.val_fraction > 0) {
    auto [train_part, val_part] =
        data::train_val_split(full, d.val_fraction, static_cast<uint64_t>(config.train.seed));
    out.train = train_part;
    out.val = val_part;
  } else {
    out.train = full;
  }
  return out;
}

models::ImageGenerator& generator_of(const models::Model& m) {
  return m.expect<models::ImageGenerator>(
      "an image generator (latent vectors (B,nz) -> images (B,C,H,W)), as the gan task trains");
}

// The discriminator architecture of the generator's family: the other one the gan task trains.
std::string discriminator_architecture(const models::Model& generator) {
  for (const models::Architecture& a : generator.family->architectures) {
    if (a.task == "gan" && a.name != generator.architecture) return a.name;
  }
  fail("family {} has no discriminator architecture for the gan task", generator.family->name);
}

// BCE of logits (B) against one label for all.
Tensor bce(const Tensor& logits, double label, Reduction r = Reduction::mean) {
  return binary_cross_entropy_with_logits(logits, full_like(logits, label), r);
}

// The adversarial metrics of a discriminator and generator on real images, against as many
// fakes from the validation latents (eval mode, no gradients):
//   loss_discriminator = BCE(D(x), 1) + BCE(D(G(z)), 0), loss_generator = BCE(D(G(z)), 1),
//   loss their sum, d_real and d_fake the mean D(.) probabilities, accuracy_real/_fake the
//   share the discriminator gets right.
Metrics adversarial_metrics(models::ImageGenerator& g, nn::UnaryModule& d,
                            const data::DatasetPtr& dataset, int64_t batch_size, uint64_t seed,
                            int64_t num_workers) {
  MOXING_CHECK(dataset != nullptr && dataset->size() > 0, "gan: the evaluation split is empty");
  const bool g_training = g.is_training(), d_training = d.is_training();
  g.eval();
  d.eval();
  NoGradGuard no_grad;
  data::DataLoaderOptions lo;
  lo.batch_size = batch_size;
  lo.num_workers = static_cast<int>(num_workers);
  data::DataLoader loader(dataset, lo);
  Tensor sums = zeros({7}, DType::f64);  // the sums of the seven metrics below
  uint64_t draw = 0;
  for (data::Batch& b : loader.epoch(0)) {
    const int64_t n = b.input.size(0);
    Tensor real = d.forward(b.input);  // (n)
    Tensor fake =
        d.forward(g.forward(noise_draw(n, g.latent_size(), seed ^ kValidationKey, draw++)));
    std::vector<Tensor> parts = {
        bce(real, 1.0, Reduction::sum),
        bce(fake, 0.0, Reduction::sum),
        bce(fake, 1.0, Reduction::sum),
        sum(sigmoid(real)),
        sum(sigmoid(fake)),
        sum(gt(real, 0.0).to(DType::f32)),
        sum(le(fake, 0.0).to(DType::f32)),
    };
    sums = add(sums, stack(parts, 0).to(DType::f64));
  }
  g.train(g_training);
  d.train(d_training);
  std::vector<double> v = sums.to_vector<double>();
  const auto n = static_cast<double>(dataset->size());
  for (double& x : v) x /= n;
  return Metrics{{"loss_discriminator", v[0] + v[1]},
                 {"loss_generator", v[2]},
                 {"loss", v[0] + v[1] + v[2]},
                 {"d_real", v[3]},
                 {"d_fake", v[4]},
                 {"accuracy_real", v[5]},
                 {"accuracy_fake", v[6]}};
}

class GanTask : public Task {
 public:
  explicit GanTask(const Config& config) : config_(config) {}

  void check_data_config() const override { (void)options(); }

  std::optional<nlohmann::json> data_fields() const override {
    return models::config_to_json(options());
  }

  nlohmann::json setup_data(Run& run) override {
    (void)run;
    data_ = load_gan_data(config_);
    MOXING_CHECK(data_.train->size() >= config_.data.batch_size,
                 "gan: the training set has {} images, fewer than one batch of {}",
                 data_.train->size(), config_.data.batch_size);
    data::DataLoaderOptions lo;
    lo.batch_size = config_.data.batch_size;
    lo.shuffle = true;
    lo.drop_last = true;  // every batch full: BatchNorm's statistics and the latents' shape
    lo.seed = static_cast<uint64_t>(config_.train.seed);
    lo.num_workers = static_cast<int>(config_.data.num_workers);
    loader_ = std::make_unique<data::DataLoader>(data_.train, lo);
    batches_ = EpochBatches::of_batches(loader_->num_batches(), config_.train.grad_accum);
    return data_fields_from_config();
  }

  nlohmann::json data_fields_from_config() const override {
    return {{"num_channels", 1}, {"image_size", 28}};
  }

  void configure(Run& run, models::Model model) override {
    generator_ = &generator_of(model);
    Generator init(static_cast<uint64_t>(config_.train.seed) ^ kDiscriminatorKey);
    models::Model disc =
        models::build_model(*model.family, model.config, discriminator_architecture(model), &init);
    discriminator_ = &disc.expect<models::ImageDiscriminator>(
        "an image discriminator (images (B,C,H,W) -> logits (B))");
    std::vector<Tensor> g_params = model.module->parameters();
    std::vector<Tensor> d_params = disc.module->parameters();
    // the generator first: a checkpoint folder is its model folder, what `moxing sample` loads
    run.add_model("generator", std::move(model));
    run.add_model("discriminator", std::move(disc));
    optim::ParamGroup d_group, g_group;
    d_group.params = std::move(d_params);
    g_group.params = std::move(g_params);
    run.add_optimizer("discriminator", "discriminator", {std::move(d_group)});
    run.add_optimizer("generator", "generator", {std::move(g_group)});
    const GanDataOptions o = options();
    fixed_noise_ = latent_noise(o.num_samples, generator_->latent_size(),
                                static_cast<uint64_t>(o.sample_seed));
    run.after_optimizer_step.push_back([this](Run& r) {
      if (r.step() % steps_per_epoch() == 0) write_samples(r, r.step() / steps_per_epoch());
    });
  }

  std::vector<std::vector<std::string>> update_phases() const override {
    return {{"discriminator"}, {"generator"}};
  }

  int64_t steps_per_epoch() const override { return batches_.steps_per_epoch(); }
  int64_t micro_batches(int64_t step) const override { return batches_.micro_batches(step); }

  StepOutput training_step(Run& run, int64_t step, int64_t micro) override {
    const int64_t b = config_.data.batch_size;
    const Tensor z = noise_draw(b, generator_->latent_size(),
                                static_cast<uint64_t>(config_.train.seed) ^ kNoiseKey,
                                static_cast<uint64_t>(step * config_.train.grad_accum + micro));
    if (run.phase() == 1) return generator_step(z);
    return discriminator_step(real_batch(step, micro), z);
  }

  // The generator phase: its backward reaches both models' weights, so both models' gradients
  // and optimizer state are counted; the discriminator phase keeps about as much alive (the
  // discriminator on two batches, the generator without gradients).
  std::optional<StepOutput> meta_step(Run& run) override {
    (void)run;
    return generator_step(empty({config_.data.batch_size, generator_->latent_size()}));
  }

  std::optional<Metrics> validate(Run& run) override {
    (void)run;
    if (data_.val == nullptr) return std::nullopt;
    return adversarial_metrics(*generator_, *discriminator_, data_.val,
                               config_.data.eval_batch_size,
                               static_cast<uint64_t>(config_.train.seed), config_.data.num_workers);
  }

  std::optional<Metrics> test(Run& run) override {
    if (data_.test == nullptr) return std::nullopt;
    Metrics m =
        adversarial_metrics(*generator_, *discriminator_, data_.test, config_.data.eval_batch_size,
                            static_cast<uint64_t>(config_.train.seed), config_.data.num_workers);
    nlohmann::json report(m);
    write_text_file_atomic(run.out_dir() + "/test_metrics.json", report.dump(2) + "\n");
    return m;
  }

  EvalReport evaluate(const LoadedRun& run, const std::string& data_path) override {
    Config config = run.config;
    if (!data_path.empty()) config.data.path = data_path;
    GanData data = load_gan_data(config);
    data::DatasetPtr ds = data.test != nullptr ? data.test : data.val;
    const std::string split = data.test != nullptr ? "test" : "val";
    MOXING_CHECK(ds != nullptr, "{} has neither a test nor a validation split", config.data.path);
    const std::string disc_dir = run.checkpoint_dir + "/discriminator";
    MOXING_CHECK(fs::exists(fs::path(disc_dir) / "config.json"),
                 "{} has no discriminator/ folder: the gan task's metrics need both models (a run "
                 "or checkpoint folder of `moxing train`)",
                 run.checkpoint_dir);
    models::Model disc = models::from_pretrained(disc_dir);
    Metrics m = adversarial_metrics(
        generator_of(run.model), disc.expect<models::ImageDiscriminator>("an image discriminator"),
        ds, config.data.eval_batch_size, static_cast<uint64_t>(config.train.seed),
        config.data.num_workers);
    EvalReport out;
    out.json = nlohmann::json(m);
    out.json["split"] = split;
    out.json["checkpoint"] = run.checkpoint_dir;
    out.text =
        fmt::format("{} on the {} split ({} images)\n", run.checkpoint_dir, split, ds->size());
    for (const auto& [k, v] : m) out.text += fmt::format("  {:<20} {:.4f}\n", k, v);
    return out;
  }

 private:
  GanDataOptions options() const {
    check_choice("[data] name", config_.data.name, {"fashion-mnist"});
    GanDataOptions o = config_.data.options<GanDataOptions>();
    MOXING_CHECK(o.num_samples > 0, "config: [data] num_samples must be > 0, got {}",
                 o.num_samples);
    return o;
  }

  // The real images of micro-batch `micro` of step `step` (B,1,28,28).
  Tensor real_batch(int64_t step, int64_t micro) {
    const int64_t epoch = batches_.epoch(step), index = batches_.index(step, micro);
    if (!range_ || range_epoch_ != epoch || next_index_ != index) {
      it_.reset();
      range_ = std::make_unique<data::EpochRange>(*loader_, epoch, index);
      range_epoch_ = epoch;
      it_.emplace(range_->begin());
    } else {
      ++*it_;
    }
    MOXING_CHECK(*it_ != range_->end(), "train: batch {} of epoch {} is past the data", index,
                 epoch + 1);
    next_index_ = index + 1;
    return (**it_).input;
  }

  // Phase 0: BCE(D(x), 1) + BCE(D(G(z)), 0) with G(z) made without gradients (PyTorch's
  // errD_real + errD_fake); sums D(x) and D(G(z)) for the log.
  StepOutput discriminator_step(const Tensor& real, const Tensor& z) {
    Tensor fake;
    {
      NoGradGuard no_grad;
      fake = generator_->forward(z);
    }
    Tensor real_logits = discriminator_->forward(real);  // (B)
    Tensor fake_logits = discriminator_->forward(fake);  // (B)
    StepOutput out;
    out.loss = add(bce(real_logits, 1.0), bce(fake_logits, 0.0));
    out.items = real.size(0);
    out.sums.emplace_back("d_real", sum(sigmoid(real_logits.detach())));
    out.sums.emplace_back("d_fake", sum(sigmoid(fake_logits.detach())));
    return out;
  }

  // Phase 1: BCE(D(G(z)), 1), the non-saturating generator loss, on the step's latents.
  StepOutput generator_step(const Tensor& z) {
    StepOutput out;
    out.loss = bce(discriminator_->forward(generator_->forward(z)), 1.0);
    out.items = z.size(0);
    return out;
  }

  // samples/epoch-N.png: the fixed latents' images as a grid, also a TensorBoard image.
  void write_samples(Run& run, int64_t epoch) {
    Tensor images;
    {
      const bool was_training = generator_->is_training();
      generator_->eval();
      NoGradGuard no_grad;
      images = generator_->forward(fixed_noise_);
      generator_->train(was_training);
    }
    Tensor grid = data::make_grid(images, 8);  // (H,W,C) u8
    const std::string png = data::encode_png(grid);
    fs::create_directories(fs::path(run.out_dir()) / "samples");
    write_text_file_atomic(fmt::format("{}/samples/epoch-{}.png", run.out_dir(), epoch), png);
    if (MetricsLogger* log = run.logger()) {
      log->add_image("samples", png, static_cast<int>(grid.size(0)), static_cast<int>(grid.size(1)),
                     static_cast<int>(grid.size(2)), run.step());
    }
  }

  const Config& config_;
  GanData data_;
  std::unique_ptr<data::DataLoader> loader_;
  EpochBatches batches_;
  models::ImageGenerator* generator_ = nullptr;
  models::ImageDiscriminator* discriminator_ = nullptr;
  Tensor fixed_noise_;
  std::unique_ptr<data::EpochRange> range_;
  std::optional<data::EpochRange::Iterator> it_;
  int64_t range_epoch_ = -1, next_index_ = -1;
};

std::unique_ptr<Task> make_gan(const Config& config) { return std::make_unique<GanTask>(config); }

}  // namespace

MOXING_REGISTER_TASK("gan", make_gan);

}  // namespace moxing::train
