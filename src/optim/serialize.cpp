// Optimizer state <-> optimizer.safetensors.
#include "moxing/optim/serialize.h"

#include "moxing/io/safetensors.h"

namespace moxing::optim {

void save_optimizer(const Optimizer& opt, const std::string& path) {
  save_optimizer_state(opt.state_dict(), path);
}

void save_optimizer_state(const OptimizerState& st, const std::string& path) {
  save_safetensors(path, st.tensors,
                   {{"format", "moxing-optimizer"}, {"optimizer", st.hyper.dump()}});
}

OptimizerState read_optimizer_state(const std::string& path) {
  SafetensorsFile f = load_safetensors(path);
  auto it = f.metadata.find("optimizer");
  if (it == f.metadata.end()) {
    fail("{}: not an optimizer state file (no \"optimizer\" metadata entry)", path);
  }
  OptimizerState st;
  try {
    st.hyper = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the \"optimizer\" metadata is not valid JSON ({})", path, e.what());
  }
  // own the values: the file's mapping is released when f goes out of scope
  for (const auto& [name, t] : f.tensors) st.tensors.emplace_back(name, t.clone());
  return st;
}

void load_optimizer(Optimizer& opt, const std::string& path) {
  OptimizerState st = read_optimizer_state(path);
  try {
    opt.load_state_dict(st);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
}

}  // namespace moxing::optim
