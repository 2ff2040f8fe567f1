// Training-run configuration read from TOML: [model], [data], [optim], [schedule], [train].
// Every section is a struct whose visit(f) lists its keys, so parsing, `--set` overrides,
// error messages (which list a section's valid keys) and writing the resolved config back to
// TOML share one table of fields.
#pragma once

#include <fmt/format.h>
#include <cstdint>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moxing/core/error.h"
#include "moxing/models/config_fields.h"

namespace moxing::train {

/// [model]: name is a registered model family or alias ("mlp", "cnn", "gpt2" alias "gpt", ...:
/// models::families()); pretrained is a model folder to start from (its config.json replaces the
/// family's defaults and its weights are loaded; tensors it lacks, such as a new head, are
/// freshly initialized and reported). Every other key is a field of the family's config table,
/// with Hugging Face's names (n_layer, n_embd, ... for gpt2; hidden for mlp; channels,
/// kernel_size, hidden for cnn), checked against the family when the config is validated: an
/// unknown key is an error listing the family's keys. Fields the task fills from the data
/// (vocab_size, num_labels, ...) cannot be set here.
struct ModelConfig {
  std::string name = "mlp";
  std::string pretrained;
  /// The family's keys as given (JSON values of the TOML ones).
  nlohmann::json fields = nlohmann::json::object();

  /// The family's whole field table: defaults filled and shorthands expanded (without the keys
  /// the data fills). Errors name the key and list the valid ones.
  nlohmann::json resolved(const std::string& where = "config") const;
  /// Keys valid in a TOML [model] section of this family: name, pretrained, the family's
  /// fields except those filled from data, its shorthands.
  std::vector<std::string> valid_keys() const;
};

/// [data]: the keys every data source has (name, path, val_fraction, batch sizes, workers) are
/// fields here; every other key belongs to the data source: the task that reads [data] name
/// declares it in a table of its own (a struct with visit(f), read by options<C>()), so a new
/// data source adds its keys beside its loader and nothing here. Unknown keys are errors that
/// list the source's valid keys. The sources and their keys:
///   "fashion-mnist" (image-classification): normalize.
///   "imagefolder" (image-classification): image_size, channels, normalize.
///   "text" (causal-lm): files, format, tokenizer, vocab_size, invalid_utf8, text_column.
///   "text" (masked-lm): those, with max_length, mlm_probability, truncate.
///   "csv" (sequence-classification): tokenizer, text_column, text_pair_column, label_column,
///   labels, class_weights, max_length, truncate.
/// (include/moxing/train/tasks/*.h, lm_data.h and text_data.h document each key.) The validation
/// split is val_fraction of the training set, drawn with [train] seed, where the data has none.
struct DataConfig {
  std::string name = "fashion-mnist";
  std::string path;
  double val_fraction = 0.1;
  int64_t batch_size = 128;
  int64_t eval_batch_size = 1000;
  int64_t num_workers = 0;
  /// The data source's own keys as given (JSON values of the TOML ones).
  nlohmann::json fields = nlohmann::json::object();

  template <class F>
  void visit(F&& f) {
    f("name", name);
    f("path", path);
    f("val_fraction", val_fraction);
    f("batch_size", batch_size);
    f("eval_batch_size", eval_batch_size);
    f("num_workers", num_workers);
  }

  /// The source's keys read into C (a struct whose visit(f) lists them with their defaults).
  /// A key of the wrong type, or one that is neither common nor C's, is an error naming it and
  /// listing the valid keys. (A config written before the sources had tables of their own
  /// holds every source's keys: those of other sources are then ignored.)
  template <class C>
  C options() const;
};

/// name: "sgd", "adam", "adamw", "rmsprop" or "adagrad" (optim::make_optimizer); the keys
/// an optimizer does not use (beta1 for SGD, momentum for Adam) are ignored.
struct OptimConfig {
  std::string name = "adam";
  double lr = 1e-3;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double momentum = 0.0;
  bool nesterov = false;

  template <class F>
  void visit(F&& f) {
    f("name", name);
    f("lr", lr);
    f("weight_decay", weight_decay);
    f("beta1", beta1);
    f("beta2", beta2);
    f("eps", eps);
    f("momentum", momentum);
    f("nesterov", nesterov);
  }
};

/// Stepped once per optimizer step. name "constant" (linear warmup, then lr), "cosine" and
/// "linear" (warmup, then decay to 0 at the last step; Hugging Face's schedules), "step"
/// (lr * gamma every step_size steps), "exponential" (lr * gamma each step).
struct ScheduleConfig {
  std::string name = "constant";
  int64_t warmup_steps = 0;
  int64_t step_size = 1000;
  double gamma = 0.1;

  template <class F>
  void visit(F&& f) {
    f("name", name);
    f("warmup_steps", warmup_steps);
    f("step_size", step_size);
    f("gamma", gamma);
  }
};

/// The loop. steps > 0 overrides epochs. A step is one optimizer step over grad_accum
/// batches. eval_every / checkpoint_every count steps; 0 means at the end of every epoch.
/// clip_grad_norm 0 disables clipping; threads 0 keeps the current thread count.
/// best_metric: "val/<metric>" of a metric the task's validation reports ("val/accuracy",
/// "val/f1_macro", ...): higher is better, except for loss, perplexity, mse and mae.
struct TrainLoopConfig {
  int64_t epochs = 10;
  int64_t steps = 0;
  int64_t eval_every = 0;
  int64_t checkpoint_every = 0;
  int64_t grad_accum = 1;
  double clip_grad_norm = 0.0;
  int64_t seed = 0;
  int64_t threads = 0;
  int64_t log_every = 50;
  bool skip_nonfinite = false;
  std::string best_metric = "val/accuracy";
  /// A registered task ("image-classification", "causal-lm", ...); empty: the task of the
  /// model family's architecture.
  std::string task;
  /// Step checkpoints kept in checkpoints/ (the newest; best/ and final/ are kept besides).
  int64_t keep_checkpoints = 3;

  template <class F>
  void visit(F&& f) {
    f("epochs", epochs);
    f("steps", steps);
    f("eval_every", eval_every);
    f("checkpoint_every", checkpoint_every);
    f("grad_accum", grad_accum);
    f("clip_grad_norm", clip_grad_norm);
    f("seed", seed);
    f("threads", threads);
    f("log_every", log_every);
    f("skip_nonfinite", skip_nonfinite);
    f("best_metric", best_metric);
    f("task", task);
    f("keep_checkpoints", keep_checkpoints);
  }
};

struct Config {
  ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  ScheduleConfig schedule;
  TrainLoopConfig train;

  /// Parses TOML text; `name` (a file name) is used in errors. Absent keys keep their
  /// defaults; unknown sections or keys and wrong types are errors that list the valid ones.
  static Config from_toml(const std::string& text, const std::string& name = "config");
  static Config from_file(const std::string& path);

  /// Applies "section.key=value"; value is read as TOML (5, 1e-3, true, [64, 32], "x"),
  /// and as a plain string when it is not TOML (name=cnn). On error the config is unchanged.
  void set(const std::string& assignment);
  /// Checks ranges and names (batch_size > 0, val_fraction in [0, 1), the model family and its
  /// keys, the task and its [data] ...).
  void validate() const;

  /// Every key of every section, as TOML (what OUT/config.toml holds).
  std::string to_toml() const;
  nlohmann::json to_json() const;
  static Config from_json(const nlohmann::json& j);
};

/// Throws "config: <what> '<value>' is not known (valid: ...)" unless value is one of valid.
void check_choice(const std::string& what, const std::string& value,
                  const std::vector<std::string>& valid);

namespace detail {
/// True when fields hold the keys every [data] section had before sources had tables of their own.
bool legacy_data_fields(const nlohmann::json& fields);
}  // namespace detail

template <class C>
C DataConfig::options() const {
  nlohmann::json unknown = nlohmann::json::object();
  C c = models::config_from_json<C>(fields, "config: [data]", &unknown);
  if (unknown.empty() || detail::legacy_data_fields(fields)) return c;
  std::vector<std::string> valid;
  DataConfig common;
  common.visit([&](const char* k, auto&) { valid.emplace_back(k); });
  for (const std::string& k : models::config_keys<C>()) valid.push_back(k);
  fail("config: unknown key '{}' in [data] for {} (valid: {})", unknown.items().begin().key(), name,
       fmt::join(valid, ", "));
}

}  // namespace moxing::train
