// embedding: checks, the flat (N) view of the indices, and the row-gather kernels.
#include "moxing/ops/embedding.h"

#include "kernels/embedding.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(embedding_forward, EmbeddingFn)
MOXING_DEFINE_KERNEL(embedding_backward, EmbeddingBackwardFn)
}  // namespace kernels

// weight (V,C), indices (...) -> out (..., C); out[..., :] = weight[indices[...], :]
Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx) {
  MOXING_CHECK(weight.defined() && indices.defined(), "embedding: undefined tensor argument");
  check_same_device("embedding", {weight, indices});
  // the kernel checks every index against V; on meta it runs nothing (as torch's meta
  // kernels, which skip value checks)
  MOXING_CHECK(weight.dim() == 2 && is_floating(weight.dtype()),
               "embedding: weight must be a floating-point (V, C) table, got {} of shape {}",
               dtype_name(weight.dtype()), shape_str(weight.shape()));
  MOXING_CHECK(indices.dtype() == DType::i64, "embedding: indices must be i64, got {} of shape {}",
               dtype_name(indices.dtype()), shape_str(indices.shape()));
  int64_t V = weight.size(0), C = weight.size(1);
  MOXING_CHECK(padding_idx >= -1 && padding_idx < V,
               "embedding: padding_idx {} is out of range for V = {} rows (use -1 for none)",
               padding_idx, V);
  int64_t N = indices.numel();
  Shape out_shape = indices.shape();
  out_shape.push_back(C);

  Tensor wc = contiguous(weight.detach());
  Tensor ic = contiguous(indices);
  Tensor out = empty(out_shape, weight.options());
  kernels::embedding_forward().get(weight.device(), weight.dtype())(wc, ic, N, V, C, out);
  if (autograd::any_requires_grad({weight})) {
    autograd::SavedTensor si(ic, "embedding");
    autograd::record("embedding", {out}, {weight},
                     [si, N, V, C, padding_idx](const std::vector<Tensor>& g) {
                       Tensor gc = contiguous(g[0]);
                       Tensor dw = zeros({V, C}, gc.options());
                       kernels::embedding_backward().get(gc.device(), gc.dtype())(
                           gc, si.get(), N, V, C, padding_idx, dw);
                       return std::vector<Tensor>{dw};
                     });
  }
  return out;
}

}  // namespace moxing
