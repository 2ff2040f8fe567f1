// Helpers of the model tests (GPT, BERT, ...) that compare against transformers fixtures: the
// largest element difference, the named parameters to gradcheck, gradients against a
// reference file's "grad.<name>" tensors, and a temporary folder.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "moxing/io/safetensors.h"
#include "moxing/nn/module.h"

namespace moxing::testing {

/// max |a - b| over the elements (shapes must be equal).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0.0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

/// The module's parameters with these names, in the module's order (each name must exist).
inline std::vector<Tensor> parameters_named(const nn::Module& module,
                                            const std::set<std::string>& names) {
  std::vector<Tensor> out;
  for (const auto& [name, t] : module.named_parameters()) {
    if (names.count(name)) out.push_back(t);
  }
  EXPECT_EQ(out.size(), names.size()) << "some names are not parameters of the module";
  return out;
}

/// Compares each "grad.<param>" tensor of ref with that parameter's gradient (after
/// expected_of, e.g. a transposition) within tol; returns how many were compared.
inline int expect_gradients_match(
    const nn::Module& module, const SafetensorsFile& ref, double tol,
    const std::function<Tensor(const std::string&, const Tensor&)>& expected_of = nullptr) {
  auto params = module.named_parameters();
  int checked = 0;
  for (const auto& [name, t] : ref.tensors) {
    if (name.rfind("grad.", 0) != 0) continue;
    std::string param = name.substr(5);
    auto it =
        std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.first == param; });
    if (it == params.end()) {
      ADD_FAILURE() << param << " is not a parameter";
      continue;
    }
    if (!it->second.grad().defined()) {
      ADD_FAILURE() << param << " has no gradient";
      continue;
    }
    Tensor expected = expected_of ? expected_of(param, t) : t;
    EXPECT_LT(max_abs_diff(it->second.grad(), expected), tol) << param;
    ++checked;
  }
  return checked;
}

/// A fresh folder under the test temp dir, removed when the object goes.
struct TempDir {
  explicit TempDir(const std::string& name)
      : path((std::filesystem::path(::testing::TempDir()) / ("moxing_" + name)).string()) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

}  // namespace moxing::testing
