// Gradient clipping, written with tensor ops.
#include "moxing/optim/clip.h"

#include <algorithm>
#include <cmath>

#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/reduction.h"

namespace moxing::optim {
namespace {

// ||g||_p of one gradient as a 0-d f64 tensor on g's device, computed in g's dtype
Tensor tensor_norm(const Tensor& g, double p) {
  if (g.numel() == 0) return zeros({}, g.options().dtype(DType::f64));
  if (std::isinf(p)) return amax(abs(g)).to(DType::f64);
  if (p == 1.0) return sum(abs(g)).to(DType::f64);
  if (p == 2.0) return sqrt(sum(mul(g, g)).to(DType::f64));
  return pow(sum(pow(abs(g), p)).to(DType::f64), 1.0 / p);
}

}  // namespace

// The per-gradient norms stay tensors and are combined as tensors; the total is read back to
// the host once (it is the return value), never once per parameter.
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
  std::vector<Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(tensor_norm(g, norm_type));
  Tensor all = stack(norms);
  Tensor total_t =
      std::isinf(norm_type) ? amax(all) : pow(sum(pow(all, norm_type)), 1.0 / norm_type);
  check_has_values("clip_grad_norm_", total_t);
  const double total = total_t.item<double>();
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
