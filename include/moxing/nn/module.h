// nn::Module: the base of every layer (torch.nn.Module). A module owns named parameters,
// buffers and child modules in registration order, and gives them dotted names
// ("encoder.layer.0.weight") for state_dict / load_state_dict. It holds no forward of its own:
// each layer defines `Tensor forward(...)` with the signature it needs.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing::nn {

/// Named tensors in a fixed order (state_dict, named_parameters).
using TensorList = std::vector<std::pair<std::string, Tensor>>;

/// What load_state_dict found besides the keys it loaded.
struct LoadStateDictResult {
  std::vector<std::string> missing_keys;     // in the model, not in the checkpoint
  std::vector<std::string> unexpected_keys;  // in the checkpoint, not in the model
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- registration (names are non-empty, without '.', unique within the module)
  /// Stores t as a parameter (a leaf; requires_grad set as asked) and returns the same handle,
  /// to be kept as a member. An undefined t registers nothing (torch's None), e.g. bias=False.
  /// Registering an existing parameter name again replaces it (e.g. to tie weights:
  /// `head->weight = head->register_parameter("weight", emb->weight)`).
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  /// Stores t as a persistent buffer (in state_dict, never trained), e.g. running_mean.
  Tensor register_buffer(const std::string& name, Tensor t);
  /// Adds a child module and returns it.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    register_module_impl(name, module);
    return module;
  }

  // ---- traversal (registration order; children's entries as "child.name")
  /// Every parameter once (one shared between two modules is listed under its first name).
  TensorList named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  TensorList named_buffers(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  /// This module ("") then every descendant once, depth first; pointers live as long as *this.
  std::vector<std::pair<std::string, Module*>> named_modules() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  std::vector<std::shared_ptr<Module>> children() const;

  // ---- modes
  /// Sets training mode on this module and every descendant.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- state
  /// Parameters then buffers of each module, modules depth first, as torch's state_dict.
  /// The tensors are the module's own (not copies). Shared tensors appear under every name.
  TensorList state_dict() const;
  /// Copies values in place (no autograd; dtype converted). Throws one moxing::Error listing
  /// every mis-shaped key, and in strict mode every missing and unexpected key too; nothing is
  /// copied when it throws.
  LoadStateDictResult load_state_dict(const TensorList& state, bool strict = true);
  /// Converts every floating parameter and buffer to dtype in place (the handles kept as
  /// members follow); gradients are cleared.
  void to(DType dtype);

  /// Number of parameter elements (each shared parameter counted once).
  int64_t num_parameters(bool trainable_only = false) const;
  /// Clears the gradient of every parameter.
  void zero_grad();

  /// A tree like torch's print(model), with parameter shapes and counts and a total line.
  std::string summary() const;
  /// "Linear", "Sequential", ...
  virtual std::string type_name() const { return "Module"; }
  /// The constructor arguments shown in summary(), e.g. "in_features=3, out_features=4".
  virtual std::string extra_repr() const { return ""; }

 protected:
  bool training_ = true;

 private:
  void register_module_impl(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name, const char* kind) const;
  void collect_modules(const std::string& prefix,
                       std::vector<std::pair<std::string, Module*>>& out) const;
  void collect_state(const std::string& prefix, TensorList& out) const;
  void summary_lines(const std::string& name, int indent, std::string& out) const;

  TensorList parameters_;
  TensorList buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

/// A module with one tensor in and one out; what Sequential chains.
class UnaryModule : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace moxing::nn
