// Learning-rate schedulers; each get_lr mirrors the torch.optim.lr_scheduler method of the
// same class (the recursive form torch's step() uses).
#include "moxing/optim/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace moxing::optim {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One value per group: a single value is shared, otherwise the sizes must match.
std::vector<double> per_group(const std::vector<double>& values, size_t groups, const char* who,
                              const char* what) {
  if (values.size() == 1) return std::vector<double>(groups, values[0]);
  MOXING_CHECK(values.size() == groups, "{}: expected 1 or {} values for {}, got {}", who, groups,
               what, values.size());
  return values;
}

std::vector<double> json_doubles(const nlohmann::json& state, const char* key, const char* who) {
  MOXING_CHECK(state.contains(key) && state[key].is_array(),
               "{}: load_state_dict: missing array \"{}\"", who, key);
  return state[key].get<std::vector<double>>();
}

int64_t json_int(const nlohmann::json& state, const char* key, const char* who) {
  MOXING_CHECK(state.contains(key) && state[key].is_number_integer(),
               "{}: load_state_dict: missing integer \"{}\"", who, key);
  return state[key].get<int64_t>();
}

}  // namespace

// ---- LRScheduler

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) { base_lrs_ = group_lrs(); }

std::vector<double> LRScheduler::group_lrs() const {
  std::vector<double> lrs;
  for (const auto& g : optimizer_.param_groups()) lrs.push_back(g.lr());
  return lrs;
}

void LRScheduler::initial_step() {
  step_count_ = 0;
  is_initial_ = true;
  step();
  is_initial_ = false;
}

void LRScheduler::step() {
  ++step_count_;
  ++last_epoch_;
  std::vector<double> lrs = get_lr();
  auto& groups = optimizer_.param_groups();
  MOXING_CHECK(lrs.size() == groups.size(),
               "lr scheduler: the optimizer has {} param groups, the scheduler was made for {}",
               groups.size(), lrs.size());
  for (size_t i = 0; i < groups.size(); ++i) groups[i].set_lr(lrs[i]);
  last_lr_ = group_lrs();
}

nlohmann::json LRScheduler::state_dict() const {
  return {{"last_epoch", last_epoch_},
          {"step_count", step_count_},
          {"base_lrs", base_lrs_},
          {"last_lr", last_lr_}};
}

void LRScheduler::load_state_dict(const nlohmann::json& state) {
  const char* who = "lr scheduler";
  last_epoch_ = json_int(state, "last_epoch", who);
  step_count_ = json_int(state, "step_count", who);
  base_lrs_ = json_doubles(state, "base_lrs", who);
  last_lr_ = json_doubles(state, "last_lr", who);
}

// ---- LambdaLR and the Hugging Face warmup schedules

LambdaLR::LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> factor)
    : LRScheduler(optimizer), factor_(std::move(factor)) {
  initial_step();
}

std::vector<double> LambdaLR::get_lr() {
  std::vector<double> lrs;
  for (double base : base_lrs_) lrs.push_back(base * factor_(last_epoch_));
  return lrs;
}

double cosine_with_warmup_factor(int64_t step, int64_t num_warmup_steps, int64_t num_training_steps,
                                 double num_cycles) {
  if (step < num_warmup_steps) {
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, num_warmup_steps));
  }
  double progress =
      static_cast<double>(step - num_warmup_steps) /
      static_cast<double>(std::max<int64_t>(1, num_training_steps - num_warmup_steps));
  return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * num_cycles * 2.0 * progress)));
}

double linear_with_warmup_factor(int64_t step, int64_t num_warmup_steps,
                                 int64_t num_training_steps) {
  if (step < num_warmup_steps) {
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, num_warmup_steps));
  }
  return std::max(
      0.0, static_cast<double>(num_training_steps - step) /
               static_cast<double>(std::max<int64_t>(1, num_training_steps - num_warmup_steps)));
}

CosineWithWarmupLR::CosineWithWarmupLR(Optimizer& optimizer, int64_t num_warmup_steps,
                                       int64_t num_training_steps, double num_cycles)
    : LambdaLR(optimizer, [=](int64_t step) {
        return cosine_with_warmup_factor(step, num_warmup_steps, num_training_steps, num_cycles);
      }) {}

LinearWithWarmupLR::LinearWithWarmupLR(Optimizer& optimizer, int64_t num_warmup_steps,
                                       int64_t num_training_steps)
    : LambdaLR(optimizer, [=](int64_t step) {
        return linear_with_warmup_factor(step, num_warmup_steps, num_training_steps);
      }) {}

// ---- StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  MOXING_CHECK(step_size > 0, "StepLR: step_size must be > 0, got {}", step_size);
  initial_step();
}

std::vector<double> StepLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return lrs;
  for (double& lr : lrs) lr *= gamma_;
  return lrs;
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  initial_step();
}

std::vector<double> MultiStepLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  auto hits = std::count(milestones_.begin(), milestones_.end(), last_epoch_);
  if (hits == 0) return lrs;
  for (double& lr : lrs) lr *= std::pow(gamma_, static_cast<double>(hits));
  return lrs;
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler(optimizer), gamma_(gamma) {
  initial_step();
}

std::vector<double> ExponentialLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (is_initial_) return lrs;
  for (double& lr : lrs) lr *= gamma_;
  return lrs;
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  MOXING_CHECK(T_max > 0, "CosineAnnealingLR: T_max must be > 0, got {}", T_max);
  initial_step();
}

// lr_t = eta_min + (lr_{t-1} - eta_min) (1 + cos(pi t / T)) / (1 + cos(pi (t - 1) / T)); at the
// restart point (t - 1 - T divisible by 2T) the ratio is 0/0 and the step is added instead.
std::vector<double> CosineAnnealingLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (is_initial_) return lrs;
  const double pi = std::numbers::pi;
  const double T = static_cast<double>(T_max_);
  const double t = static_cast<double>(last_epoch_);
  for (size_t i = 0; i < lrs.size(); ++i) {
    if ((last_epoch_ - 1 - T_max_) % (2 * T_max_) == 0) {
      lrs[i] = lrs[i] + (base_lrs_[i] - eta_min_) * (1 - std::cos(pi / T)) / 2;
    } else {
      lrs[i] = (1 + std::cos(pi * t / T)) / (1 + std::cos(pi * (t - 1) / T)) * (lrs[i] - eta_min_) +
               eta_min_;
    }
  }
  return lrs;
}

// ---- OneCycleLR

OneCycleLR::OneCycleLR(Optimizer& optimizer, const OneCycleOptions& options)
    : LRScheduler(optimizer), options_(options) {
  const auto& o = options_;
  MOXING_CHECK(o.total_steps > 0, "OneCycleLR: total_steps must be > 0, got {}", o.total_steps);
  MOXING_CHECK(o.pct_start >= 0.0 && o.pct_start <= 1.0,
               "OneCycleLR: pct_start must be in [0, 1], got {}", o.pct_start);
  MOXING_CHECK(o.anneal_strategy == "cos" || o.anneal_strategy == "linear",
               "OneCycleLR: anneal_strategy must be 'cos' or 'linear', got '{}'",
               o.anneal_strategy);
  const double total = static_cast<double>(o.total_steps);
  enum { kInitial = 0, kMax = 1, kMin = 2, kMaxMomentum = 0, kBaseMomentum = 1 };
  if (o.three_phase) {
    phases_ = {{o.pct_start * total - 1, kInitial, kMax, kMaxMomentum, kBaseMomentum},
               {2 * o.pct_start * total - 2, kMax, kInitial, kBaseMomentum, kMaxMomentum},
               {total - 1, kInitial, kMin, kMaxMomentum, kMaxMomentum}};
  } else {
    phases_ = {{o.pct_start * total - 1, kInitial, kMax, kMaxMomentum, kBaseMomentum},
               {total - 1, kMax, kMin, kBaseMomentum, kMaxMomentum}};
  }
  auto& groups = optimizer_.param_groups();
  std::vector<double> max_lrs = per_group(o.max_lr, groups.size(), "OneCycleLR", "max_lr");
  for (double max_lr : max_lrs) {
    double initial = max_lr / o.div_factor;
    lr_levels_.push_back({initial, max_lr, initial / o.final_div_factor});
  }
  if (o.cycle_momentum) {
    const Hyper& d = optimizer_.defaults();
    momentum_key_ = d.count("momentum") ? "momentum" : d.count("beta1") ? "beta1" : "";
    MOXING_CHECK(!momentum_key_.empty(),
                 "OneCycleLR: optimizer {} has no momentum or beta1 to cycle (set "
                 "cycle_momentum = false)",
                 optimizer_.name());
    for (auto& g : groups) {
      g.set(momentum_key_, o.max_momentum);
      momentum_levels_.push_back({o.max_momentum, o.base_momentum});
    }
  }
  base_lrs_.clear();
  for (const auto& levels : lr_levels_) base_lrs_.push_back(levels[kInitial]);
  initial_step();
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (options_.anneal_strategy == "cos") {
    double cos_out = std::cos(std::numbers::pi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

std::vector<double> OneCycleLR::get_lr() {
  MOXING_CHECK(last_epoch_ <= options_.total_steps,
               "OneCycleLR: tried to step {} times; the specified number of total steps is {}",
               last_epoch_, options_.total_steps);
  const double step = static_cast<double>(last_epoch_);
  auto& groups = optimizer_.param_groups();
  std::vector<double> lrs;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    double start_step = 0.0;
    for (size_t i = 0; i < phases_.size(); ++i) {
      const Phase& ph = phases_[i];
      if (step <= ph.end_step || i + 1 == phases_.size()) {
        double pct = (step - start_step) / (ph.end_step - start_step);
        lrs.push_back(anneal(lr_levels_[gi][ph.start_lr], lr_levels_[gi][ph.end_lr], pct));
        if (!momentum_key_.empty()) {
          groups[gi].set(momentum_key_, anneal(momentum_levels_[gi][ph.start_momentum],
                                               momentum_levels_[gi][ph.end_momentum], pct));
        }
        break;
      }
      start_step = ph.end_step;
    }
  }
  return lrs;
}

// ---- ReduceLROnPlateau

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options)
    : optimizer_(optimizer), options_(options) {
  const auto& o = options_;
  MOXING_CHECK(o.factor < 1.0, "ReduceLROnPlateau: factor must be < 1.0, got {}", o.factor);
  MOXING_CHECK(o.mode == "min" || o.mode == "max",
               "ReduceLROnPlateau: mode must be 'min' or 'max', got '{}'", o.mode);
  MOXING_CHECK(o.threshold_mode == "rel" || o.threshold_mode == "abs",
               "ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got '{}'",
               o.threshold_mode);
  min_lrs_ = per_group(o.min_lr, optimizer_.param_groups().size(), "ReduceLROnPlateau", "min_lr");
  best_ = o.mode == "min" ? kInf : -kInf;
  for (const auto& g : optimizer_.param_groups()) last_lr_.push_back(g.lr());
}

bool ReduceLROnPlateau::is_better(double a, double best) const {
  const auto& o = options_;
  if (o.mode == "min") {
    return o.threshold_mode == "rel" ? a < best * (1.0 - o.threshold) : a < best - o.threshold;
  }
  return o.threshold_mode == "rel" ? a > best * (o.threshold + 1.0) : a > best + o.threshold;
}

void ReduceLROnPlateau::step(double metric) {
  ++last_epoch_;
  if (is_better(metric, best_)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad steps during cooldown do not count
  }
  auto& groups = optimizer_.param_groups();
  if (num_bad_epochs_ > options_.patience) {
    for (size_t i = 0; i < groups.size(); ++i) {
      double old_lr = groups[i].lr();
      double new_lr = std::max(old_lr * options_.factor, min_lrs_.at(i));
      if (old_lr - new_lr > options_.eps) groups[i].set_lr(new_lr);
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
  last_lr_.clear();
  for (const auto& g : groups) last_lr_.push_back(g.lr());
}

nlohmann::json ReduceLROnPlateau::state_dict() const {
  // JSON has no infinity: the initial best is stored as null
  return {{"best", std::isfinite(best_) ? nlohmann::json(best_) : nlohmann::json(nullptr)},
          {"num_bad_epochs", num_bad_epochs_},
          {"cooldown_counter", cooldown_counter_},
          {"last_epoch", last_epoch_},
          {"min_lrs", min_lrs_},
          {"last_lr", last_lr_}};
}

void ReduceLROnPlateau::load_state_dict(const nlohmann::json& state) {
  const char* who = "ReduceLROnPlateau";
  MOXING_CHECK(state.contains("best") && (state["best"].is_null() || state["best"].is_number()),
               "{}: load_state_dict: missing \"best\"", who);
  best_ = state["best"].is_null() ? (options_.mode == "min" ? kInf : -kInf)
                                  : state["best"].get<double>();
  num_bad_epochs_ = json_int(state, "num_bad_epochs", who);
  cooldown_counter_ = json_int(state, "cooldown_counter", who);
  last_epoch_ = json_int(state, "last_epoch", who);
  min_lrs_ = json_doubles(state, "min_lrs", who);
  last_lr_ = json_doubles(state, "last_lr", who);
}

}  // namespace moxing::optim
