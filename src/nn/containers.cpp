// Sequential, ModuleList, ModuleDict: registration under index or key names.
#include "moxing/nn/containers.h"

namespace moxing::nn {

namespace {

size_t wrap_index(int64_t i, size_t n, const char* container) {
  int64_t size = static_cast<int64_t>(n);
  int64_t w = i < 0 ? i + size : i;
  MOXING_CHECK(w >= 0 && w < size, "{}: index {} is out of range for {} modules", container, i,
               size);
  return static_cast<size_t>(w);
}

}  // namespace

void Sequential::push_back(std::shared_ptr<UnaryModule> module) {
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : modules_) y = m->forward(y);
  return y;
}

std::shared_ptr<UnaryModule> Sequential::operator[](int64_t i) const {
  return modules_[wrap_index(i, modules_.size(), "Sequential")];
}

void ModuleList::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

std::shared_ptr<Module> ModuleList::operator[](int64_t i) const {
  return modules_[wrap_index(i, modules_.size(), "ModuleList")];
}

void ModuleDict::insert(const std::string& key, std::shared_ptr<Module> module) {
  register_module(key, module);
  items_.emplace_back(key, std::move(module));
}

bool ModuleDict::contains(const std::string& key) const {
  for (const auto& [k, m] : items_) {
    if (k == key) return true;
  }
  return false;
}

std::shared_ptr<Module> ModuleDict::operator[](const std::string& key) const {
  for (const auto& [k, m] : items_) {
    if (k == key) return m;
  }
  std::string have;
  for (const auto& [k, m] : items_) have += (have.empty() ? "" : ", ") + k;
  fail("ModuleDict: no module \"{}\" (keys: {})", key, have);
}

std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, m] : items_) out.push_back(k);
  return out;
}

}  // namespace moxing::nn
