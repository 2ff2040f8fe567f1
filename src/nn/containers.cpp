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
  slots_.push_back(register_slot<UnaryModule>(std::to_string(slots_.size()), std::move(module)));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : slots_) y = m->forward(y);
  return y;
}

std::shared_ptr<UnaryModule> Sequential::operator[](int64_t i) const {
  return slots_[wrap_index(i, slots_.size(), "Sequential")].get();
}

void ModuleList::push_back(std::shared_ptr<Module> module) {
  slots_.push_back(register_slot<Module>(std::to_string(slots_.size()), std::move(module)));
}

std::shared_ptr<Module> ModuleList::operator[](int64_t i) const {
  return slots_[wrap_index(i, slots_.size(), "ModuleList")].get();
}

void ModuleDict::insert(const std::string& key, std::shared_ptr<Module> module) {
  items_.emplace_back(key, register_slot<Module>(key, std::move(module)));
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> ModuleDict::items() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& [k, m] : items_) out.emplace_back(k, m.get());
  return out;
}

bool ModuleDict::contains(const std::string& key) const {
  for (const auto& [k, m] : items_) {
    if (k == key) return true;
  }
  return false;
}

std::shared_ptr<Module> ModuleDict::operator[](const std::string& key) const {
  for (const auto& [k, m] : items_) {
    if (k == key) return m.get();
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
