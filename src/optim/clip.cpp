// Gradient clipping, written with tensor ops.
#include "moxing/optim/clip.h"

#include <algorithm>
#include <cmath>

#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/reduction.h"

namespace moxing::optim {
namespace {

// ||g||_p of one gradient, computed in its dtype
double tensor_norm(const Tensor& g, double p) {
  if (g.numel() == 0) return 0.0;
  if (std::isinf(p)) return amax(abs(g)).item<double>();
  if (p == 1.0) return sum(abs(g)).item<double>();
  if (p == 2.0) return std::sqrt(sum(mul(g, g)).item<double>());
  return std::pow(sum(pow(abs(g), p)).item<double>(), 1.0 / p);
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  MOXING_CHECK(norm_type > 0.0, "clip_grad_norm_: norm_type must be > 0 or infinity, got {}",
               norm_type);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const auto& p : params) {
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  double total = 0.0;
  for (const auto& g : grads) {
    double n = tensor_norm(g, norm_type);
    if (std::isinf(norm_type)) {
      total = (std::isnan(n) || n > total) ? n : total;
    } else {
      total += std::pow(n, norm_type);
    }
  }
  if (!std::isinf(norm_type)) total = std::pow(total, 1.0 / norm_type);
  if (error_if_nonfinite && !std::isfinite(total)) {
    fail("clip_grad_norm_: the total norm of order {} of the gradients is {}", norm_type, total);
  }
  const double coef = std::min(max_norm / (total + 1e-6), 1.0);
  for (auto& g : grads) g.mul_(coef);
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  MOXING_CHECK(clip_value >= 0.0, "clip_grad_value_: clip_value must be >= 0, got {}", clip_value);
  NoGradGuard no_grad;
  for (const auto& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    Tensor g = p.grad();
    g.copy_(clamp(g, -clip_value, clip_value));
  }
}

}  // namespace moxing::optim
