// Pieces shared by the classifier loop (trainer.cpp) and the language-model loop
// (lm_trainer.cpp). Internal; not installed.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "moxing/optim/optimizer.h"
#include "moxing/optim/scheduler.h"
#include "moxing/train/config.h"

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

}  // namespace moxing::train::detail
