// The optimizer base class: parameter groups with named hyper-parameters, per-parameter
// state tensors, zero_grad, and a state_dict that round-trips bitwise. Concrete optimizers
// (sgd.h, adam.h, rmsprop.h, adagrad.h) implement one parameter's update; this class owns
// the loops over groups, grad checks and NoGradGuard. It mirrors torch.optim.Optimizer.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing::optim {

/// Hyper-parameters by name ("lr", "weight_decay", "momentum", "beta1", ...). Flags such as
/// "nesterov" or "amsgrad" are stored as 0 or 1.
using Hyper = std::map<std::string, double>;

/// Parameters that share hyper-parameters. At construction `options` holds only the
/// group's overrides; the optimizer then fills in every other key from its defaults.
struct ParamGroup {
  std::vector<Tensor> params;
  Hyper options;

  /// The value of a hyper-parameter; an error naming the known keys when absent.
  double get(const std::string& key) const;
  /// Sets an existing hyper-parameter (schedulers use this for "lr", "momentum", "beta1").
  void set(const std::string& key, double value);
  bool has(const std::string& key) const { return options.count(key) != 0; }
  double lr() const { return get("lr"); }
  void set_lr(double lr) { set("lr", lr); }
};

/// Optimizer state in a form that files can hold: tensors named "state.<i>.<key>" (i is the
/// parameter's index counting through all groups in order, as in torch) and a JSON object
/// {"optimizer": name, "param_groups": [{hyper-parameters..., "params": [indices]}]}.
struct OptimizerState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  nlohmann::json hyper;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Updates every parameter that has a gradient, in place and without recording a graph.
  /// The groups' hyper-parameters are checked first, since they may have been changed.
  void step();
  /// Sets every parameter's gradient to undefined (torch's zero_grad(set_to_none=True)).
  void zero_grad();

  /// "sgd", "adam", "adamw", "rmsprop" or "adagrad".
  const std::string& name() const { return name_; }
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  /// The hyper-parameters a group gets for every key it does not override.
  const Hyper& defaults() const { return defaults_; }
  /// Adds a group (its overrides completed from defaults()); a parameter may be in one group.
  void add_param_group(ParamGroup group);

  /// The state tensors of parameter i (counted through all groups); empty before its first
  /// update. The step count is not among them: see step_count.
  std::map<std::string, Tensor>& state(size_t param_index);
  /// How many updates parameter i has had, kept on the host so that a step never reads a
  /// tensor back (0 for optimizers without a step count, such as SGD).
  int64_t step_count(size_t param_index) const;
  size_t num_params() const { return state_.size(); }

  /// The moment tensors share storage with the live state (they change with the next step):
  /// clone them to keep a snapshot. A parameter's step count is the 0-d f64 "state.<i>.step".
  OptimizerState state_dict() const;
  /// Restores hyper-parameters and copies of the state tensors. The groups must have the
  /// same sizes and parameter shapes as when the state was saved.
  void load_state_dict(const OptimizerState& state);

 protected:
  Optimizer(std::string name, Hyper defaults);
  /// Adds the constructor's groups; concrete optimizers call it once their checks are ready.
  void init_groups(std::vector<ParamGroup> groups);
  /// Throws moxing::Error naming the optimizer and the bad value.
  virtual void check_options(const Hyper& options) const = 0;
  /// One parameter's update; grad is defined and shaped like param. An optimizer that counts
  /// steps increments `step` (the parameter's host-side count, 0 before its first update).
  virtual void update(const ParamGroup& group, Tensor& param, const Tensor& grad,
                      std::map<std::string, Tensor>& state, int64_t& step) = 0;

 private:
  std::string name_;
  Hyper defaults_;
  std::vector<ParamGroup> groups_;
  std::vector<std::map<std::string, Tensor>> state_;
  std::vector<int64_t> steps_;  // per parameter, beside state_
};

/// Hyper-parameters of a typed options struct (one with a visit(f) listing its fields).
template <class Options>
Hyper to_hyper(Options options) {
  Hyper h;
  options.visit([&](const char* key, auto& value) { h[key] = static_cast<double>(value); });
  return h;
}

/// Keys of a typed options struct, for error messages ("lr, momentum, ...").
template <class Options>
std::string option_keys(Options options) {
  std::string keys;
  options.visit(
      [&](const char* key, auto&) { keys += (keys.empty() ? "" : ", ") + std::string(key); });
  return keys;
}

/// A typed options struct with the fields that `overrides` names; an unknown key is an error
/// naming the optimizer and listing the valid keys.
template <class Options>
Options options_from_hyper(const Hyper& overrides, const char* optimizer) {
  Options options;
  for (const auto& entry : overrides) {
    // named copies: clang 14 cannot capture structured bindings in the lambda below
    const std::string& key = entry.first;
    const double value = entry.second;
    bool found = false;
    options.visit([&](const char* k, auto& field) {
      if (key == k) {
        field = static_cast<std::remove_reference_t<decltype(field)>>(value);
        found = true;
      }
    });
    if (!found) {
      fail("{}: unknown option '{}' (valid: {})", optimizer, key, option_keys(Options{}));
    }
  }
  return options;
}

/// Builds an optimizer by name ("sgd", "adam", "adamw", "rmsprop", "adagrad"); `defaults`
/// overrides the optimizer's own defaults. Unknown names and keys are errors listing the
/// valid ones.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups,
                                          const Hyper& defaults = {});
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<Tensor> params,
                                          const Hyper& defaults = {});

}  // namespace moxing::optim
