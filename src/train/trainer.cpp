// The training loop: steps over DataLoader batches, evaluation, logging, checkpoints, resume.
#include "moxing/train/trainer.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/core/parallel.h"
#include "moxing/data/dataloader.h"
#include "moxing/data/image_folder.h"
#include "moxing/data/mnist.h"
#include "moxing/io/checkpoint.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/loss.h"
#include "moxing/optim/clip.h"
#include "moxing/optim/scheduler.h"
#include "moxing/train/checkpoint.h"
#include "moxing/train/logging.h"
#include "moxing/train/plot.h"
#include "moxing/train/progress.h"
#include "trainer_internal.h"

namespace moxing::train {

namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_stop_signal(int sig) {
  g_stop = 1;
  std::signal(sig, SIG_DFL);  // a second signal ends the process
}

using detail::Clock;
using detail::make_scheduler;
using detail::opt_number;
using detail::optimizer_hyper;
using detail::seconds_since;

nlohmann::json shape_json(const ModelShape& s) {
  return {{"channels", s.channels},
          {"height", s.height},
          {"width", s.width},
          {"num_classes", s.num_classes}};
}

}  // namespace

namespace detail {

optim::Hyper optimizer_hyper(const OptimConfig& c) {
  optim::Hyper h{{"lr", c.lr}, {"weight_decay", c.weight_decay}};
  if (c.name == "adam" || c.name == "adamw") {
    h["beta1"] = c.beta1;
    h["beta2"] = c.beta2;
    h["eps"] = c.eps;
  } else if (c.name == "sgd") {
    h["momentum"] = c.momentum;
    h["nesterov"] = c.nesterov ? 1.0 : 0.0;
  } else if (c.name == "rmsprop") {
    h["momentum"] = c.momentum;
    h["eps"] = c.eps;
  } else if (c.name == "adagrad") {
    h["eps"] = c.eps;
  }
  return h;
}

std::unique_ptr<optim::LRScheduler> make_scheduler(const ScheduleConfig& c, optim::Optimizer& opt,
                                                   int64_t total_steps) {
  if (c.name == "cosine") {
    return std::make_unique<optim::CosineWithWarmupLR>(opt, c.warmup_steps, total_steps);
  }
  if (c.name == "linear") {
    return std::make_unique<optim::LinearWithWarmupLR>(opt, c.warmup_steps, total_steps);
  }
  if (c.name == "step") return std::make_unique<optim::StepLR>(opt, c.step_size, c.gamma);
  if (c.name == "exponential") return std::make_unique<optim::ExponentialLR>(opt, c.gamma);
  int64_t warmup = c.warmup_steps;  // "constant" (Hugging Face's constant_with_warmup)
  return std::make_unique<optim::LambdaLR>(opt, [warmup](int64_t t) {
    return t < warmup ? static_cast<double>(t) / static_cast<double>(warmup) : 1.0;
  });
}

nlohmann::json resume_latest(const std::string& out, nn::Module& model, optim::Optimizer& opt,
                             optim::LRScheduler& sched, const nlohmann::json& config,
                             RunPosition& pos,
                             const std::function<void(const std::string&)>& note) {
  auto latest = latest_checkpoint(out);
  MOXING_CHECK(latest.has_value(), "--resume {}: no checkpoint in {}/checkpoints", out, out);
  nlohmann::json st = load_checkpoint(*latest, model, &opt);
  pos.step = st.at("step").get<int64_t>();
  sched.load_state_dict(st.at("scheduler"));
  set_generator_state(default_generator(), st.at("generators").at("default"));
  if (!st.at("best").at("value").is_null()) pos.best = st.at("best").at("value").get<double>();
  pos.best_step = st.at("best").at("step").get<int64_t>();
  pos.prior_seconds = st.value("seconds", 0.0);
  pos.last_saved_step = pos.step;
  pos.last_good_checkpoint = *latest;
  if (st.contains("config") && st.at("config") != config) {
    note("note: the config differs from the checkpoint's; the resumed run may not match");
  }
  return st;
}

}  // namespace detail

void request_stop() { g_stop = 1; }
bool stop_requested() { return g_stop != 0; }
void clear_stop_request() { g_stop = 0; }

void install_stop_signal_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

data::Transform input_transform(const DataConfig& config) {
  int64_t size = config.image_size;
  float mean = 0.5f, std = 0.5f;
  if (config.name == "fashion-mnist") {
    size = 28;
    mean = data::kFashionMnistMean;
    std = data::kFashionMnistStd;
  }
  bool normalize = config.normalize;
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
  auto seed = static_cast<uint64_t>(config.train.seed);
  DataSplits out;
  data::DatasetPtr full;
  if (d.name == "fashion-mnist") {
    std::string dir = d.path.empty() ? data::kFashionMnistDir : d.path;
    data::MnistOptions train_opt;
    train_opt.normalize = d.normalize;
    full = std::make_shared<data::MnistDataset>(dir, train_opt);
    std::string test_images = dir + "/t10k-images-idx3-ubyte";
    if (fs::exists(test_images) || fs::exists(test_images + ".gz")) {
      data::MnistOptions test_opt = train_opt;
      test_opt.train = false;
      out.test = std::make_shared<data::MnistDataset>(dir, test_opt);
    }
    out.shape = {1, 28, 28, 10};
    out.class_names = data::fashion_mnist_classes();
  } else {
    MOXING_CHECK(!d.path.empty(), "config: [data] path is needed for imagefolder");
    DataConfig resized = d;
    resized.name = "imagefolder";
    data::Transform transform = input_transform(resized);
    bool split = fs::is_directory(fs::path(d.path) / "train");
    std::string train_root = split ? (fs::path(d.path) / "train").string() : d.path;
    auto folder =
        std::make_shared<data::ImageFolder>(train_root, transform, static_cast<int>(d.channels));
    out.class_names = folder->classes();
    full = folder;
    if (split && fs::is_directory(fs::path(d.path) / "test")) {
      out.test = std::make_shared<data::ImageFolder>((fs::path(d.path) / "test").string(),
                                                     transform, static_cast<int>(d.channels));
    }
    out.shape = {d.channels, d.image_size, d.image_size,
                 static_cast<int64_t>(out.class_names.size())};
  }
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

nlohmann::json TrainSummary::to_json() const {
  nlohmann::json j = {
      {"steps", steps}, {"epochs", epochs}, {"seconds", seconds}, {"interrupted", interrupted}};
  if (val_loss) j["val_loss"] = *val_loss;
  if (val_accuracy) j["val_accuracy"] = *val_accuracy;
  if (test_loss) j["test_loss"] = *test_loss;
  if (test_accuracy) j["test_accuracy"] = *test_accuracy;
  if (val_perplexity) j["val_perplexity"] = *val_perplexity;
  if (baseline_loss) j["baseline_loss"] = *baseline_loss;
  j["best"] = {{"metric", best_metric}, {"value", opt_number(best_value)}, {"step", best_step}};
  j["out_dir"] = out_dir;
  return j;
}

TrainSummary fit(const Config& config, const DataSplits& data, const TrainOptions& options) {
  config.validate();
  const TrainLoopConfig& tc = config.train;
  MOXING_CHECK(!options.out_dir.empty(), "train: no output folder given");
  MOXING_CHECK(data.train != nullptr && data.train->size() > 0, "train: the training set is empty");
  clear_stop_request();
  Clock::time_point start = Clock::now();
  if (tc.threads > 0) set_num_threads(static_cast<int>(tc.threads));
  const std::string out = options.out_dir;
  fs::create_directories(out);
  write_text_file_atomic(out + "/config.toml", config.to_toml());
  auto note = [&](const std::string& text) {
    if (options.progress) std::cerr << text << "\n";
  };

  auto seed = static_cast<uint64_t>(tc.seed);
  Generator init_gen(seed);
  auto model = make_model(config.model, data.shape, &init_gen);
  manual_seed(seed);
  auto opt =
      optim::make_optimizer(config.optim.name, model->parameters(), optimizer_hyper(config.optim));

  data::DataLoaderOptions lo;
  lo.batch_size = config.data.batch_size;
  lo.shuffle = true;
  lo.seed = seed;
  lo.num_workers = static_cast<int>(config.data.num_workers);
  data::DataLoader loader(data.train, lo);
  const int64_t num_batches = loader.num_batches();
  const int64_t steps_per_epoch = (num_batches + tc.grad_accum - 1) / tc.grad_accum;
  const int64_t total_steps = tc.steps > 0 ? tc.steps : tc.epochs * steps_per_epoch;
  const int64_t total_epochs = (total_steps + steps_per_epoch - 1) / steps_per_epoch;
  auto sched = make_scheduler(config.schedule, *opt, total_steps);

  const bool higher_is_better = tc.best_metric == "val/accuracy";
  int64_t epoch = 0, batch = 0;
  detail::RunPosition pos;
  if (options.resume) {
    nlohmann::json st =
        detail::resume_latest(out, *model, *opt, *sched, config.to_json(), pos, note);
    epoch = st.at("epoch").get<int64_t>();
    batch = st.at("batch").get<int64_t>();
    note(fmt::format("resuming from {} (step {}, epoch {}, batch {})", pos.last_good_checkpoint,
                     pos.step, epoch + 1, batch));
  }
  int64_t& step = pos.step;
  std::optional<double>& best = pos.best;
  int64_t& best_step = pos.best_step;
  const double prior_seconds = pos.prior_seconds;
  int64_t& last_saved_step = pos.last_saved_step;
  std::string& last_good_checkpoint = pos.last_good_checkpoint;

  if (options.resume) drop_metrics_after(out, step);
  MetricsLogger logger(out, options.tensorboard);
  TrainSummary summary;
  summary.best_metric = tc.best_metric;
  summary.out_dir = out;

  auto elapsed = [&] { return prior_seconds + seconds_since(start); };
  auto state_json = [&] {
    return nlohmann::json{
        {"step", step},
        {"epoch", epoch},
        {"batch", batch},
        {"total_steps", total_steps},
        {"generators", {{"default", generator_state(default_generator())}}},
        {"scheduler", sched->state_dict()},
        {"config", config.to_json()},
        {"model_shape", shape_json(data.shape)},
        {"class_names", data.class_names},
        {"best", {{"metric", tc.best_metric}, {"value", opt_number(best)}, {"step", best_step}}},
        {"seconds", elapsed()}};
  };
  auto save_step_checkpoint = [&] {
    if (last_saved_step == step) return;
    std::string dir = fmt::format("{}/checkpoints/step-{}", out, step);
    save_checkpoint(dir, *model, opt.get(), state_json());
    last_saved_step = step;
    last_good_checkpoint = dir;
  };
  double epoch_progress =
      static_cast<double>(epoch) + static_cast<double>(batch) / static_cast<double>(num_batches);
  // the 1-based epoch the last step's batches came from: the "epoch" of log records
  int64_t log_epoch = std::max<int64_t>(1, batch > 0 ? epoch + 1 : epoch);
  auto run_eval = [&](const data::DatasetPtr& ds, const std::string& split) {
    EvalResult r = evaluate(*model, ds, config.data.eval_batch_size, data.shape.num_classes,
                            config.data.num_workers);
    logger.log({{"step", step},
                {"epoch", log_epoch},
                {"split", split},
                {"loss", r.loss},
                {"accuracy", r.report.accuracy},
                {"lr", sched->get_last_lr().at(0)},
                {"seconds", elapsed()}});
    return r;
  };
  int64_t last_eval_step = -1;
  auto validate_now = [&] {
    if (data.val == nullptr || last_eval_step == step) return;
    last_eval_step = step;
    EvalResult r = run_eval(data.val, "val");
    summary.val_loss = r.loss;
    summary.val_accuracy = r.report.accuracy;
    double value = higher_is_better ? r.report.accuracy : r.loss;
    if (!best || (higher_is_better ? value > *best : value < *best)) {
      best = value;
      best_step = step;
      save_checkpoint(out + "/best", *model, nullptr, state_json());
    }
  };

  // running sums over the log window
  double win_loss = 0, win_correct = 0;
  int64_t win_batches = 0, win_samples = 0;
  Clock::time_point win_start = Clock::now();
  bool stopping = false;
  model->train();

  while (step < total_steps && !stopping) {
    int64_t epoch_steps = std::min(steps_per_epoch, total_steps - epoch * steps_per_epoch);
    std::optional<Progress> progress;
    if (options.progress) {
      progress.emplace(epoch_steps, fmt::format("epoch {}/{}", epoch + 1, total_epochs),
                       tc.log_every);
    }
    int64_t micro = 0;
    bool group_nonfinite = false;
    double group_loss = 0;
    int64_t group_samples = 0;
    double group_correct = 0;
    for (data::Batch& b : loader.epoch(epoch, batch)) {
      const int64_t bsz = b.input.size(0);
      Tensor logits = model->forward(b.input);  // (B,K)
      Tensor loss = cross_entropy(logits, b.target);
      double loss_value = loss.to(DType::f64).item<double>();
      if (!std::isfinite(loss_value)) {
        group_nonfinite = true;
      } else {
        (tc.grad_accum > 1 ? loss * (1.0 / static_cast<double>(tc.grad_accum)) : loss).backward();
        group_loss += loss_value;
        group_correct += accuracy(logits.detach(), b.target) * static_cast<double>(bsz);
      }
      group_samples += bsz;
      ++micro;
      batch = b.index + 1;
      if (micro < tc.grad_accum && batch < num_batches) continue;

      // one optimizer step over the `micro` batches just seen
      double grad_norm = 0;
      if (!group_nonfinite && tc.clip_grad_norm > 0) {
        grad_norm = optim::clip_grad_norm_(model->parameters(), tc.clip_grad_norm);
        if (!std::isfinite(grad_norm)) group_nonfinite = true;
      }
      ++step;
      if (group_nonfinite) {
        std::string what = fmt::format(
            "non-finite loss or gradient at step {} (epoch {}, batch {})", step, epoch + 1, batch);
        MOXING_CHECK(tc.skip_nonfinite,
                     "{}; training stopped, no checkpoint written after it (last good "
                     "checkpoint: {}); set [train] skip_nonfinite = true to skip such steps",
                     what, last_good_checkpoint.empty() ? "none" : last_good_checkpoint);
        note(what + ": step skipped");
        opt->zero_grad();
      } else {
        opt->step();
        opt->zero_grad();
      }
      sched->step();
      const double lr = sched->get_last_lr().at(0);
      if (!group_nonfinite) {
        win_loss += group_loss / static_cast<double>(micro);
        win_correct += group_correct;
        win_batches += 1;
      }
      win_samples += group_samples;
      const int64_t step_samples = group_samples;
      micro = 0;
      group_nonfinite = false;
      group_loss = group_correct = 0;
      group_samples = 0;

      bool epoch_end = batch >= num_batches;
      log_epoch = epoch + 1;
      if (epoch_end) {
        ++epoch;
        batch = 0;
      }
      epoch_progress = static_cast<double>(epoch) +
                       static_cast<double>(batch) / static_cast<double>(num_batches);
      if (progress) {
        int64_t in_epoch = epoch_end ? epoch_steps : (batch + tc.grad_accum - 1) / tc.grad_accum;
        progress->update(std::min(in_epoch, epoch_steps),
                         win_batches > 0 ? win_loss / static_cast<double>(win_batches) : NAN, lr,
                         step_samples);
      }
      bool last = step >= total_steps;
      stopping =
          stop_requested() || (options.stop_after_step > 0 && step >= options.stop_after_step);
      if (step % tc.log_every == 0 || last || epoch_end || stopping) {
        if (win_batches > 0) {
          double secs = seconds_since(win_start);
          logger.log({{"step", step},
                      {"epoch", log_epoch},
                      {"split", "train"},
                      {"loss", win_loss / static_cast<double>(win_batches)},
                      {"accuracy", win_correct / static_cast<double>(win_samples)},
                      {"lr", lr},
                      {"samples_per_s", static_cast<double>(win_samples) / std::max(secs, 1e-9)},
                      {"seconds", elapsed()}});
        }
        win_loss = win_correct = 0;
        win_batches = win_samples = 0;
      }
      if ((tc.eval_every > 0 && step % tc.eval_every == 0) || (tc.eval_every == 0 && epoch_end) ||
          last) {
        validate_now();
      }
      if ((tc.checkpoint_every > 0 && step % tc.checkpoint_every == 0) ||
          (tc.checkpoint_every == 0 && epoch_end) || last || stopping) {
        save_step_checkpoint();
      }
      if (win_samples == 0) win_start = Clock::now();  // the next window starts now
      if (epoch_end || last || stopping) break;
    }
    if (progress) progress->finish();
    if (batch >= num_batches) {  // an epoch whose batches were all consumed before a resume
      ++epoch;
      batch = 0;
    }
  }

  summary.steps = step;
  summary.epochs = epoch_progress;
  summary.interrupted = step < total_steps;
  if (summary.interrupted) {
    save_step_checkpoint();
    note(fmt::format("stopped at step {}; checkpoint {}; continue with --resume {}", step,
                     last_good_checkpoint, out));
  } else {
    validate_now();
    save_step_checkpoint();
    save_checkpoint(out + "/final", *model, opt.get(), state_json());
    if (data.test != nullptr) {
      EvalResult r = run_eval(data.test, "test");
      summary.test_loss = r.loss;
      summary.test_accuracy = r.report.accuracy;
      nlohmann::json report = r.report.to_json();
      report["loss"] = r.loss;
      write_text_file_atomic(out + "/test_metrics.json", report.dump(2) + "\n");
    }
  }
  try {
    plot_curves_from_jsonl(logger.path(), out + "/curves.png");
  } catch (const Error& e) {
    note(fmt::format("note: curves.png not written: {}", e.what()));
  }
  summary.best_value = best;
  summary.best_step = best_step;
  summary.seconds = elapsed();
  return summary;
}

LoadedModel load_trained_model(const std::string& path) {
  std::string dir = path;
  if (!fs::exists(fs::path(dir) / "trainer_state.json")) {
    if (fs::exists(fs::path(path) / "final" / "trainer_state.json")) {
      dir = (fs::path(path) / "final").string();
    } else if (fs::exists(fs::path(path) / "best" / "trainer_state.json")) {
      dir = (fs::path(path) / "best").string();
    } else {
      auto latest = latest_checkpoint(path);
      MOXING_CHECK(latest.has_value(),
                   "{} is neither a checkpoint (trainer_state.json) nor a run folder with final/, "
                   "best/ or checkpoints/",
                   path);
      dir = *latest;
    }
  }
  nlohmann::json st;
  try {
    st = nlohmann::json::parse(read_text_file(dir + "/trainer_state.json"));
  } catch (const nlohmann::json::exception& e) {
    fail("{}/trainer_state.json: not valid JSON ({})", dir, e.what());
  }
  MOXING_CHECK(
      st.contains("config") && st.contains("model_shape"),
      "{}/trainer_state.json has no config or model_shape: not a `moxing train` checkpoint", dir);
  LoadedModel m;
  m.config = Config::from_json(st.at("config"));
  const auto& s = st.at("model_shape");
  m.shape = {s.at("channels").get<int64_t>(), s.at("height").get<int64_t>(),
             s.at("width").get<int64_t>(), s.at("num_classes").get<int64_t>()};
  m.class_names = st.value("class_names", std::vector<std::string>{});
  m.model = make_model(m.config.model, m.shape);
  load_checkpoint(dir, *m.model, nullptr);
  m.model->eval();
  m.checkpoint_dir = dir;
  return m;
}

}  // namespace moxing::train
