// Finite-difference gradient check in f64, as torch.autograd.gradcheck but checking a
// random vector-Jacobian product instead of the whole Jacobian.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing::autograd {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-4;
  uint64_t seed = 1234;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // first mismatch: input, element, analytic vs numeric
};

/// Checks d(sum(f(inputs) * v))/d(input) for every input with requires_grad, against central
/// differences. Inputs must be f64; they may be non-contiguous views.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {});

}  // namespace moxing::autograd
