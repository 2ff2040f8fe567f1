// Optimizer base: group bookkeeping, the step loop, state_dict and the factory by name.
#include "moxing/optim/optimizer.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "moxing/autograd/node.h"
#include "moxing/optim/adagrad.h"
#include "moxing/optim/adam.h"
#include "moxing/optim/rmsprop.h"
#include "moxing/optim/sgd.h"

namespace moxing::optim {
namespace {

std::string keys_of(const Hyper& h) {
  std::string keys;
  for (const auto& [k, v] : h) keys += (keys.empty() ? "" : ", ") + k;
  return keys;
}

}  // namespace

double ParamGroup::get(const std::string& key) const {
  auto it = options.find(key);
  if (it == options.end()) {
    fail("param group has no option '{}' (it has: {})", key, keys_of(options));
  }
  return it->second;
}

void ParamGroup::set(const std::string& key, double value) {
  auto it = options.find(key);
  if (it == options.end()) {
    fail("param group has no option '{}' (it has: {})", key, keys_of(options));
  }
  it->second = value;
}

Optimizer::Optimizer(std::string name, Hyper defaults)
    : name_(std::move(name)), defaults_(std::move(defaults)) {}

void Optimizer::init_groups(std::vector<ParamGroup> groups) {
  check_options(defaults_);
  size_t total = 0;
  for (const auto& g : groups) total += g.params.size();
  MOXING_CHECK(total > 0, "{}: got an empty parameter list", name_);
  for (auto& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
  for (const auto& [key, value] : group.options) {
    if (defaults_.count(key) == 0) {
      fail("{}: unknown option '{}' in a param group (valid: {})", name_, key, keys_of(defaults_));
    }
  }
  for (const auto& [key, value] : defaults_) group.options.emplace(key, value);
  check_options(group.options);
  std::set<const TensorImpl*> seen;
  for (const auto& g : groups_) {
    for (const auto& p : g.params) seen.insert(p.impl());
  }
  for (const auto& p : group.params) {
    MOXING_CHECK(p.defined(), "{}: a parameter is an undefined tensor", name_);
    MOXING_CHECK(is_floating(p.dtype()), "{}: parameters must be floating point, got {}", name_,
                 dtype_name(p.dtype()));
    MOXING_CHECK(p.is_leaf(), "{}: can't optimize a non-leaf tensor", name_);
    MOXING_CHECK(seen.insert(p.impl()).second,
                 "{}: a parameter appears more than once in the parameter groups", name_);
  }
  state_.resize(state_.size() + group.params.size());
  steps_.resize(state_.size(), 0);
  groups_.push_back(std::move(group));
}

std::map<std::string, Tensor>& Optimizer::state(size_t param_index) {
  MOXING_CHECK(param_index < state_.size(), "{}: parameter index {} out of range ({} parameters)",
               name_, param_index, state_.size());
  return state_[param_index];
}

int64_t Optimizer::step_count(size_t param_index) const {
  MOXING_CHECK(param_index < steps_.size(), "{}: parameter index {} out of range ({} parameters)",
               name_, param_index, steps_.size());
  return steps_[param_index];
}

void Optimizer::step() {
  NoGradGuard no_grad;
  size_t total = 0;
  for (const auto& group : groups_) {
    total += group.params.size();
    check_options(group.options);  // a scheduler or the user may have changed them
  }
  MOXING_CHECK(total == state_.size(),
               "{}: the param groups hold {} parameters but {} were registered; add parameters "
               "with add_param_group",
               name_, total, state_.size());
  size_t index = 0;
  for (auto& group : groups_) {
    for (auto& p : group.params) {
      const size_t i = index++;
      Tensor g = p.grad();
      if (!g.defined()) continue;
      MOXING_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype(),
                   "{}: gradient {} {} does not match parameter {} {}", name_, shape_str(g.shape()),
                   dtype_name(g.dtype()), shape_str(p.shape()), dtype_name(p.dtype()));
      update(group, p, g, state_[i], steps_[i]);
    }
  }
}

void Optimizer::zero_grad() {
  for (auto& group : groups_) {
    for (auto& p : group.params) p.zero_grad();
  }
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;
  nlohmann::json groups = nlohmann::json::array();
  size_t index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    nlohmann::json jg = nlohmann::json::object();
    for (const auto& [key, value] : g.options) jg[key] = value;
    nlohmann::json ids = nlohmann::json::array();
    for (size_t k = 0; k < g.params.size(); ++k, ++index) {
      ids.push_back(index);
      // the step count joins the tensors in key order, as a 0-d f64 (torch's layout)
      std::map<std::string, Tensor> entries = state_[index];
      if (steps_[index] > 0) {
        entries["step"] = scalar_tensor(static_cast<double>(steps_[index]),
                                        TensorOptions(DType::f64).device(kCPU));
      }
      for (const auto& [key, t] : entries) {
        out.tensors.emplace_back(fmt::format("state.{}.{}", index, key), t);
      }
    }
    jg["params"] = ids;
    groups.push_back(jg);
  }
  out.hyper = {{"optimizer", name_}, {"param_groups", groups}};
  return out;
}

void Optimizer::load_state_dict(const OptimizerState& state) {
  const nlohmann::json& h = state.hyper;
  MOXING_CHECK(h.is_object() && h.contains("param_groups") && h["param_groups"].is_array(),
               "{}: load_state_dict: the state has no \"param_groups\" array", name_);
  if (h.contains("optimizer")) {
    MOXING_CHECK(h["optimizer"] == name_, "{}: load_state_dict: the state is from a {} optimizer",
                 name_, h["optimizer"].dump());
  }
  const auto& jgroups = h["param_groups"];
  MOXING_CHECK(jgroups.size() == groups_.size(),
               "{}: load_state_dict: the state has {} param groups, the optimizer {}", name_,
               jgroups.size(), groups_.size());
  // check everything before changing anything
  std::vector<Hyper> options(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const auto& jg = jgroups[gi];
    MOXING_CHECK(jg.is_object() && jg.contains("params") && jg["params"].is_array(),
                 "{}: load_state_dict: param group {} has no \"params\" array", name_, gi);
    MOXING_CHECK(jg["params"].size() == groups_[gi].params.size(),
                 "{}: load_state_dict: param group {} has {} parameters in the state, {} here",
                 name_, gi, jg["params"].size(), groups_[gi].params.size());
    options[gi] = groups_[gi].options;
    for (const auto& [key, value] : jg.items()) {
      if (key == "params") continue;
      MOXING_CHECK(options[gi].count(key) != 0 && value.is_number(),
                   "{}: load_state_dict: unknown or non-numeric option '{}' in param group {}",
                   name_, key, gi);
      options[gi][key] = value.get<double>();
    }
    check_options(options[gi]);
  }
  std::vector<const Tensor*> params;
  for (const auto& g : groups_) {
    for (const auto& p : g.params) params.push_back(&p);
  }
  std::vector<std::map<std::string, Tensor>> new_state(state_.size());
  std::vector<int64_t> new_steps(state_.size(), 0);
  for (const auto& [name, t] : state.tensors) {
    size_t i = 0;
    size_t key_pos = 0;
    int consumed = 0;
    bool ok = name.rfind("state.", 0) == 0 &&
              std::sscanf(name.c_str() + 6, "%zu%n", &i, &consumed) == 1 &&
              name.size() > 6 + static_cast<size_t>(consumed) + 1 &&
              name[6 + static_cast<size_t>(consumed)] == '.';
    MOXING_CHECK(ok, "{}: load_state_dict: bad state tensor name '{}'", name_, name);
    key_pos = 6 + static_cast<size_t>(consumed) + 1;
    MOXING_CHECK(i < params.size(), "{}: load_state_dict: '{}' names parameter {} of {}", name_,
                 name, i, params.size());
    MOXING_CHECK(t.defined(), "{}: load_state_dict: '{}' is undefined", name_, name);
    std::string key = name.substr(key_pos);
    if (key == "step") {
      // the one host read of a step count: when a checkpoint is loaded, never in step()
      MOXING_CHECK(t.numel() == 1, "{}: load_state_dict: '{}' has shape {}, expected one value",
                   name_, name, shape_str(t.shape()));
      check_has_values("load_state_dict", t);
      double v = t.item<double>();
      MOXING_CHECK(v >= 0.0 && v == std::floor(v) && v < 9.0e15,
                   "{}: load_state_dict: '{}' is {}, not a step count", name_, name, v);
      new_steps[i] = static_cast<int64_t>(v);
      continue;
    }
    MOXING_CHECK(t.shape() == params[i]->shape(),
                 "{}: load_state_dict: '{}' has shape {}, parameter {} has shape {}", name_, name,
                 shape_str(t.shape()), i, shape_str(params[i]->shape()));
    new_state[i][key] = t.detach().clone().to(params[i]->device(), params[i]->dtype());
  }
  for (size_t gi = 0; gi < groups_.size(); ++gi) groups_[gi].options = options[gi];
  state_ = std::move(new_state);
  steps_ = std::move(new_steps);
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups,
                                          const Hyper& defaults) {
  if (name == "sgd") {
    return std::make_unique<SGD>(std::move(groups),
                                 options_from_hyper<SGDOptions>(defaults, "sgd"));
  }
  if (name == "adam") {
    return std::make_unique<Adam>(std::move(groups),
                                  options_from_hyper<AdamOptions>(defaults, "adam"));
  }
  if (name == "adamw") {
    return std::make_unique<AdamW>(std::move(groups),
                                   options_from_hyper<AdamWOptions>(defaults, "adamw"));
  }
  if (name == "rmsprop") {
    return std::make_unique<RMSprop>(std::move(groups),
                                     options_from_hyper<RMSpropOptions>(defaults, "rmsprop"));
  }
  if (name == "adagrad") {
    return std::make_unique<Adagrad>(std::move(groups),
                                     options_from_hyper<AdagradOptions>(defaults, "adagrad"));
  }
  fail("unknown optimizer '{}' (valid: sgd, adam, adamw, rmsprop, adagrad)", name);
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<Tensor> params,
                                          const Hyper& defaults) {
  std::vector<ParamGroup> groups;
  groups.push_back(ParamGroup{std::move(params), {}});
  return make_optimizer(name, std::move(groups), defaults);
}

}  // namespace moxing::optim
