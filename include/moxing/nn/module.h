// nn::Module: the base of every layer (torch.nn.Module). A module owns named parameters,
// buffers and child modules in registration order, and gives them dotted names
// ("encoder.layer.0.weight") for state_dict / load_state_dict. Children a forward calls are
// held through Slots, so module surgery (replace_module, replace_modules) changes what the
// forward runs. It holds no forward of its own: each layer defines `Tensor forward(...)` with
// the signature it needs.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
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

/// How load_state_dict loads: {.strict = false}, {.assign = true, .convert_dtype = true}.
struct LoadOptions {
  /// Missing and unexpected keys are an error (they are always reported in the result).
  bool strict = true;
  /// Each parameter and buffer takes the given tensor's storage, strides and offset instead
  /// of a copy of its values (torch's assign=True): zero copies from a mapped safetensors
  /// file. Every handle to the parameter (the layer's member) sees the new storage; a
  /// strided given tensor leaves the layer reading a view.
  bool assign = false;
  /// A given tensor of another dtype is converted to the model's dtype; without this a dtype
  /// mismatch is an error.
  bool convert_dtype = false;
};

class Module;

/// A handle to one child of a module, by (owner, registration index): `slot->forward(x)`
/// calls the owner's current child, so replacing that child (Module::replace_module) changes
/// what the owner's forward runs. M is the interface the owner calls the child through
/// (often UnaryModule); a replacement must be an M. A Slot lives as a member of its owner
/// and must not outlive it.
template <class M>
class Slot {
 public:
  Slot() = default;
  M* operator->() const { return ptr(); }
  M& operator*() const { return *ptr(); }
  /// The current child.
  std::shared_ptr<M> get() const;
  /// The current child as a T (e.g. the concrete Linear, to read its weight); throws
  /// naming the child and its type when it is not one.
  template <class T>
  std::shared_ptr<T> as() const;
  /// False for a default-constructed slot (an optional child that was not registered).
  explicit operator bool() const { return owner_ != nullptr; }

 private:
  friend class Module;
  Slot(Module* owner, size_t index) : owner_(owner), index_(index) {}
  M* ptr() const;

  Module* owner_ = nullptr;
  size_t index_ = 0;
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
  /// Adds a child that the forward calls through the returned slot; M is the interface it
  /// is called as and is written out: `fc = register_slot<UnaryModule>("fc", linear)`.
  /// replace_module accepts any M in its place.
  template <class M>
  Slot<M> register_slot(const std::string& name, std::type_identity_t<std::shared_ptr<M>> module) {
    static_assert(std::is_base_of_v<Module, M>, "register_slot: M must derive from Module");
    return Slot<M>(this, register_child(name, std::move(module), &is_a<M>, typeid(M), false));
  }
  /// Adds a child and returns it as a plain pointer. Such a child cannot be replaced (the
  /// pointer kept by its parent would go stale): register children the forward calls with
  /// register_slot.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    register_child(name, module, &is_a<M>, typeid(M), true);
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

  // ---- module surgery (paths are named_modules' names: "transformer.h.0.attn.c_attn")
  /// The descendant at path; the error names the first part that does not exist.
  std::shared_ptr<Module> get_submodule(const std::string& path) const;
  /// Puts module in place of the descendant at path: the parent's forward calls it from now
  /// on, and parameters, state_dict and summary list it under the same path. Throws when the
  /// path does not exist, when module is not the interface the parent calls (naming both
  /// types), or when the parent holds that child through register_module.
  void replace_module(const std::string& path, std::shared_ptr<Module> module);
  /// Calls fn on this module and every descendant that is a T, in named_modules order.
  template <class T>
  void for_each_module(const std::function<void(const std::string& path, T& module)>& fn) {
    for (const auto& [path, m] : named_modules()) {
      if (auto* t = dynamic_cast<T*>(m)) fn(path, *t);
    }
  }
  /// Calls fn on every descendant that is a T and puts what it returns in its place (nullptr
  /// keeps the old one); the descendants of a replaced module are not visited. A module
  /// found under several paths is passed to fn once and replaced under all of them. Every
  /// replacement is checked before any is made. Returns how many paths were replaced.
  template <class T>
  int replace_modules(const std::function<std::shared_ptr<Module>(const std::string& path,
                                                                  std::shared_ptr<T> module)>& fn) {
    return replace_modules_impl(
        [&](const std::string& path, const std::shared_ptr<Module>& m) -> std::shared_ptr<Module> {
          auto t = std::dynamic_pointer_cast<T>(m);
          return t ? fn(path, std::move(t)) : nullptr;
        });
  }

  // ---- modes
  /// Sets training mode on this module and every descendant.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- state
  /// Parameters then buffers of each module, modules depth first, as torch's state_dict.
  /// The tensors are the module's own (not copies). Shared tensors appear under every name.
  TensorList state_dict() const;
  /// Loads state into the parameters and buffers (no autograd): copies values in place, or
  /// with options.assign takes the given tensors' storage. Throws one moxing::Error listing
  /// every mis-shaped key, every dtype mismatch (unless options.convert_dtype), and in strict
  /// mode every missing and unexpected key too; nothing is loaded when it throws. Parameters
  /// keep requires_grad; a parameter registered under two names is loaded once, from its
  /// first name.
  LoadStateDictResult load_state_dict(const TensorList& state, const LoadOptions& options);
  /// load_state_dict(state, {.strict = strict}).
  LoadStateDictResult load_state_dict(const TensorList& state, bool strict = true) {
    return load_state_dict(state, LoadOptions{.strict = strict});
  }
  /// Converts every floating parameter and buffer to dtype in place (the handles kept as
  /// members follow); gradients are cleared.
  void to(DType dtype);
  /// Moves every parameter and buffer to device in place (the handles kept as members follow),
  /// as torch's module.to(device); gradients are cleared. cpu -> meta keeps shapes only.
  void to(Device device);

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
  template <class>
  friend class Slot;
  // rewrites, in place, each parameter and buffer (once) for which needs holds as convert(it)
  void convert_tensors(const std::function<bool(const Tensor&)>& needs,
                       const std::function<Tensor(const Tensor&)>& convert);
  using Accepts = bool (*)(const Module&);
  template <class M>
  static bool is_a(const Module& m) {
    if constexpr (std::is_same_v<M, Module>) {
      return true;
    } else {
      return dynamic_cast<const M*>(&m) != nullptr;
    }
  }
  // A child and what its parent needs it to be.
  struct Child {
    std::string name;
    std::shared_ptr<Module> module;
    Accepts accepts;                  // the interface check for a replacement
    const std::type_info* interface;  // that interface, for messages
    bool fixed;                       // registered with register_module: not replaceable
  };
  size_t register_child(const std::string& name, std::shared_ptr<Module> module, Accepts accepts,
                        const std::type_info& interface, bool fixed);
  // Throws unless module may take child i's place; path names the child in errors.
  void check_replacement(size_t i, const Module& module, const std::string& path) const;
  int replace_modules_impl(const std::function<std::shared_ptr<Module>(
                               const std::string&, const std::shared_ptr<Module>&)>& fn);
  [[noreturn]] void fail_slot_type(size_t index, const std::type_info& wanted) const;
  void check_new_name(const std::string& name, const char* kind) const;
  void collect_modules(const std::string& prefix,
                       std::vector<std::pair<std::string, Module*>>& out) const;
  void collect_state(const std::string& prefix, TensorList& out) const;
  void summary_lines(const std::string& name, int indent, std::string& out) const;

  TensorList parameters_;
  TensorList buffers_;
  std::vector<Child> children_;
};

template <class M>
M* Slot<M>::ptr() const {
  MOXING_CHECK(owner_ != nullptr, "Slot: the slot is empty (its child was never registered)");
  // replace_module checked that the child is an M
  return static_cast<M*>(owner_->children_[index_].module.get());
}

template <class M>
std::shared_ptr<M> Slot<M>::get() const {
  if (owner_ == nullptr) return nullptr;
  return std::static_pointer_cast<M>(owner_->children_[index_].module);
}

template <class M>
template <class T>
std::shared_ptr<T> Slot<M>::as() const {
  MOXING_CHECK(owner_ != nullptr, "Slot: the slot is empty (its child was never registered)");
  auto t = std::dynamic_pointer_cast<T>(owner_->children_[index_].module);
  if (t == nullptr) owner_->fail_slot_type(index_, typeid(T));
  return t;
}

/// A module with one tensor in and one out; what Sequential chains.
class UnaryModule : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace moxing::nn
