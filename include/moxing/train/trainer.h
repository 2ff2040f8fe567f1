// `moxing train`: fit() runs a config's task in the one training loop (task.h) and writes the
// run folder; load_run() loads a trained model back from a run or checkpoint folder.
//
// Run folder: config.toml, metrics.jsonl, events.out.tfevents.*, checkpoints/step-N/ (the newest
// [train] keep_checkpoints of them), best/, final/, curves.png, and what the task adds
// (test_metrics.json, data/). Every checkpoint folder is a model folder (config.json,
// model.safetensors, the task's files such as the tokenizer) plus optimizer.safetensors and
// trainer_state.json (step, every random stream, schedulers, config, best value).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "moxing/train/config.h"
#include "moxing/train/task.h"

namespace moxing::train {

struct TrainOptions {
  std::string out_dir;
  /// Continue from the latest complete checkpoint of out_dir (an error when there is none).
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
  /// Seconds spent in training steps (forward, backward, optimizer) by this process: without
  /// validation, checkpoints and data setup.
  double train_seconds = 0;
  bool interrupted = false;
  std::optional<double> val_loss, val_accuracy, test_loss, test_accuracy;
  /// Language models: exp(val_loss), and the validation split's unigram entropy (the loss of
  /// a model that ignores context), which val_loss is compared with.
  std::optional<double> val_perplexity, baseline_loss;
  /// Every metric of the last validation and of the test split.
  std::map<std::string, double> val_metrics, test_metrics;
  std::string best_metric;
  std::optional<double> best_value;
  int64_t best_step = 0;
  std::string out_dir;

  /// {"steps", "epochs", "seconds", "interrupted", "val_loss", "val_accuracy", "test_loss",
  /// "test_accuracy", "val_perplexity", "baseline_loss" (each when measured), "train_seconds",
  /// "val" and "test" (objects of every metric, when measured), "best":
  /// {"metric", "value", "step"}, "out_dir"}.
  nlohmann::json to_json() const;
};

/// Trains as the config says and writes the run folder. A non-finite loss (or gradient norm)
/// throws moxing::Error naming the step unless [train] skip_nonfinite, which skips that
/// step; no checkpoint is written after it.
TrainSummary fit(const Config& config, const TrainOptions& options);

/// A model folder, a checkpoint folder or a run folder (its final/, else best/, else its latest
/// complete checkpoint), with the config and trainer state of the run when there is one.
/// Checkpoints of older versions (no config.json) load too. The model is in eval mode.
LoadedRun load_run(const std::string& path);

/// The training config of a run, checkpoint or model folder, as memory estimates use it: the
/// run's config (defaults for the architecture's task when the folder has none) with [model]
/// pretrained naming the folder's model. Reads no weights.
Config training_config_of(const std::string& path);

/// Asks a running fit() to save a checkpoint and return after the current step; what the
/// SIGINT/SIGTERM handlers do.
void request_stop();
bool stop_requested();
/// Clears a pending request (fit() does it when it starts).
void clear_stop_request();
/// SIGINT and SIGTERM call request_stop(); a second signal ends the process as usual.
void install_stop_signal_handlers();

}  // namespace moxing::train
