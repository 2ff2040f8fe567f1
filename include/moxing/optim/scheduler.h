// Learning-rate schedulers: each one sets the "lr" of every param group of an optimizer
// (OneCycleLR also its "momentum" or "beta1"). They follow torch.optim.lr_scheduler, including
// its recursive ("chainable") update forms, so the values match torch's step by step; the
// two warmup schedules are Hugging Face transformers' LambdaLR schedules.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moxing/optim/optimizer.h"

namespace moxing::optim {

/// Base of the schedulers stepped once per step (or epoch). Constructing one performs
/// torch's initial step: last_epoch becomes 0 and the groups get the schedule's first lr.
/// Call step() after optimizer.step(). The optimizer must outlive the scheduler.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// Advances last_epoch by one and writes the new lr into every param group.
  void step();
  /// The lr of each param group as set by the last step.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  /// The lr of each group when the scheduler was created.
  const std::vector<double>& base_lrs() const { return base_lrs_; }

  /// {"last_epoch", "step_count", "base_lrs", "last_lr"}; the schedule's settings are not
  /// saved: build the scheduler with the same arguments, then load.
  virtual nlohmann::json state_dict() const;
  /// Restores a state_dict() (the optimizer's group lrs come from its own state_dict).
  virtual void load_state_dict(const nlohmann::json& state);

 protected:
  explicit LRScheduler(Optimizer& optimizer);
  /// torch's _initial_step; call at the end of a derived constructor.
  void initial_step();
  /// The lr of each group for last_epoch_ (may read the groups' current lr).
  virtual std::vector<double> get_lr() = 0;
  /// The groups' current lrs.
  std::vector<double> group_lrs() const;

  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = -1;
  int64_t step_count_ = 0;
  bool is_initial_ = false;  // true during the constructor's step
  std::vector<double> last_lr_;
};

/// lr = base_lr * factor(last_epoch); matches torch.optim.lr_scheduler.LambdaLR.
class LambdaLR : public LRScheduler {
 public:
  LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> factor);

 protected:
  std::vector<double> get_lr() override;

 private:
  std::function<double(int64_t)> factor_;
};

/// Multiplies the lr by gamma every step_size steps.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 protected:
  std::vector<double> get_lr() override;

 private:
  int64_t step_size_;
  double gamma_;
};

/// Multiplies the lr by gamma at each milestone (a repeated milestone multiplies twice).
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);

 protected:
  std::vector<double> get_lr() override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

/// Multiplies the lr by gamma every step.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);

 protected:
  std::vector<double> get_lr() override;

 private:
  double gamma_;
};

/// lr = eta_min + (base_lr - eta_min)(1 + cos(pi t / T_max)) / 2, computed recursively as
/// torch does (and rising again after T_max, with period 2 T_max).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0.0);

 protected:
  std::vector<double> get_lr() override;

 private:
  int64_t T_max_;
  double eta_min_;
};

/// Hugging Face's warmup factors: t / warmup during warmup, then cosine (num_cycles 0.5: one
/// half cosine to 0) or linear decay to 0 at num_training_steps.
double cosine_with_warmup_factor(int64_t step, int64_t num_warmup_steps, int64_t num_training_steps,
                                 double num_cycles = 0.5);
double linear_with_warmup_factor(int64_t step, int64_t num_warmup_steps,
                                 int64_t num_training_steps);

/// transformers.get_cosine_schedule_with_warmup.
class CosineWithWarmupLR : public LambdaLR {
 public:
  CosineWithWarmupLR(Optimizer& optimizer, int64_t num_warmup_steps, int64_t num_training_steps,
                     double num_cycles = 0.5);
};

/// transformers.get_linear_schedule_with_warmup.
class LinearWithWarmupLR : public LambdaLR {
 public:
  LinearWithWarmupLR(Optimizer& optimizer, int64_t num_warmup_steps, int64_t num_training_steps);
};

struct OneCycleOptions {
  std::vector<double> max_lr;  // one per param group, or one for all
  int64_t total_steps = 0;
  double pct_start = 0.3;
  std::string anneal_strategy = "cos";  // or "linear"
  bool cycle_momentum = true;           // cycles "momentum" (SGD, RMSprop) or "beta1" (Adam)
  double base_momentum = 0.85;
  double max_momentum = 0.95;
  double div_factor = 25.0;       // initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;  // min_lr = initial_lr / final_div_factor
  bool three_phase = false;
};

/// The 1cycle policy: lr rises from initial_lr to max_lr over pct_start of total_steps and
/// anneals to min_lr (three_phase: back to initial_lr first), momentum moving the other way;
/// matches torch.optim.lr_scheduler.OneCycleLR. Stepping past total_steps is an error.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, const OneCycleOptions& options);

 protected:
  std::vector<double> get_lr() override;

 private:
  struct Phase {
    double end_step;
    int start_lr, end_lr, start_momentum, end_momentum;  // indices into a group's levels
  };
  double anneal(double start, double end, double pct) const;
  OneCycleOptions options_;
  std::string momentum_key_;  // "momentum", "beta1", or empty
  std::vector<Phase> phases_;
  // per group: {initial_lr, max_lr, min_lr} and {max_momentum, base_momentum}
  std::vector<std::array<double, 3>> lr_levels_;
  std::vector<std::array<double, 2>> momentum_levels_;
};

struct PlateauOptions {
  std::string mode = "min";  // "min": lower metric is better; "max": higher is better
  double factor = 0.1;       // new_lr = max(lr * factor, min_lr)
  int64_t patience = 10;     // bad steps tolerated before reducing
  double threshold = 1e-4;
  std::string threshold_mode = "rel";  // "rel": best * (1 -+ threshold); "abs": best -+ threshold
  int64_t cooldown = 0;                // steps to wait after a reduction
  std::vector<double> min_lr = {0.0};  // one per param group, or one for all
  double eps = 1e-8;                   // reductions smaller than eps are skipped
};

/// Reduces the lr when a metric stops improving; matches
/// torch.optim.lr_scheduler.ReduceLROnPlateau.
class ReduceLROnPlateau {
 public:
  ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options = {});
  /// Records one evaluation of the metric.
  void step(double metric);
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

 private:
  bool is_better(double a, double best) const;
  Optimizer& optimizer_;
  PlateauOptions options_;
  std::vector<double> min_lrs_;
  double best_;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
  int64_t last_epoch_ = 0;
  std::vector<double> last_lr_;
};

}  // namespace moxing::optim
