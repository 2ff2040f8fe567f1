// The training loop behind `moxing train` (fit): a config's model, data, optimizer and schedule,
// trained by steps with gradient accumulation and clipping, evaluated on the validation
// split, logged to metrics.jsonl (+ TensorBoard) and checkpointed so that a resumed run gives
// exactly the losses of an uninterrupted one (same seed and threads).
//
// Run folder: config.toml, metrics.jsonl, events.out.tfevents.*, checkpoints/step-N/, best/,
// final/, curves.png, test_metrics.json.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "moxing/data/dataset.h"
#include "moxing/data/image.h"
#include "moxing/nn/module.h"
#include "moxing/train/config.h"
#include "moxing/train/metrics.h"
#include "moxing/train/models.h"

namespace moxing::train {

/// The datasets of a run: examples are (input (C,H,W) f32, class i64 0-d). val and test may
/// be null.
struct DataSplits {
  data::DatasetPtr train, val, test;
  ModelShape shape;
  std::vector<std::string> class_names;
};

/// The splits [data] names: train/val from the training files (val_fraction, split with
/// [train] seed), test from the test files when there are some.
DataSplits load_data(const Config& config);

/// The transform that turns a decoded u8 (H,W,C) image into a model input (C,H,W) as the
/// config's dataset does (resize, to [0, 1], normalize): what `moxing predict` applies.
data::Transform input_transform(const DataConfig& config);

struct TrainOptions {
  std::string out_dir;
  /// Continue from latest_checkpoint(out_dir) (an error when there is none).
  bool resume = false;
  /// Progress bar (terminal) or lines on stderr, and notes on stderr.
  bool progress = true;
  bool tensorboard = true;
  /// > 0: stop as a signal would, after this step (checkpoint saved, no final/).
  int64_t stop_after_step = 0;
};

struct TrainSummary {
  int64_t steps = 0;
  double epochs = 0;  // epochs completed, fractional
  double seconds = 0;
  bool interrupted = false;
  std::optional<double> val_loss, val_accuracy, test_loss, test_accuracy;
  /// Language models: exp(val_loss), and the validation split's unigram entropy (the loss of
  /// a model that ignores context), which val_loss is compared with.
  std::optional<double> val_perplexity, baseline_loss;
  std::string best_metric;
  std::optional<double> best_value;
  int64_t best_step = 0;
  std::string out_dir;

  /// {"steps", "epochs", "seconds", "interrupted", "val_loss", "val_accuracy", "test_loss",
  /// "test_accuracy", "val_perplexity", "baseline_loss" (each when measured), "best":
  /// {"metric", "value", "step"}, "out_dir"}.
  nlohmann::json to_json() const;
};

/// Trains as the config says and writes the run folder. A non-finite loss (or gradient norm)
/// throws moxing::Error naming the step unless [train] skip_nonfinite, which skips that
/// step; no checkpoint is written after it.
TrainSummary fit(const Config& config, const DataSplits& data, const TrainOptions& options);

/// Loss (mean cross-entropy) and classification metrics of model on a dataset, in eval mode
/// without gradients.
struct EvalResult {
  double loss = 0;
  ClassificationReport report;
};
EvalResult evaluate(nn::UnaryModule& model, const data::DatasetPtr& dataset, int64_t batch_size,
                    int64_t num_classes, int64_t num_workers = 0);

/// A trained model loaded back: the checkpoint's config, model shape and class names.
struct LoadedModel {
  Config config;
  ModelShape shape;
  std::vector<std::string> class_names;
  std::shared_ptr<nn::Sequential> model;
  std::string checkpoint_dir;
};
/// path: a checkpoint folder (with trainer_state.json) or a run folder (its final/, else best/,
/// else its latest checkpoint).
LoadedModel load_trained_model(const std::string& path);

/// Asks a running fit() to save a checkpoint and return after the current step; what the
/// SIGINT/SIGTERM handlers do.
void request_stop();
bool stop_requested();
/// Clears a pending request (fit() does it when it starts).
void clear_stop_request();
/// SIGINT and SIGTERM call request_stop(); a second signal ends the process as usual.
void install_stop_signal_handlers();

}  // namespace moxing::train
