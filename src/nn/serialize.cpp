// save_module / load_module: a module's state_dict as one safetensors file.
#include "moxing/nn/serialize.h"

#include "moxing/io/safetensors.h"

namespace moxing::nn {

void save_module(const Module& module, const std::string& path) {
  NamedTensors tensors;
  for (const auto& [n, t] : module.state_dict()) tensors.emplace_back(n, t.detach());
  save_safetensors(path, tensors);
}

LoadStateDictResult load_module(Module& module, const std::string& path,
                                const LoadOptions& options) {
  SafetensorsFile file = load_safetensors(path);
  return module.load_state_dict(file.tensors, options);
}

LoadStateDictResult load_module(Module& module, const std::string& path, bool strict) {
  return load_module(module, path, LoadOptions{.strict = strict});
}

}  // namespace moxing::nn
