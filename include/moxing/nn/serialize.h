// Saving and loading a module's state_dict as one safetensors file (model.safetensors).
// Only tensors are stored: the module's structure comes from the code that builds it.
#pragma once

#include <string>

#include "moxing/nn/module.h"

namespace moxing::nn {

/// Writes module.state_dict() to path (safetensors, atomically).
void save_module(const Module& module, const std::string& path);
/// Loads path into module with load_state_dict(state, options); returns what it reports. With
/// options.assign the parameters view the file's private mapping (no copy).
LoadStateDictResult load_module(Module& module, const std::string& path,
                                const LoadOptions& options);
/// load_module(module, path, {.strict = strict}).
LoadStateDictResult load_module(Module& module, const std::string& path, bool strict = true);

}  // namespace moxing::nn
