// Optimizer state on disk: optimizer.safetensors holds the state tensors ("state.<i>.<key>")
// and, in its metadata under "optimizer", the JSON of the hyper-parameters and groups.
#pragma once

#include <string>

#include "moxing/optim/optimizer.h"

namespace moxing::optim {

/// Writes opt.state_dict() to path (atomically, via safetensors).
void save_optimizer(const Optimizer& opt, const std::string& path);
/// Writes an optimizer state (e.g. one whose tensors a caller rearranged) as save_optimizer does.
void save_optimizer_state(const OptimizerState& state, const std::string& path);
/// Reads what save_optimizer wrote, as owned tensors; errors name the file.
OptimizerState read_optimizer_state(const std::string& path);
/// Restores state saved by save_optimizer into an optimizer built over the same parameters;
/// errors name the file and what does not match.
void load_optimizer(Optimizer& opt, const std::string& path);

}  // namespace moxing::optim
