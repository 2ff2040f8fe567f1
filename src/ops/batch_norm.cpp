// batch_norm: checks, the (B, C, L) view, the fused kernels, the saved mean / rstd, and the
// in-place update of the running statistics.
#include "moxing/ops/batch_norm.h"

#include "kernels/batch_norm.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(batch_norm_forward, BatchNormFn)
MOXING_DEFINE_KERNEL(batch_norm_backward, BatchNormBackwardFn)
}  // namespace kernels

namespace {

void check_channel_param(const Tensor& p, const Tensor& x, const char* what) {
  if (!p.defined()) return;
  MOXING_CHECK(p.dim() == 1 && p.size(0) == x.size(1),
               "batch_norm: {} of shape {} does not match the {} channels of input {}", what,
               shape_str(p.shape()), x.size(1), shape_str(x.shape()));
  MOXING_CHECK(p.dtype() == x.dtype(), "batch_norm: {} dtype {} differs from input dtype {}", what,
               dtype_name(p.dtype()), dtype_name(x.dtype()));
}

// running = (1 - momentum) running + momentum stat, one version bump, never recorded
void update_running(const Tensor& running, const Tensor& stat, double momentum) {
  NoGradGuard no_grad;
  Tensor r = running;
  r.copy_(add(mul(r, 1.0 - momentum), mul(stat, momentum)));
}

}  // namespace

// x (B,C,...) viewed as (B,C,L); mean, rstd (C) saved for backward
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  MOXING_CHECK(x.defined(), "batch_norm: undefined input");
  MOXING_CHECK(is_floating(x.dtype()), "batch_norm: input must be floating-point, got {}",
               dtype_name(x.dtype()));
  MOXING_CHECK(x.dim() >= 2,
               "batch_norm: input of shape {} has no channel dim (expected (B,C,...))",
               shape_str(x.shape()));
  check_same_device("batch_norm", {x, running_mean, running_var, weight, bias});
  check_channel_param(weight, x, "weight");
  check_channel_param(bias, x, "bias");
  check_channel_param(running_mean, x, "running_mean");
  check_channel_param(running_var, x, "running_var");
  MOXING_CHECK(running_mean.defined() == running_var.defined(),
               "batch_norm: running_mean and running_var must be given together");
  MOXING_CHECK(training || running_mean.defined(),
               "batch_norm: running_mean and running_var are required in evaluation mode");
  int64_t B = x.size(0), C = x.size(1);
  int64_t L = C == 0 || B == 0 ? 0 : x.numel() / (B * C);
  MOXING_CHECK(!training || B * L > 1,
               "batch_norm: expected more than 1 value per channel when training, got input of "
               "shape {}",
               shape_str(x.shape()));

  Tensor xc = contiguous(x.detach());
  Tensor wc = weight.defined() ? contiguous(weight.detach()) : Tensor();
  Tensor bc = bias.defined() ? contiguous(bias.detach()) : Tensor();
  Tensor out = empty(x.shape(), x.options());
  Tensor mean = training ? empty({C}, x.options()) : clone(running_mean.detach());
  Tensor var = training ? empty({C}, x.options()) : clone(running_var.detach());
  Tensor rstd = empty({C}, x.options());
  kernels::batch_norm_forward().get(x.device(), x.dtype())(xc, wc, bc, training, B, C, L, eps, out,
                                                           mean, var, rstd);
  if (training && running_mean.defined()) {
    double n = static_cast<double>(B * L);
    update_running(running_mean, mean, momentum);
    update_running(running_var, mul(var, n / (n - 1.0)), momentum);
  }
  if (autograd::any_requires_grad({x, weight, bias})) {
    autograd::SavedTensor sx(xc, "batch_norm"), sw(wc, "batch_norm");
    autograd::SavedTensor sm(mean, "batch_norm"), sr(rstd, "batch_norm");
    bool need_x = x.requires_grad();
    bool need_w = weight.defined() && weight.requires_grad();
    bool need_b = bias.defined() && bias.requires_grad();
    Shape x_shape = x.shape();
    autograd::record("batch_norm", {out}, {x, weight, bias},
                     [sx, sw, sm, sr, need_x, need_w, need_b, training, x_shape, B, C,
                      L](const std::vector<Tensor>& g) {
                       Tensor gc = contiguous(g[0]);
                       Tensor dx = need_x ? empty(x_shape, gc.options()) : Tensor();
                       Tensor dw = need_w ? empty({C}, gc.options()) : Tensor();
                       Tensor db = need_b ? empty({C}, gc.options()) : Tensor();
                       kernels::batch_norm_backward().get(gc.device(), gc.dtype())(
                           gc, sx.get(), sm.get(), sr.get(), sw.get(), training, B, C, L, dx, dw,
                           db);
                       return std::vector<Tensor>{dx, dw, db};
                     });
  }
  return out;
}

}  // namespace moxing
