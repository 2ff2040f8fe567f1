// Indexing kernel tables. Index tensors reach the kernels as contiguous i64 whose values the
// op has already checked (with index_range_check) to lie in [0, size). Tables are keyed by
// the dtype of the values, except index_range_check and one_hot (keyed by i64).
// "Column": all coordinates except the indexed dim; scatters give each column to one thread,
// so sums over repeated indices run in index order whatever the thread count.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// index (any shape, contiguous) -> flat position of the first value outside [0, size), or -1
using IndexRangeCheckFn = int64_t(const Tensor& index, int64_t size);
/// x (O,N,I) contiguous, index (K) -> out (O,K,I): out[o,k,i] = x[o,index[k],i]
using IndexSelectFn = void(const Tensor& x, const Tensor& index, int64_t O, int64_t N, int64_t I,
                           Tensor& out);
/// out (O,N,I) contiguous holding self, index (K), src (O,K,I) contiguous:
/// out[o,index[k],i] += src[o,k,i]
using IndexAddFn = void(Tensor& out, const Tensor& index, const Tensor& src, int64_t O, int64_t N,
                        int64_t I);
/// x any strides with x.size(d) >= index.size(d) for d != dim; index and out contiguous, one
/// shape: out[..j..] = x[..index[..j..]..] with the index value replacing the coordinate at dim
using GatherFn = void(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out);
/// out contiguous holding self; index contiguous; src any strides, src.size(d) >= index.size(d):
/// out[..index[..j..]..] += src[..j..]
using ScatterAddFn = void(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
/// index (M) contiguous with values in [0, C) -> out (M,C) i64, zero-filled by the op
using OneHotFn = void(const Tensor& index, Tensor& out);
/// x (B,R,C) contiguous -> out (B,R,C): x[b,i,j] where kept, else 0; tril keeps j - i <=
/// diagonal, triu (upper) keeps j - i >= diagonal
using TriFn = void(const Tensor& x, int64_t B, int64_t R, int64_t C, int64_t diagonal, bool upper,
                   Tensor& out);

MOXING_DECLARE_KERNEL(index_range_check, IndexRangeCheckFn);
MOXING_DECLARE_KERNEL(index_select_forward, IndexSelectFn);
MOXING_DECLARE_KERNEL(index_add_forward, IndexAddFn);
MOXING_DECLARE_KERNEL(gather_forward, GatherFn);
MOXING_DECLARE_KERNEL(scatter_add_forward, ScatterAddFn);
MOXING_DECLARE_KERNEL(one_hot_forward, OneHotFn);
MOXING_DECLARE_KERNEL(tri_forward, TriFn);

}  // namespace moxing::kernels
