// The image-classification task: Fashion-MNIST or an image folder, batches from a DataLoader
// whose order is fixed by (seed, epoch), cross-entropy, accuracy and the classification report.
#include "moxing/train/tasks/image_classification.h"

#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/data/dataloader.h"
#include "moxing/data/image_folder.h"
#include "moxing/data/mnist.h"
#include "moxing/io/checkpoint.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/reduction.h"
#include "moxing/train/epoch_batches.h"
#include "moxing/train/task.h"

namespace moxing::train {

namespace fs = std::filesystem;

ImageFolderOptions image_options(const DataConfig& config) {
  check_choice("[data] name", config.name, {"fashion-mnist", "imagefolder"});
  if (config.name == "fashion-mnist") {
    ImageFolderOptions o;
    o.normalize = config.options<FashionMnistOptions>().normalize;
    return o;
  }
  auto o = config.options<ImageFolderOptions>();
  MOXING_CHECK(o.image_size > 0, "config: [data] image_size must be > 0, got {}", o.image_size);
  MOXING_CHECK(o.channels == 1 || o.channels == 3, "config: [data] channels must be 1 or 3, got {}",
               o.channels);
  return o;
}

data::Transform input_transform(const DataConfig& config) {
  const ImageFolderOptions o = image_options(config);
  int64_t size = o.image_size;
  float mean = 0.5f, std = 0.5f;
  if (config.name == "fashion-mnist") {
    mean = data::kFashionMnistMean;
    std = data::kFashionMnistStd;
  }
  bool normalize = o.normalize;
  return [size, mean, std, normalize](const Tensor& image, Generator& gen) {
    Tensor x = image;
    if (x.dim() == 2 || x.size(0) != size || x.size(1) != size) {
      x = data::Resize(size, size)(x, gen);
    }
    x = data::ToTensor{}(x, gen);
    if (normalize) x = data::Normalize({mean}, {std})(x, gen);
    return x;
  };
}

DataSplits load_data(const Config& config) {
  const DataConfig& d = config.data;
  const ImageFolderOptions o = image_options(d);
  auto seed = static_cast<uint64_t>(config.train.seed);
  DataSplits out;
  data::DatasetPtr full;
  if (d.name == "fashion-mnist") {
    std::string dir = d.path.empty() ? data::kFashionMnistDir : d.path;
    data::MnistOptions train_opt;
    train_opt.normalize = o.normalize;
    full = std::make_shared<data::MnistDataset>(dir, train_opt);
    std::string test_images = dir + "/t10k-images-idx3-ubyte";
    if (fs::exists(test_images) || fs::exists(test_images + ".gz")) {
      data::MnistOptions test_opt = train_opt;
      test_opt.train = false;
      out.test = std::make_shared<data::MnistDataset>(dir, test_opt);
    }
    out.channels = 1;
    out.image_size = 28;
    out.class_names = data::fashion_mnist_classes();
  } else {
    MOXING_CHECK(!d.path.empty(), "config: [data] path is needed for imagefolder");
    data::Transform transform = input_transform(d);
    bool split = fs::is_directory(fs::path(d.path) / "train");
    std::string train_root = split ? (fs::path(d.path) / "train").string() : d.path;
    auto folder =
        std::make_shared<data::ImageFolder>(train_root, transform, static_cast<int>(o.channels));
    out.class_names = folder->classes();
    full = folder;
    if (split && fs::is_directory(fs::path(d.path) / "test")) {
      out.test = std::make_shared<data::ImageFolder>((fs::path(d.path) / "test").string(),
                                                     transform, static_cast<int>(o.channels));
    }
    out.channels = o.channels;
    out.image_size = o.image_size;
  }
  out.num_classes = static_cast<int64_t>(out.class_names.size());
  if (d.val_fraction > 0) {
    auto [train_part, val_part] = data::train_val_split(full, d.val_fraction, seed);
    out.train = train_part;
    out.val = val_part;
  } else {
    out.train = full;
  }
  return out;
}

EvalResult evaluate(nn::UnaryModule& model, const data::DatasetPtr& dataset, int64_t batch_size,
                    int64_t num_classes, int64_t num_workers) {
  MOXING_CHECK(dataset != nullptr && dataset->size() > 0, "evaluate: the dataset is empty");
  bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  data::DataLoaderOptions opt;
  opt.batch_size = batch_size;
  opt.num_workers = static_cast<int>(num_workers);
  data::DataLoader loader(dataset, opt);
  ClassificationMetrics metrics(num_classes, /*inputs_are_logits=*/true);
  double loss_sum = 0;
  for (data::Batch& b : loader.epoch(0)) {
    Tensor logits = model.forward(b.input);  // (B,K)
    loss_sum += cross_entropy(logits, b.target, Reduction::sum).to(DType::f64).item<double>();
    metrics.update(logits, b.target);
  }
  model.train(was_training);
  EvalResult r;
  r.report = metrics.compute();
  r.loss = loss_sum / static_cast<double>(r.report.num_samples);
  return r;
}

namespace {

nn::UnaryModule& classifier(const models::Model& m) {
  return m.expect<nn::UnaryModule>("an image classifier (inputs (B,C,H,W) -> logits (B,K))");
}

class ImageClassificationTask : public Task {
 public:
  ImageClassificationTask(const Config& config, std::optional<DataSplits> given)
      : config_(config), given_(std::move(given)) {}

  void check_data_config() const override {
    if (given_) return;
    (void)image_options(config_.data);
  }

  std::optional<nlohmann::json> data_fields() const override {
    if (given_) return std::nullopt;
    if (config_.data.name == "fashion-mnist") {
      return models::config_to_json(config_.data.options<FashionMnistOptions>());
    }
    return models::config_to_json(image_options(config_.data));
  }

  nlohmann::json setup_data(Run& run) override {
    (void)run;
    data_ = given_ ? *given_ : load_data(config_);
    MOXING_CHECK(data_.train != nullptr && data_.train->size() > 0,
                 "train: the training set is empty");
    data::DataLoaderOptions lo;
    lo.batch_size = config_.data.batch_size;
    lo.shuffle = true;
    lo.seed = static_cast<uint64_t>(config_.train.seed);
    lo.num_workers = static_cast<int>(config_.data.num_workers);
    loader_ = std::make_unique<data::DataLoader>(data_.train, lo);
    batches_ = EpochBatches::of_batches(loader_->num_batches(), config_.train.grad_accum);
    return {{"num_channels", data_.channels},
            {"image_size", data_.image_size},
            {"num_labels", data_.num_classes}};
  }

  void configure(Run& run, models::Model model) override {
    model_ = &classifier(model);
    Task::configure(run, std::move(model));
  }

  int64_t steps_per_epoch() const override { return batches_.steps_per_epoch(); }
  int64_t micro_batches(int64_t step) const override { return batches_.micro_batches(step); }

  StepOutput training_step(Run& run, int64_t step, int64_t micro) override {
    (void)run;
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
    data::Batch& b = **it_;
    next_index_ = index + 1;
    return step_on(b.input, b.target);
  }

  nlohmann::json data_fields_from_config() const override {
    const DataConfig& d = config_.data;
    if (d.name == "fashion-mnist") {
      return {{"num_channels", 1}, {"image_size", 28}, {"num_labels", 10}};
    }
    const ImageFolderOptions o = image_options(d);
    nlohmann::json out = {{"num_channels", o.channels}, {"image_size", o.image_size}};
    // the classes are the folders of the training images: counted, nothing read
    std::error_code ec;
    fs::path root = fs::is_directory(fs::path(d.path) / "train", ec) ? fs::path(d.path) / "train"
                                                                     : fs::path(d.path);
    if (!d.path.empty() && fs::is_directory(root, ec)) {
      int64_t classes = 0;
      for (const auto& entry : fs::directory_iterator(root, ec)) classes += entry.is_directory();
      if (classes > 0) out["num_labels"] = classes;
    }
    return out;
  }

  std::optional<StepOutput> meta_step(Run& run) override {
    (void)run;
    const DataConfig& d = config_.data;
    const ImageFolderOptions o = image_options(d);
    const int64_t size = o.image_size, channels = o.channels;
    return step_on(empty({d.batch_size, channels, size, size}), empty({d.batch_size}, DType::i64));
  }

  std::optional<Metrics> validate(Run& run) override {
    (void)run;
    if (data_.val == nullptr) return std::nullopt;
    EvalResult r = train::evaluate(*model_, data_.val, config_.data.eval_batch_size,
                                   data_.num_classes, config_.data.num_workers);
    return Metrics{{"loss", r.loss}, {"accuracy", r.report.accuracy}};
  }

  std::optional<Metrics> test(Run& run) override {
    if (data_.test == nullptr) return std::nullopt;
    EvalResult r = train::evaluate(*model_, data_.test, config_.data.eval_batch_size,
                                   data_.num_classes, config_.data.num_workers);
    nlohmann::json report = r.report.to_json();
    report["loss"] = r.loss;
    write_text_file_atomic(run.out_dir() + "/test_metrics.json", report.dump(2) + "\n");
    return Metrics{{"loss", r.loss}, {"accuracy", r.report.accuracy}};
  }

  nlohmann::json state() const override { return {{"class_names", data_.class_names}}; }

  EvalReport evaluate(const LoadedRun& run, const std::string& data_path) override {
    Config config = run.config;
    if (!data_path.empty()) config.data.path = data_path;
    DataSplits data = load_data(config);
    data::DatasetPtr ds = data.test != nullptr ? data.test : data.val;
    std::string split = data.test != nullptr ? "test" : "val";
    MOXING_CHECK(ds != nullptr, "{} has neither a test nor a validation split", config.data.path);
    int64_t num_labels = run.model.config.value("num_labels", int64_t{0});
    MOXING_CHECK(data.num_classes == num_labels,
                 "the data has {} classes but the model was trained on {}", data.num_classes,
                 num_labels);
    EvalResult r = train::evaluate(classifier(run.model), ds, config.data.eval_batch_size,
                                   num_labels, config.data.num_workers);
    std::vector<std::string> names = run.trainer_state.value("class_names", data.class_names);
    EvalReport out;
    out.json = r.report.to_json();
    out.json["loss"] = r.loss;
    out.json["split"] = split;
    out.json["checkpoint"] = run.checkpoint_dir;
    out.text = fmt::format("{} on the {} split ({} examples), loss {:.4f}\n\n", run.checkpoint_dir,
                           split, r.report.num_samples, r.loss) +
               r.report.to_table(names);
    return out;
  }

 private:
  // the loss and correct predictions of images (B,C,H,W) with their labels (B)
  StepOutput step_on(const Tensor& input, const Tensor& target) {
    Tensor logits = model_->forward(input);  // (B,K)
    StepOutput out;
    out.loss = cross_entropy(logits, target);
    out.items = input.size(0);
    out.sums.emplace_back("accuracy", correct(logits.detach(), target));
    return out;
  }

  // correct predictions of logits (B,K) against target (B), a 0-d tensor (no host read)
  static Tensor correct(const Tensor& logits, const Tensor& target) {
    return sum(eq(argmax(logits, 1), target).to(DType::f64));
  }

  const Config& config_;
  std::optional<DataSplits> given_;
  DataSplits data_;
  std::unique_ptr<data::DataLoader> loader_;
  EpochBatches batches_;
  nn::UnaryModule* model_ = nullptr;
  std::unique_ptr<data::EpochRange> range_;
  std::optional<data::EpochRange::Iterator> it_;
  int64_t range_epoch_ = -1, next_index_ = -1;
};

std::unique_ptr<Task> make_image_classification(const Config& config) {
  return std::make_unique<ImageClassificationTask>(config, std::nullopt);
}

}  // namespace

std::unique_ptr<Task> make_image_classification_task(const Config& config, DataSplits data) {
  return std::make_unique<ImageClassificationTask>(config, std::move(data));
}

MOXING_REGISTER_TASK("image-classification", make_image_classification);

}  // namespace moxing::train
