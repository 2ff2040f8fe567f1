// Tasks and the one training loop. A task (image classification, causal LM, ...) supplies what
// differs: its data, the step (loss and outputs of a micro-batch), validation metrics and what
// `moxing eval` reports; the loop (fit) owns everything else for every task: gradient
// accumulation, clipping, non-finite steps, logging (metrics.jsonl, TensorBoard, progress),
// evaluation cadence, checkpoints of every named model, optimizer and random stream, bit-exact
// resume, Ctrl-C, and hooks for what later wraps the loop (all-reduce, pruning masks, privacy).
// Like PyTorch Lightning's training_step / configure_optimizers. A task registers itself by
// name (MOXING_REGISTER_TASK) from src/train/tasks/<task>.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/models/family.h"
#include "moxing/optim/optimizer.h"
#include "moxing/optim/scheduler.h"
#include "moxing/train/config.h"

namespace moxing {
class MetricsLogger;
}

namespace moxing::train {

/// Named metric values ("loss", "accuracy", "perplexity", ...).
using Metrics = std::map<std::string, double>;

/// One micro-batch's result.
struct StepOutput {
  /// Scalar loss, backpropagated by the loop (scaled by 1/grad_accum).
  Tensor loss;
  /// Samples or tokens in the micro-batch (throughput, and the divisor of sums).
  int64_t items = 0;
  /// Per-micro-batch sums the loop adds up over a log window and divides by the window's items
  /// (e.g. {"accuracy", correct predictions}). Tensors: nothing is read back per micro-batch.
  std::vector<std::pair<std::string, Tensor>> sums;
};

/// An optimizer of a run with its scheduler and the names of its parameters (in the
/// optimizer's index order: how its state is mapped to the model's file layout).
struct RunOptimizer {
  std::string name;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::LRScheduler> scheduler;
  std::vector<std::string> param_names;
  /// The model whose parameters it updates (for weight rules and clipping).
  std::string model;
};

class Task;

/// What the loop offers a task: the config, the run folder, the named models, optimizers and
/// random streams that checkpoints hold, notes for the user, and the hooks.
class Run {
 public:
  Run(const Config& config, std::string out_dir, bool verbose);

  const Config& config() const { return config_; }
  const std::string& out_dir() const { return out_dir_; }
  /// Prints a line on stderr (when the run is verbose).
  void note(const std::string& text) const;
  /// True when the run prints notes and progress.
  bool verbose() const { return verbose_; }

  /// Adds a model; every checkpoint saves it. The first is the run's model: a checkpoint
  /// folder is its model folder (config.json, model.safetensors); others go to <name>/.
  void add_model(const std::string& name, models::Model model);
  models::Model& model(const std::string& name = "model");
  const std::vector<std::pair<std::string, models::Model>>& models() const { return models_; }

  /// Adds an optimizer over groups of the named model's parameters (from [optim]); the loop
  /// gives it the [schedule] scheduler over the run's total steps.
  optim::Optimizer& add_optimizer(const std::string& name, const std::string& model,
                                  std::vector<optim::ParamGroup> groups);
  std::vector<RunOptimizer>& optimizers() { return optimizers_; }

  /// A random stream saved and restored with every checkpoint ("default" is the global
  /// generator, which dropout draws from). Created from the seed on first use.
  Generator& generator(const std::string& name);
  const std::map<std::string, Generator*>& generators() const { return generators_; }

  /// The optimizer step about to run (0-based) and the run's length.
  int64_t step() const { return step_; }
  /// The update phase of the step being run (0-based, see Task::update_phases).
  int64_t phase() const { return phase_; }
  int64_t total_steps() const { return total_steps_; }

  /// The run's log (metrics.jsonl and TensorBoard), for what a task logs besides metrics, such
  /// as images; null until the loop opens it (after configure and any resume).
  MetricsLogger* logger() const { return logger_; }

  /// Hooks: after the micro-batches' backward (before clipping), after each optimizer step,
  /// and at each train log record (which the hook may extend).
  std::vector<std::function<void(Run&)>> after_backward, after_optimizer_step;
  std::vector<std::function<void(Run&, nlohmann::json& record)>> on_log;

 private:
  friend class Loop;
  const Config& config_;
  std::string out_dir_;
  bool verbose_;
  std::vector<std::pair<std::string, models::Model>> models_;
  std::vector<RunOptimizer> optimizers_;
  std::map<std::string, Generator*> generators_;
  std::map<std::string, std::unique_ptr<Generator>> own_generators_;
  int64_t step_ = 0, total_steps_ = 0, phase_ = 0;
  MetricsLogger* logger_ = nullptr;
};

/// A report of `moxing eval`: JSON for programs and text for people.
struct EvalReport {
  nlohmann::json json;
  std::string text;
};

/// A model loaded back from a run or checkpoint folder, with the run's config and state.
struct LoadedRun {
  Config config;
  nlohmann::json trainer_state;  ///< empty for a plain model folder
  std::string checkpoint_dir;
  std::string run_dir;  ///< the run folder holding the checkpoint, when there is one
  models::Model model;
};

class Task {
 public:
  virtual ~Task() = default;

  /// Checks the config's [data] keys without reading any data (Config::validate calls it; an
  /// estimate of a model folder, which has no [data], does not): the data source's own keys
  /// are read with config.data.options<C>() of the task's table C for that source, which
  /// refuses keys that are not the source's.
  virtual void check_data_config() const {}
  /// The data source's own [data] keys with their defaults filled (what config.toml and
  /// trainer_state.json record): models::config_to_json of the task's table. nullopt (the
  /// default): the keys as given.
  virtual std::optional<nlohmann::json> data_fields() const { return std::nullopt; }
  /// Loads or prepares the data (may write files into the run folder on the first run and
  /// reuse them on resume) and returns what the model config takes from it, e.g.
  /// {"vocab_size": ...} or {"num_labels": ..., "num_channels": ..., "image_size": ...}.
  virtual nlohmann::json setup_data(Run& run) = 0;
  /// Adds the models and optimizers. The default adds `model` as "model" and one optimizer
  /// "optimizer" from [optim] over all of its parameters.
  virtual void configure(Run& run, models::Model model);

  /// Optimizer steps in one pass over the training data (called after configure()).
  virtual int64_t steps_per_epoch() const = 0;
  /// Micro-batches of step (0-based): fewer than grad_accum at the end of an epoch; 0 (the
  /// default) means grad_accum.
  virtual int64_t micro_batches(int64_t step) const;
  /// The loss and sums of micro-batch `micro` of step `step`; the same (step, micro) gives the
  /// same batch, so a resumed run repeats the batches of an uninterrupted one.
  virtual StepOutput training_step(Run& run, int64_t step, int64_t micro) = 0;
  /// The optimizers a step updates, as phases run in order: each phase runs the step's
  /// micro-batches (training_step reads run.phase()), backpropagates their losses, clips and
  /// steps the phase's optimizers alone, and zeroes every gradient after it. So a GAN updates
  /// its discriminator, then its generator against the updated discriminator. Empty (the
  /// default): one phase that steps every optimizer. Each phase's loss is logged as
  /// "loss_<its optimizers>" and "loss" is their sum.
  virtual std::vector<std::vector<std::string>> update_phases() const { return {}; }
  /// "samples" or "tokens": what StepOutput::items counts.
  virtual std::string items_name() const { return "samples"; }

  /// Metrics on the validation split (with "loss"), nullopt when there is none. May note.
  virtual std::optional<Metrics> validate(Run& run) = 0;
  /// At the end of a finished run: the test split's metrics, when there is one (may write
  /// files such as test_metrics.json).
  virtual std::optional<Metrics> test(Run& run) {
    (void)run;
    return std::nullopt;
  }
  /// Entries for trainer_state.json (class names, baseline loss, ...).
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  /// Files written beside the model in every checkpoint folder (the tokenizer).
  virtual void save_extras(const std::string& dir) const { (void)dir; }

  /// For memory estimates (`moxing info --config`): what setup_data would return, as far as the
  /// config tells without reading the data; keys left out take the family's defaults.
  virtual nlohmann::json data_fields_from_config() const { return nlohmann::json::object(); }
  /// For memory estimates: the step of one micro-batch of the config's shapes (batch size,
  /// sequence length, image size) with the models on the meta device, after configure() and
  /// without setup_data(): inputs made with the default device are meta tensors, nothing is read
  /// or computed. nullopt (the default): the task gives no estimate of its steps.
  virtual std::optional<StepOutput> meta_step(Run& run) {
    (void)run;
    return std::nullopt;
  }

  /// `moxing eval`: the metrics of a trained model on its test (or validation) split.
  /// data_path replaces [data] path when not empty.
  virtual EvalReport evaluate(const LoadedRun& run, const std::string& data_path) = 0;
};

using TaskFactory = std::unique_ptr<Task> (*)(const Config& config);
/// Registers a task by name (at static-initialization time, through MOXING_REGISTER_TASK).
void register_task(const std::string& name, TaskFactory factory);
/// The task called name; the error lists the registered ones.
std::unique_ptr<Task> make_task(const std::string& name, const Config& config);
/// Registered task names, sorted.
std::vector<std::string> task_names();
/// The task of a config: [train] task, else the task of the [model] family's architecture.
std::string task_name(const Config& config);

struct TaskRegistrar {
  TaskRegistrar(const char* name, TaskFactory factory) { register_task(name, factory); }
};

}  // namespace moxing::train

/// MOXING_REGISTER_TASK("causal-lm", make_causal_lm_task) at namespace scope in
/// src/train/tasks/<task>.cpp.
#define MOXING_REGISTER_TASK(name, factory) \
  static const ::moxing::train::TaskRegistrar moxing_task_##factory { name, factory }
