// layer_norm: checks, the (N, C) view, the fused kernels, and the saved mean / rstd.
#include "moxing/ops/norm.h"

#include "kernels/norm.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(layer_norm_forward, LayerNormFn)
MOXING_DEFINE_KERNEL(layer_norm_backward, LayerNormBackwardFn)
}  // namespace kernels

namespace {

void check_param(const Tensor& p, const Tensor& x, const Shape& normalized_shape,
                 const char* what) {
  if (!p.defined()) return;
  MOXING_CHECK(p.shape() == normalized_shape,
               "layer_norm: {} of shape {} does not match normalized_shape {}", what,
               shape_str(p.shape()), shape_str(normalized_shape));
  MOXING_CHECK(p.dtype() == x.dtype(), "layer_norm: {} dtype {} differs from input dtype {}", what,
               dtype_name(p.dtype()), dtype_name(x.dtype()));
}

}  // namespace

// x (..., C...) with C... = normalized_shape, viewed as (N, C); mean, rstd (N) saved
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  MOXING_CHECK(x.defined(), "layer_norm: undefined input");
  check_same_device("layer_norm", {x, weight, bias});
  MOXING_CHECK(is_floating(x.dtype()), "layer_norm: input must be floating-point, got {}",
               dtype_name(x.dtype()));
  size_t k = normalized_shape.size();
  bool trailing = k >= 1 && k <= x.shape().size();
  for (size_t i = 0; trailing && i < k; ++i) {
    trailing = x.shape()[x.shape().size() - k + i] == normalized_shape[i];
  }
  MOXING_CHECK(trailing, "layer_norm: normalized_shape {} does not match the last dims of input {}",
               shape_str(normalized_shape), shape_str(x.shape()));
  check_param(weight, x, normalized_shape, "weight");
  check_param(bias, x, normalized_shape, "bias");
  int64_t C = shape_numel(normalized_shape);
  int64_t N = C == 0 ? 0 : x.numel() / C;

  Tensor xc = contiguous(x.detach());
  Tensor wc = weight.defined() ? contiguous(weight.detach()) : Tensor();
  Tensor bc = bias.defined() ? contiguous(bias.detach()) : Tensor();
  Tensor out = empty(x.shape(), x.options());
  Tensor mean = empty({N}, x.options());
  Tensor rstd = empty({N}, x.options());
  kernels::layer_norm_forward().get(x.device(), x.dtype())(xc, wc, bc, N, C, eps, out, mean, rstd);
  if (autograd::any_requires_grad({x, weight, bias})) {
    autograd::SavedTensor sx(xc, "layer_norm"), sw(wc, "layer_norm");
    autograd::SavedTensor sm(mean, "layer_norm"), sr(rstd, "layer_norm");
    bool need_w = weight.defined() && weight.requires_grad();
    bool need_b = bias.defined() && bias.requires_grad();
    Shape x_shape = x.shape();
    autograd::record("layer_norm", {out}, {x, weight, bias},
                     [sx, sw, sm, sr, need_w, need_b, x_shape, normalized_shape, N,
                      C](const std::vector<Tensor>& g) {
                       Tensor gc = contiguous(g[0]);
                       Tensor dx = empty(x_shape, gc.options());
                       Tensor dw = need_w ? empty(normalized_shape, gc.options()) : Tensor();
                       Tensor db = need_b ? empty(normalized_shape, gc.options()) : Tensor();
                       kernels::layer_norm_backward().get(gc.device(), gc.dtype())(
                           gc, sx.get(), sm.get(), sr.get(), sw.get(), N, C, dx, dw, db);
                       return std::vector<Tensor>{dx, dw, db};
                     });
  }
  return out;
}

}  // namespace moxing
