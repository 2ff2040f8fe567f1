// Module containers: Sequential (chains one-tensor modules), ModuleList (indexed) and
// ModuleDict (named). Children are named "0", "1", ... or by their key, so parameters get
// torch's dotted names ("0.weight", "blocks.2.bias"). Each child is held through a Slot, so a
// module put in its place with replace_module is the one indexing and forward return.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "moxing/nn/module.h"

namespace moxing::nn {

/// Applies its modules in order: forward(x) = m_n(...m_1(x)); matches nn.Sequential.
class Sequential : public UnaryModule {
 public:
  Sequential() = default;
  template <class... Ms>
  explicit Sequential(std::shared_ptr<Ms>... modules) {
    (push_back(std::move(modules)), ...);
  }
  /// Appends a module named by its index.
  void push_back(std::shared_ptr<UnaryModule> module);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return slots_.size(); }
  bool empty() const { return slots_.empty(); }
  /// The module at index i (negative counts from the end).
  std::shared_ptr<UnaryModule> operator[](int64_t i) const;
  /// The module at index i as an M (throws when it is not one).
  template <class M>
  std::shared_ptr<M> at(int64_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    MOXING_CHECK(m != nullptr, "Sequential: module {} is a {}, not the type asked for", i,
                 (*this)[i]->type_name());
    return m;
  }
  /// Iteration yields the slots in order (`for (auto& m : seq) m->forward(x)`).
  auto begin() const { return slots_.begin(); }
  auto end() const { return slots_.end(); }
  std::string type_name() const override { return "Sequential"; }

 private:
  std::vector<Slot<UnaryModule>> slots_;
};

/// Modules held by index, no forward; matches nn.ModuleList.
class ModuleList : public Module {
 public:
  ModuleList() = default;
  template <class... Ms>
  explicit ModuleList(std::shared_ptr<Ms>... modules) {
    (push_back(std::move(modules)), ...);
  }
  void push_back(std::shared_ptr<Module> module);
  size_t size() const { return slots_.size(); }
  bool empty() const { return slots_.empty(); }
  /// The module at index i (negative counts from the end).
  std::shared_ptr<Module> operator[](int64_t i) const;
  template <class M>
  std::shared_ptr<M> at(int64_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    MOXING_CHECK(m != nullptr, "ModuleList: module {} is a {}, not the type asked for", i,
                 (*this)[i]->type_name());
    return m;
  }
  /// Iteration yields the slots in order.
  auto begin() const { return slots_.begin(); }
  auto end() const { return slots_.end(); }
  std::string type_name() const override { return "ModuleList"; }

 private:
  std::vector<Slot<Module>> slots_;
};

/// Modules held by name in insertion order, no forward; matches nn.ModuleDict.
class ModuleDict : public Module {
 public:
  /// Adds a module under key (a new, non-empty name without '.').
  void insert(const std::string& key, std::shared_ptr<Module> module);
  bool contains(const std::string& key) const;
  /// The module called key; the error lists the keys there are.
  std::shared_ptr<Module> operator[](const std::string& key) const;
  template <class M>
  std::shared_ptr<M> at(const std::string& key) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[key]);
    MOXING_CHECK(m != nullptr, "ModuleDict: module \"{}\" is a {}, not the type asked for", key,
                 (*this)[key]->type_name());
    return m;
  }
  std::vector<std::string> keys() const;
  size_t size() const { return items_.size(); }
  /// (key, current module) in insertion order.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> items() const;
  std::string type_name() const override { return "ModuleDict"; }

 private:
  std::vector<std::pair<std::string, Slot<Module>>> items_;
};

}  // namespace moxing::nn
