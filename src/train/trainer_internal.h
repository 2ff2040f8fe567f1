// Pieces of the training loop shared by its files (loop.cpp, the tasks). Internal; not installed.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "moxing/core/rng.h"
#include "moxing/models/family.h"
#include "moxing/optim/optimizer.h"
#include "moxing/optim/scheduler.h"
#include "moxing/train/config.h"
#include "moxing/train/task.h"

namespace moxing::train::detail {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// The optimizer's hyper-parameters from [optim] (only the keys that optimizer knows).
optim::Hyper optimizer_hyper(const OptimConfig& c);

/// The [schedule] scheduler over total_steps optimizer steps.
std::unique_ptr<optim::LRScheduler> make_scheduler(const ScheduleConfig& c, optim::Optimizer& opt,
                                                   int64_t total_steps);

inline nlohmann::json opt_number(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

/// The run's model: the [model] family built from the config and the data's facts (the fields
/// setup_data returned), or a pretrained folder with the config's fields on top. Under
/// DeviceGuard(kMeta) a pretrained folder's weights are not read.
models::Model build_run_model(const Config& config, const nlohmann::json& facts, Generator* gen,
                              const Run& run);

/// Where a run stands: the step, the best validation value so far, the time spent before a
/// resume, and the last checkpoint written.
struct RunPosition {
  int64_t step = 0;
  std::optional<double> best;
  int64_t best_step = 0;
  double prior_seconds = 0;
  int64_t last_saved_step = -1;
  std::string last_good_checkpoint;
};

}  // namespace moxing::train::detail
