// The one training loop (fit) for every task, the Run a task works with, the task registry,
// checkpoints of named models, optimizers and random streams, resume with a fallback past a
// damaged checkpoint, and loading a trained model back (load_run).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "io/file_util.h"
#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/core/parallel.h"
#include "moxing/io/checkpoint.h"
#include "moxing/io/gguf.h"
#include "moxing/io/safetensors.h"
#include "moxing/ops/elementwise.h"
#include "moxing/optim/clip.h"
#include "moxing/optim/serialize.h"
#include "moxing/train/checkpoint.h"
#include "moxing/train/logging.h"
#include "moxing/train/plot.h"
#include "moxing/train/progress.h"
#include "moxing/train/trainer.h"
#include "trainer_internal.h"

namespace moxing::train {

namespace fs = std::filesystem;
using detail::Clock;
using detail::opt_number;
using detail::seconds_since;

// ---- stop signals

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_stop_signal(int sig) {
  g_stop = 1;
  std::signal(sig, SIG_DFL);  // a second signal ends the process
}

}  // namespace

void request_stop() { g_stop = 1; }
bool stop_requested() { return g_stop != 0; }
void clear_stop_request() { g_stop = 0; }

void install_stop_signal_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

// ---- optimizers and schedules from the config

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

}  // namespace detail

// ---- the task registry

namespace {

std::map<std::string, TaskFactory>& task_registry() {
  static std::map<std::string, TaskFactory> tasks;
  return tasks;
}

}  // namespace

void register_task(const std::string& name, TaskFactory factory) {
  MOXING_CHECK(!task_registry().count(name), "task {} is registered twice", name);
  task_registry()[name] = factory;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& [n, f] : task_registry()) names.push_back(n);
  return names;
}

std::unique_ptr<Task> make_task(const std::string& name, const Config& config) {
  auto it = task_registry().find(name);
  MOXING_CHECK(it != task_registry().end(), "config: [train] task '{}' is not known (valid: {})",
               name, fmt::join(task_names(), ", "));
  return it->second(config);
}

std::string task_name(const Config& config) {
  if (!config.train.task.empty()) return config.train.task;
  // the default architecture's task; when nothing trains that one (bert's BertModel extracts
  // features), the first architecture whose task is registered
  const models::Family& family = models::find_family(config.model.name);
  const std::vector<std::string> known = task_names();
  for (const std::string& task : {family.architecture().task}) {
    if (std::find(known.begin(), known.end(), task) != known.end()) return task;
  }
  for (const models::Architecture& a : family.architectures) {
    if (std::find(known.begin(), known.end(), a.task) != known.end()) return a.task;
  }
  return family.architecture().task;
}

// ---- Run

Run::Run(const Config& config, std::string out_dir, bool verbose)
    : config_(config), out_dir_(std::move(out_dir)), verbose_(verbose) {
  generators_["default"] = &default_generator();
}

void Run::note(const std::string& text) const {
  if (verbose_) std::cerr << text << "\n";
}

void Run::add_model(const std::string& name, models::Model model) {
  for (const auto& [n, m] : models_) MOXING_CHECK(n != name, "run: model {} added twice", name);
  models_.emplace_back(name, std::move(model));
}

models::Model& Run::model(const std::string& name) {
  for (auto& [n, m] : models_) {
    if (n == name) return m;
  }
  fail("run: no model called {}", name);
}

optim::Optimizer& Run::add_optimizer(const std::string& name, const std::string& model_name,
                                     std::vector<optim::ParamGroup> groups) {
  for (const auto& o : optimizers_) {
    MOXING_CHECK(o.name != name, "run: optimizer {} added twice", name);
  }
  // parameter names in the optimizer's index order (through the groups)
  std::map<const TensorImpl*, std::string> names;
  for (const auto& [n, p] : model(model_name).module->named_parameters())
    names.emplace(p.impl(), n);
  RunOptimizer o;
  o.name = name;
  o.model = model_name;
  for (const auto& g : groups) {
    for (const Tensor& p : g.params) {
      auto it = names.find(p.impl());
      o.param_names.push_back(it == names.end() ? std::string() : it->second);
    }
  }
  o.optimizer = optim::make_optimizer(config_.optim.name, std::move(groups),
                                      detail::optimizer_hyper(config_.optim));
  optimizers_.push_back(
      std::move(o));  // the loop adds its scheduler once the run's length is known
  return *optimizers_.back().optimizer;
}

Generator& Run::generator(const std::string& name) {
  auto it = generators_.find(name);
  if (it != generators_.end()) return *it->second;
  auto gen = std::make_unique<Generator>(static_cast<uint64_t>(config_.train.seed));
  Generator* p = gen.get();
  own_generators_[name] = std::move(gen);
  generators_[name] = p;
  return *p;
}

// ---- Task defaults

void Task::configure(Run& run, models::Model model) {
  std::vector<Tensor> params = model.module->parameters();
  run.add_model("model", std::move(model));
  optim::ParamGroup all;
  all.params = std::move(params);
  run.add_optimizer("optimizer", "model", {std::move(all)});
}

int64_t Task::micro_batches(int64_t step) const {
  (void)step;
  return 0;  // replaced by the loop with grad_accum
}

// ---- checkpoints

namespace {

std::string optimizer_file(const std::string& name) {
  return name == "optimizer" ? "optimizer.safetensors" : "optimizer-" + name + ".safetensors";
}

// Optimizer state tensors are stored in the file layout of their parameter (transposed where the
// family's files keep the weight transposed), so a checkpoint's optimizer.safetensors matches
// its model.safetensors.
void save_run_optimizer(const RunOptimizer& o, const models::Model& model,
                        const std::string& path) {
  optim::OptimizerState st = o.optimizer->state_dict();
  for (auto& [key, t] : st.tensors) {
    // "state.<i>.<key>"
    size_t i = std::stoul(key.substr(6, key.find('.', 6) - 6));
    if (i < o.param_names.size() && model.family->rules.is_transposed(o.param_names[i]) &&
        t.dim() == 2) {
      t = t.t();
    }
  }
  optim::save_optimizer_state(st, path);
}

void load_run_optimizer(RunOptimizer& o, const models::Model& model, const std::string& path) {
  optim::OptimizerState st = optim::read_optimizer_state(path);
  for (auto& [key, t] : st.tensors) {
    size_t dot = key.find('.', 6);
    if (key.rfind("state.", 0) != 0 || dot == std::string::npos) continue;
    size_t i = std::stoul(key.substr(6, dot - 6));
    if (i < o.param_names.size() && model.family->rules.is_transposed(o.param_names[i]) &&
        t.dim() == 2) {
      t = t.t().contiguous();
    }
  }
  try {
    o.optimizer->load_state_dict(st);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
}

// One checkpoint folder: each model's folder, the task's files, the optimizers, and
// trainer_state.json last (its presence marks a complete checkpoint).
void save_run_checkpoint(const std::string& dir, Run& run, const Task& task, bool with_optimizers,
                         const nlohmann::json& state) {
  fs::path parent = fs::path(dir).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  write_checkpoint_dir(dir, [&](const std::string& tmp) {
    bool first = true;
    for (const auto& [name, m] : run.models()) {
      m.save_pretrained(first ? tmp : tmp + "/" + name);
      first = false;
    }
    moxing::detail::fault_point();  // a half-written checkpoint
    task.save_extras(tmp);
    if (with_optimizers) {
      for (const RunOptimizer& o : run.optimizers()) {
        save_run_optimizer(o, run.model(o.model), tmp + "/" + optimizer_file(o.name));
      }
    }
    write_text_file_atomic(tmp + "/trainer_state.json", state.dump(2) + "\n");
  });
}

nlohmann::json read_trainer_state(const std::string& dir) {
  std::string path = dir + "/trainer_state.json";
  MOXING_CHECK(fs::exists(path), "checkpoint {} is incomplete: trainer_state.json is missing", dir);
  try {
    nlohmann::json st = nlohmann::json::parse(read_text_file(path));
    MOXING_CHECK(st.is_object(), "{}: not a JSON object", path);
    return st;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
}

// Restores a run from the checkpoint in dir; throws on anything damaged.
nlohmann::json restore_checkpoint(const std::string& dir, Run& run, detail::RunPosition& pos) {
  nlohmann::json st = read_trainer_state(dir);
  bool first = true;
  for (const auto& [name, m] : run.models()) {
    models::load_weights(first ? dir : dir + "/" + name, m);
    first = false;
  }
  for (RunOptimizer& o : run.optimizers()) {
    std::string path = dir + "/" + optimizer_file(o.name);
    MOXING_CHECK(fs::exists(path), "checkpoint {} has no {}, so training cannot resume from it",
                 dir, optimizer_file(o.name));
    load_run_optimizer(o, run.model(o.model), path);
  }
  for (RunOptimizer& o : run.optimizers()) {
    if (st.contains("schedulers") && st["schedulers"].contains(o.name)) {
      o.scheduler->load_state_dict(st["schedulers"][o.name]);
    } else if (o.name == "optimizer" && st.contains("scheduler")) {
      o.scheduler->load_state_dict(st.at("scheduler"));  // checkpoints of older versions
    }
  }
  for (const auto& [name, state] : st.at("generators").items()) {
    set_generator_state(run.generator(name), state);
  }
  pos.step = st.at("step").get<int64_t>();
  const auto& best = st.at("best");
  pos.best.reset();
  if (!best.at("value").is_null()) pos.best = best.at("value").get<double>();
  pos.best_step = best.at("step").get<int64_t>();
  pos.prior_seconds = st.value("seconds", 0.0);
  pos.last_saved_step = pos.step;
  pos.last_good_checkpoint = dir;
  return st;
}

// What differs between the run's models and those a checkpoint folder was saved from (each
// model folder's config.json; the dtype aside), as "<model> <key> <saved> in DIR, <new> in the
// config; ...", or nullopt. Only the keys a file holds are compared (a field added to a family
// later takes its default), and a folder without config.json (older checkpoints) not at all; an
// unreadable one throws, as a damaged checkpoint does.
std::optional<std::string> model_config_difference(const std::string& dir, const Run& run) {
  std::vector<std::string> diffs;
  bool first = true;
  for (const auto& [name, m] : run.models()) {
    const std::string model_dir = first ? dir : dir + "/" + name;
    first = false;
    if (!fs::exists(fs::path(model_dir) / "config.json")) continue;
    nlohmann::json saved = models::read_config_json(model_dir);
    nlohmann::json now = m.config;
    for (const char* k : {"dtype", "torch_dtype"}) {
      saved.erase(k);
      now.erase(k);
    }
    for (const auto& [k, v] : saved.items()) {
      if (!now.contains(k) || now.at(k) != v) {
        diffs.push_back(fmt::format("{} {} {} in {}/config.json, {} in the config", name, k,
                                    v.dump(), model_dir,
                                    now.contains(k) ? now.at(k).dump() : "absent"));
      }
    }
  }
  if (diffs.empty()) return std::nullopt;
  return fmt::format("{}", fmt::join(diffs, "; "));
}

// Keeps the newest `keep` step checkpoints of the run.
void prune_checkpoints(const std::string& out, int64_t keep) {
  std::vector<std::string> all = complete_checkpoints(out);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
    std::error_code ec;
    fs::remove_all(all[i], ec);
  }
}

}  // namespace

models::Model detail::build_run_model(const Config& config, const nlohmann::json& facts,
                                      Generator* gen, const Run& run) {
  const models::Family& family = models::find_family(config.model.name);
  std::string arch;
  for (const models::Architecture& a : family.architectures) {
    if (a.task == task_name(config) && arch.empty()) arch = a.name;
  }
  // a task no architecture names (one a program registers) takes the default architecture and
  // checks the interface it needs in configure()
  nlohmann::json fields = config.model.resolved();
  if (config.model.pretrained.empty()) {
    for (const auto& [k, v] : facts.items()) {
      if (std::find(family.data_keys.begin(), family.data_keys.end(), k) !=
          family.data_keys.end()) {
        fields[k] = v;
      }
    }
    return models::build_model(family, fields, arch, gen);
  }
  models::PretrainedOptions po;
  po.architecture = arch;
  po.allow_missing = true;
  po.weights = default_device().type != DeviceType::meta;  // an estimate reads no weights
  // the fields the config names (shorthands expanded) replace the folder's
  for (const auto& [k, v] : config.model.fields.items()) {
    if (fields.contains(k)) po.overrides[k] = fields.at(k);
    for (const auto& [shorthand, targets] : family.shorthands) {
      if (shorthand != k) continue;
      for (const auto& t : targets) po.overrides[t] = fields.at(t);
    }
  }
  for (const auto& [k, v] : facts.items()) {
    if (std::find(family.data_keys.begin(), family.data_keys.end(), k) != family.data_keys.end())
      po.overrides[k] = v;
  }
  models::LoadReport report;
  models::Model m = models::from_pretrained(config.model.pretrained, po, &report);
  MOXING_CHECK(m.family == &family, "config: [model] pretrained {} holds a {} model, not {}",
               config.model.pretrained, m.family->name, family.name);
  run.note(fmt::format("model: from {}", config.model.pretrained));
  // training keeps f32 master weights in memory of their own (the loaded ones view the file,
  // some transposed): one copy now, and the fused optimizer kernels apply
  nn::TensorList owned;
  std::vector<std::string> converted;
  for (const auto& [name, p] : m.module->state_dict()) {
    if (is_floating(p.dtype()) && p.dtype() != DType::f32) converted.push_back(name);
    owned.emplace_back(name, (is_floating(p.dtype()) ? p.to(DType::f32) : p).contiguous().clone());
  }
  m.module->load_state_dict(owned, {.strict = true, .assign = true});
  if (!converted.empty()) {
    run.note(fmt::format("note: {} tensors of {} converted to f32 master weights for training",
                         converted.size(), config.model.pretrained));
  }
  if (!report.newly_initialized.empty()) {
    run.note(fmt::format("note: newly initialized (not in {}): {}", config.model.pretrained,
                         fmt::join(report.newly_initialized, ", ")));
  }
  if (!report.unused.empty()) {
    run.note(fmt::format("note: tensors of {} the model does not use: {}", config.model.pretrained,
                         fmt::join(report.unused, ", ")));
  }
  return m;
}

// ---- the loop

namespace {

std::optional<double> metric(const Metrics& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

}  // namespace

class Loop {
 public:
  Loop(const Config& config, const TrainOptions& options)
      : config_(config),
        options_(options),
        tc_(config.train),
        run_(config, options.out_dir, options.progress) {}

  TrainSummary fit();

 private:
  nlohmann::json state_json() const;
  void save_step_checkpoint();
  void validate_now();
  double lr() const { return run_.optimizers_.front().scheduler->get_last_lr().at(0); }
  double elapsed() const { return pos_.prior_seconds + seconds_since(start_); }
  double epochs_done() const {
    return static_cast<double>(run_.step_) / static_cast<double>(steps_per_epoch_);
  }

  const Config& config_;
  const TrainOptions& options_;
  const TrainLoopConfig& tc_;
  Run run_;
  std::unique_ptr<Task> task_;
  std::unique_ptr<MetricsLogger> logger_;
  TrainSummary summary_;
  detail::RunPosition pos_;
  Clock::time_point start_ = Clock::now();
  int64_t steps_per_epoch_ = 1;
  int64_t last_eval_step_ = -1;
  bool higher_is_better_ = true;
};

nlohmann::json Loop::state_json() const {
  nlohmann::json gens = nlohmann::json::object();
  for (const auto& [name, g] : run_.generators_) gens[name] = generator_state(*g);
  nlohmann::json scheds = nlohmann::json::object();
  for (const RunOptimizer& o : run_.optimizers_) scheds[o.name] = o.scheduler->state_dict();
  nlohmann::json st = {
      {"format", 2},
      {"task", task_name(config_)},
      {"step", run_.step_},
      {"epoch", epochs_done()},
      {"total_steps", run_.total_steps_},
      {"generators", gens},
      {"scheduler", run_.optimizers_.front().scheduler->state_dict()},
      {"schedulers", scheds},
      {"config", config_.to_json()},
      {"best",
       {{"metric", tc_.best_metric}, {"value", opt_number(pos_.best)}, {"step", pos_.best_step}}},
      {"seconds", elapsed()}};
  const nlohmann::json task_state = task_->state();
  for (const auto& [k, v] : task_state.items()) st[k] = v;
  return st;
}

void Loop::save_step_checkpoint() {
  if (pos_.last_saved_step == run_.step_) return;
  std::string dir = fmt::format("{}/checkpoints/step-{}", options_.out_dir, run_.step_);
  save_run_checkpoint(dir, run_, *task_, true, state_json());
  pos_.last_saved_step = run_.step_;
  pos_.last_good_checkpoint = dir;
  prune_checkpoints(options_.out_dir, tc_.keep_checkpoints);
}

void Loop::validate_now() {
  if (last_eval_step_ == run_.step_) return;
  last_eval_step_ = run_.step_;
  std::optional<Metrics> m = task_->validate(run_);
  if (!m) return;
  nlohmann::json record = {{"step", run_.step_}, {"epoch", epochs_done()}, {"split", "val"}};
  for (const auto& [k, v] : *m) record[k] = v;
  record["lr"] = lr();
  record["seconds"] = elapsed();
  logger_->log(record);
  summary_.val_metrics = *m;
  summary_.val_loss = metric(*m, "loss");
  summary_.val_accuracy = metric(*m, "accuracy");
  summary_.val_perplexity = metric(*m, "perplexity");
  if (auto b = metric(*m, "baseline_loss")) summary_.baseline_loss = b;
  std::optional<double> value = metric(*m, tc_.best_metric.substr(4));
  if (!value) {
    std::vector<std::string> names;
    for (const auto& [k, v] : *m) names.push_back("val/" + k);
    fail("train: [train] best_metric {} is not a metric of task {} (it reports: {})",
         tc_.best_metric, task_name(config_), fmt::join(names, ", "));
  }
  if (!pos_.best || (higher_is_better_ ? *value > *pos_.best : *value < *pos_.best)) {
    pos_.best = *value;
    pos_.best_step = run_.step_;
    save_run_checkpoint(options_.out_dir + "/best", run_, *task_, false, state_json());
  }
}

TrainSummary Loop::fit() {
  config_.validate();
  const std::string& out = options_.out_dir;
  MOXING_CHECK(!out.empty(), "train: no output folder given");
  clear_stop_request();
  if (tc_.threads > 0) set_num_threads(static_cast<int>(tc_.threads));
  fs::create_directories(out);
  write_text_file_atomic(out + "/config.toml", config_.to_toml());

  task_ = make_task(task_name(config_), config_);
  nlohmann::json facts = task_->setup_data(run_);
  auto seed = static_cast<uint64_t>(tc_.seed);
  Generator init_gen(seed);
  models::Model model = detail::build_run_model(config_, facts, &init_gen, run_);
  manual_seed(seed);
  run_.note(fmt::format("model: {}: {:.2f}M parameters", model.family->describe(model.config),
                        static_cast<double>(model.module->num_parameters()) / 1e6));
  task_->configure(run_, std::move(model));
  MOXING_CHECK(!run_.models_.empty() && !run_.optimizers_.empty(),
               "task {} added no model or no optimizer", task_name(config_));
  steps_per_epoch_ = std::max<int64_t>(1, task_->steps_per_epoch());
  run_.total_steps_ = tc_.steps > 0 ? tc_.steps : tc_.epochs * steps_per_epoch_;
  for (RunOptimizer& o : run_.optimizers_) {
    o.scheduler = detail::make_scheduler(config_.schedule, *o.optimizer, run_.total_steps_);
  }
  const int64_t total_steps = run_.total_steps_;
  const int64_t total_epochs = (total_steps + steps_per_epoch_ - 1) / steps_per_epoch_;
  {
    const std::string name = tc_.best_metric.substr(4);
    higher_is_better_ = name != "loss" && name != "perplexity" && name != "mse" && name != "mae";
  }

  if (options_.resume) {
    std::vector<std::string> candidates = complete_checkpoints(out);
    MOXING_CHECK(!candidates.empty(), "--resume {}: no checkpoint in {}/checkpoints", out, out);
    std::optional<nlohmann::json> st;
    for (auto it = candidates.rbegin(); it != candidates.rend() && !st; ++it) {
      std::optional<std::string> differs;
      try {
        differs = model_config_difference(*it, run_);
        if (!differs) st = restore_checkpoint(*it, run_, pos_);
      } catch (const Error& e) {
        run_.note(fmt::format("warning: checkpoint {} is damaged ({}); trying the one before it",
                              *it, e.what()));
      }
      // another model is no damage: its weights would not fit, or not mean the same
      MOXING_CHECK(!differs,
                   "--resume {}: the config's model differs from the one checkpoint {} holds "
                   "({}); resume with the config it was trained with (its trainer_state.json "
                   "holds it) or train into a new folder",
                   out, *it, differs.value_or(""));
    }
    MOXING_CHECK(st.has_value(), "--resume {}: every checkpoint in {}/checkpoints is damaged", out,
                 out);
    run_.step_ = pos_.step;
    if (st->contains("config") &&
        Config::from_json(st->at("config")).to_json() != config_.to_json()) {
      run_.note("note: the config differs from the checkpoint's; the resumed run may not match");
    }
    run_.note(fmt::format("resuming from {} (step {})", pos_.last_good_checkpoint, run_.step_));
    drop_metrics_after(out, run_.step_);
  }
  logger_ = std::make_unique<MetricsLogger>(out, options_.tensorboard);
  run_.logger_ = logger_.get();
  summary_.best_metric = tc_.best_metric;
  summary_.out_dir = out;
  if (auto b = task_->state().value("baseline_loss", nlohmann::json()); b.is_number()) {
    summary_.baseline_loss = b.get<double>();
  }

  // the update phases: each a list of the run's optimizers
  std::vector<std::vector<RunOptimizer*>> phases;
  std::vector<std::string> phase_names;
  for (const std::vector<std::string>& names : task_->update_phases()) {
    std::vector<RunOptimizer*> phase;
    for (const std::string& n : names) {
      auto it = std::find_if(run_.optimizers_.begin(), run_.optimizers_.end(),
                             [&](const RunOptimizer& o) { return o.name == n; });
      MOXING_CHECK(it != run_.optimizers_.end(),
                   "task {}: update phase names optimizer '{}', which the task did not add",
                   task_name(config_), n);
      phase.push_back(&*it);
    }
    MOXING_CHECK(!phase.empty(), "task {}: an update phase names no optimizer", task_name(config_));
    phases.push_back(std::move(phase));
    phase_names.push_back(fmt::format("{}", fmt::join(names, "+")));
  }
  if (phases.empty()) {
    phases.emplace_back();
    for (RunOptimizer& o : run_.optimizers_) phases.back().push_back(&o);
  }

  // the log window
  std::vector<double> win_phase_loss;
  double win_loss = 0;
  int64_t win_steps = 0, win_items = 0;
  std::map<std::string, Tensor> win_sums;
  Clock::time_point win_start = Clock::now();
  std::optional<Progress> progress;
  int64_t progress_epoch = -1;
  bool stopping = false;
  for (auto& [n, m] : run_.models_) m.module->train();
  const std::string per_s = task_->items_name() + "_per_s";

  while (run_.step_ < total_steps && !stopping) {
    const Clock::time_point step_start = Clock::now();
    const int64_t step = run_.step_;
    const int64_t epoch = step / steps_per_epoch_;
    if (options_.progress && progress_epoch != epoch) {
      if (progress) progress->finish();
      int64_t epoch_steps = std::min(steps_per_epoch_, total_steps - epoch * steps_per_epoch_);
      progress.emplace(epoch_steps,
                       total_epochs > 1 ? fmt::format("epoch {}/{}", epoch + 1, total_epochs)
                                        : std::string("train"),
                       tc_.log_every);
      progress_epoch = epoch;
    }
    int64_t micro = task_->micro_batches(step);
    if (micro <= 0) micro = tc_.grad_accum;
    int64_t step_items = 0;
    std::map<std::string, Tensor> step_sums;
    double loss_value = 0;
    std::vector<double> phase_losses;
    bool skipped = false, stepped = false;
    for (size_t p = 0; p < phases.size(); ++p) {
      run_.phase_ = static_cast<int64_t>(p);
      Tensor phase_loss;
      for (int64_t i = 0; i < micro; ++i) {
        StepOutput o = task_->training_step(run_, step, i);
        Tensor loss = o.loss;
        (tc_.grad_accum > 1 ? loss * (1.0 / static_cast<double>(tc_.grad_accum)) : loss).backward();
        Tensor l = loss.detach().to(DType::f64);
        phase_loss = phase_loss.defined() ? add(phase_loss, l) : l;
        if (p == 0) step_items += o.items;  // every phase sees the step's examples
        for (auto& [k, t] : o.sums) {
          Tensor v = t.detach().to(DType::f64);
          auto it = step_sums.find(k);
          if (it == step_sums.end()) {
            step_sums.emplace(k, v);
          } else {
            it->second = add(it->second, v);
          }
        }
      }
      for (auto& hook : run_.after_backward) hook(run_);
      // one read per phase: the loss tells whether the phase is finite
      const double value = phase_loss.item<double>() / static_cast<double>(micro);
      bool nonfinite = !std::isfinite(value);
      if (!nonfinite && tc_.clip_grad_norm > 0) {
        for (const RunOptimizer* o : phases[p]) {
          std::vector<Tensor> params;
          for (const auto& g : o->optimizer->param_groups())
            params.insert(params.end(), g.params.begin(), g.params.end());
          double norm = optim::clip_grad_norm_(params, tc_.clip_grad_norm);
          nonfinite = nonfinite || !std::isfinite(norm);
        }
      }
      if (nonfinite) {
        std::string what =
            fmt::format("non-finite loss or gradient at step {} (epoch {})", step + 1, epoch + 1);
        MOXING_CHECK(tc_.skip_nonfinite,
                     "{}; training stopped, no checkpoint written after it (last good "
                     "checkpoint: {}); set [train] skip_nonfinite = true to skip such steps",
                     what, pos_.last_good_checkpoint.empty() ? "none" : pos_.last_good_checkpoint);
        run_.note(what + (phases.size() > 1 ? fmt::format(": phase {} skipped", p + 1)
                                            : std::string(": step skipped")));
        skipped = true;
      } else {
        for (RunOptimizer* o : phases[p]) o->optimizer->step();
        stepped = true;
      }
      // a later phase starts from no gradient (a generator's loss also reaches the
      // discriminator's weights)
      for (RunOptimizer& o : run_.optimizers_) o.optimizer->zero_grad();
      loss_value += value;
      phase_losses.push_back(value);
    }
    run_.phase_ = 0;
    run_.step_ = step + 1;
    const bool epoch_end = run_.step_ % steps_per_epoch_ == 0;
    if (stepped) {
      moxing::detail::fault_point();  // weights changed, nothing saved yet
      for (auto& hook : run_.after_optimizer_step) hook(run_);
    }
    if (!skipped) {
      win_loss += loss_value;
      if (phases.size() > 1) {
        win_phase_loss.resize(phases.size(), 0.0);
        for (size_t p = 0; p < phases.size(); ++p) win_phase_loss[p] += phase_losses[p];
      }
      win_steps += 1;
      for (auto& [k, t] : step_sums) {
        auto it = win_sums.find(k);
        if (it == win_sums.end()) {
          win_sums.emplace(k, t);
        } else {
          it->second = add(it->second, t);
        }
      }
    }
    for (RunOptimizer& o : run_.optimizers_) o.scheduler->step();
    win_items += step_items;
    summary_.train_seconds += seconds_since(step_start);
    if (progress) {
      progress->update(run_.step_ - epoch * steps_per_epoch_,
                       win_steps > 0 ? win_loss / static_cast<double>(win_steps) : NAN, lr(),
                       step_items);
    }
    const bool last = run_.step_ >= total_steps;
    stopping = stop_requested() ||
               (options_.stop_after_step > 0 && run_.step_ >= options_.stop_after_step);
    if (run_.step_ % tc_.log_every == 0 || last || epoch_end || stopping) {
      if (win_steps > 0) {
        double secs = seconds_since(win_start);
        nlohmann::json record = {{"step", run_.step_},
                                 {"epoch", epochs_done()},
                                 {"split", "train"},
                                 {"loss", win_loss / static_cast<double>(win_steps)}};
        for (const auto& [k, t] : win_sums) {
          record[k] = t.item<double>() / static_cast<double>(std::max<int64_t>(win_items, 1));
        }
        for (size_t p = 0; p < win_phase_loss.size(); ++p) {
          record["loss_" + phase_names[p]] = win_phase_loss[p] / static_cast<double>(win_steps);
        }
        record["lr"] = lr();
        record[per_s] = static_cast<double>(win_items) / std::max(secs, 1e-9);
        record["seconds"] = elapsed();
        for (auto& hook : run_.on_log) hook(run_, record);
        logger_->log(record);
      }
      win_loss = 0;
      win_phase_loss.assign(win_phase_loss.size(), 0.0);
      win_steps = win_items = 0;
      win_sums.clear();
      win_start = Clock::now();
    }
    if ((tc_.eval_every > 0 && run_.step_ % tc_.eval_every == 0) ||
        (tc_.eval_every == 0 && epoch_end) || last) {
      validate_now();
    }
    if ((tc_.checkpoint_every > 0 && run_.step_ % tc_.checkpoint_every == 0) ||
        (tc_.checkpoint_every == 0 && epoch_end) || last || stopping) {
      save_step_checkpoint();
    }
  }
  if (progress) progress->finish();

  summary_.steps = run_.step_;
  summary_.epochs = epochs_done();
  summary_.interrupted = run_.step_ < total_steps;
  if (summary_.interrupted) {
    save_step_checkpoint();
    run_.note(fmt::format("stopped at step {}; checkpoint {}; continue with --resume {}",
                          run_.step_, pos_.last_good_checkpoint, out));
  } else {
    validate_now();
    save_step_checkpoint();
    save_run_checkpoint(out + "/final", run_, *task_, true, state_json());
    if (std::optional<Metrics> m = task_->test(run_)) {
      nlohmann::json record = {{"step", run_.step_}, {"epoch", epochs_done()}, {"split", "test"}};
      for (const auto& [k, v] : *m) record[k] = v;
      record["lr"] = lr();
      record["seconds"] = elapsed();
      logger_->log(record);
      summary_.test_metrics = *m;
      summary_.test_loss = metric(*m, "loss");
      summary_.test_accuracy = metric(*m, "accuracy");
    }
  }
  try {
    plot_curves_from_jsonl(logger_->path(), out + "/curves.png");
  } catch (const Error& e) {
    run_.note(fmt::format("note: curves.png not written: {}", e.what()));
  }
  summary_.best_value = pos_.best;
  summary_.best_step = pos_.best_step;
  summary_.seconds = elapsed();
  return summary_;
}

TrainSummary fit(const Config& config, const TrainOptions& options) {
  Loop loop(config, options);
  return loop.fit();
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
  j["train_seconds"] = train_seconds;
  if (!val_metrics.empty()) j["val"] = val_metrics;
  if (!test_metrics.empty()) j["test"] = test_metrics;
  j["best"] = {{"metric", best_metric}, {"value", opt_number(best_value)}, {"step", best_step}};
  j["out_dir"] = out_dir;
  return j;
}

// ---- loading a trained model back

namespace {

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  return has_gguf_extension(path) && fs::is_regular_file(path, ec);
}

// The checkpoint folder a path names: itself, or a run folder's final/, best/ or latest.
std::string resolve_checkpoint(const std::string& path) {
  MOXING_CHECK(fs::exists(path), "{} does not exist", path);
  if (is_gguf_file(path)) return path;  // a model file (llama.cpp's format)
  if (fs::exists(fs::path(path) / "trainer_state.json") ||
      fs::exists(fs::path(path) / "config.json")) {
    return path;
  }
  for (const char* sub : {"final", "best"}) {
    if (fs::exists(fs::path(path) / sub / "trainer_state.json")) {
      return (fs::path(path) / sub).string();
    }
  }
  std::vector<std::string> all = complete_checkpoints(path);
  MOXING_CHECK(!all.empty(),
               "{} is neither a model folder (config.json), a checkpoint (trainer_state.json) nor "
               "a run folder with final/, best/ or checkpoints/",
               path);
  return all.back();
}

}  // namespace

LoadedRun load_run(const std::string& path) {
  LoadedRun r;
  r.checkpoint_dir = resolve_checkpoint(path);
  fs::path dir = fs::absolute(r.checkpoint_dir);
  for (const fs::path& p : {dir, dir.parent_path(), dir.parent_path().parent_path()}) {
    if (fs::exists(p / "config.toml") && fs::is_directory(p / "checkpoints")) {
      r.run_dir = p.string();
      break;
    }
  }
  if (fs::exists(dir / "trainer_state.json"))
    r.trainer_state = read_trainer_state(r.checkpoint_dir);
  if (r.trainer_state.contains("config")) r.config = Config::from_json(r.trainer_state["config"]);
  if (fs::exists(dir / "config.json") || is_gguf_file(r.checkpoint_dir)) {
    r.model = models::from_pretrained(r.checkpoint_dir);
    if (!r.trainer_state.contains("config")) {
      r.config.model.name = r.model.family->name;
      r.config.train.task = r.model.family->architecture(r.model.architecture).task;
    }
  } else {
    // a checkpoint of an older version: the model from its config and model_shape
    MOXING_CHECK(r.trainer_state.contains("config") && r.trainer_state.contains("model_shape"),
                 "{}/trainer_state.json has no config or model_shape and there is no config.json: "
                 "not a `moxing train` checkpoint",
                 r.checkpoint_dir);
    const auto& s = r.trainer_state.at("model_shape");
    nlohmann::json fields = r.config.model.resolved();
    fields["num_channels"] = s.at("channels");
    fields["image_size"] = s.at("height");
    fields["num_labels"] = s.at("num_classes");
    r.model = models::build_model(models::find_family(r.config.model.name), fields);
    models::load_weights(r.checkpoint_dir, r.model);
  }
  r.model.module->eval();
  return r;
}

Config training_config_of(const std::string& path) {
  const std::string ckpt = resolve_checkpoint(path);
  const fs::path dir = fs::absolute(ckpt);
  Config config;
  nlohmann::json state;
  if (fs::exists(dir / "trainer_state.json")) state = read_trainer_state(ckpt);
  if (state.contains("config")) {
    config = Config::from_json(state["config"]);
  } else if (fs::exists(dir / "config.json")) {
    nlohmann::json j = models::read_config_json(ckpt);
    const models::Family& family = models::family_of_config(j, (dir / "config.json").string());
    config.model.name = family.name;
    config.train.task = family.architecture().task;
    for (const models::Architecture& a : family.architectures) {
      for (const nlohmann::json& name : j.value("architectures", nlohmann::json::array())) {
        if (name.is_string() && name.get<std::string>() == a.name) config.train.task = a.task;
      }
    }
  }
  // the folder's config.json holds the model (an older checkpoint without one: the config's)
  if (fs::exists(dir / "config.json")) config.model.pretrained = ckpt;
  return config;
}

}  // namespace moxing::train
