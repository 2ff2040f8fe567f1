// Indexing ops: joining (cat, stack), selecting and scattering along a dim by an index tensor
// (index_select, gather, scatter_add, index_add), one_hot, and triangular masks (tril, triu).
// Index tensors are i64 or i32; out-of-range indices are errors, never wrapped or clamped.
// Scatters are out-of-place and deterministic. Not here: boolean masking and slicing views
// (see elementwise.h and shape.h).
#pragma once

#include <vector>

#include "moxing/core/tensor.h"

namespace moxing {

/// Joins tensors of one dtype along dim; shapes must match except along dim, as torch.cat.
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
/// Joins tensors of one shape along a new dim, as torch.stack.
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
/// x (..., N, ...) indexed along dim by index (K) -> (..., K, ...), as torch.index_select.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// out[i][j][k] = x[i][index[i][j][k]][k] (dim 1); out has index's shape, as torch.gather.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// self + (src scattered along dim by index, summing repeats), as torch.scatter_add.
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
/// self (..., N, ...) with src (..., K, ...) slices added at rows index (K) of dim, as
/// torch.index_add.
Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
/// index (...) -> (..., num_classes) i64 of 0/1; num_classes -1 uses max(index) + 1.
/// No gradient. Matches torch.nn.functional.one_hot.
Tensor one_hot(const Tensor& index, int64_t num_classes = -1);
/// Lower triangle of the last two dims (j - i <= diagonal kept), zeros elsewhere; batched.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
/// Upper triangle of the last two dims (j - i >= diagonal kept), zeros elsewhere; batched.
Tensor triu(const Tensor& x, int64_t diagonal = 0);

}  // namespace moxing
