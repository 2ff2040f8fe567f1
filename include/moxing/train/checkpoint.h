// Training checkpoints: a folder with model.safetensors, optimizer.safetensors and
// trainer_state.json (step, epoch, RNG states, config, metrics), written atomically so that
// a crash never leaves a half-written checkpoint in place.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/nn/module.h"
#include "moxing/optim/optimizer.h"

namespace moxing::train {

/// Writes dir/model.safetensors, dir/optimizer.safetensors (when opt is given) and
/// dir/trainer_state.json in one atomic folder swap.
void save_checkpoint(const std::string& dir, const nn::Module& model, const optim::Optimizer* opt,
                     const nlohmann::json& trainer_state);

/// Loads the weights (strict) and, when opt is given, the optimizer state; returns the
/// trainer state. Errors name the folder and the missing or bad file.
nlohmann::json load_checkpoint(const std::string& dir, nn::Module& model, optim::Optimizer* opt);

/// The complete checkpoints "<run_dir>/checkpoints/step-N" (with trainer_state.json), by N.
std::vector<std::string> complete_checkpoints(const std::string& run_dir);

/// The complete checkpoint "<run_dir>/checkpoints/step-N" with the largest N, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

/// A generator's state as JSON ({"seed", "offset"}) and back.
nlohmann::json generator_state(const Generator& gen);
void set_generator_state(Generator& gen, const nlohmann::json& state);

}  // namespace moxing::train
