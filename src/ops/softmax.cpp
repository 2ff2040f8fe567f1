// softmax / log_softmax: view the input as (O, R, I) with R the softmax dim, run the kernel,
// and record a backward that runs the backward kernel on the saved output.
#include "moxing/ops/softmax.h"

#include "kernels/softmax.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(softmax_forward, SoftmaxFn)
MOXING_DEFINE_KERNEL(softmax_backward, SoftmaxBackwardFn)
}  // namespace kernels

namespace {

// x (..., R, ...) -> y like x; y saved for backward
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  MOXING_CHECK(x.defined(), "{}: undefined tensor argument", op);
  MOXING_CHECK(is_floating(x.dtype()), "{}: needs a floating-point tensor, got {} of shape {}", op,
               dtype_name(x.dtype()), shape_str(x.shape()));
  int64_t d = wrap_dim(dim, x.dim(), op);
  int64_t O = 1, R = 1, I = 1;
  for (int64_t k = 0; k < x.dim(); ++k) {
    int64_t s = x.shape()[static_cast<size_t>(k)];
    (k < d ? O : k == d ? R : I) *= s;
  }
  Tensor xc = contiguous(x.detach());
  Tensor out = empty(x.shape(), x.options());
  kernels::softmax_forward().get(x.device(), x.dtype())(xc, O, R, I, log, out);
  if (autograd::any_requires_grad({x})) {
    autograd::SavedTensor so(out, op);
    autograd::record(op, {out}, {x}, [so, O, R, I, log](const std::vector<Tensor>& g) {
      Tensor y = so.get();
      Tensor gc = contiguous(g[0]);
      Tensor dx = empty(y.shape(), y.options());
      kernels::softmax_backward().get(y.device(), y.dtype())(gc, y, O, R, I, log, dx);
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace moxing
