// Matrix-multiply kernels. Operands are strided views whose last two dims each form a BLAS
// matrix: row-major (stride (ld, 1)) or a transposed view of one (stride (1, ld)); the op
// makes any other layout contiguous first (see blas_layout).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// How BLAS reads a (rows, cols) matrix with element strides (s_row, s_col).
struct BlasLayout {
  bool ok = false;     // false: neither layout fits, make the operand contiguous
  bool trans = false;  // true: stored column-major, i.e. a transposed view of a row-major matrix
  int64_t ld = 1;      // leading dimension in elements
};

inline BlasLayout blas_layout(int64_t rows, int64_t cols, int64_t s_row, int64_t s_col) {
  // size-1 dims have meaningless strides; BLAS still wants ld >= the other dim
  if ((s_col == 1 || cols == 1) && (rows == 1 || s_row >= std::max<int64_t>(cols, 1))) {
    return {true, false, rows == 1 ? std::max<int64_t>(cols, 1) : s_row};
  }
  if ((s_row == 1 || rows == 1) && (cols == 1 || s_col >= std::max<int64_t>(rows, 1))) {
    return {true, true, cols == 1 ? std::max<int64_t>(rows, 1) : s_col};
  }
  return {};
}

/// Layout of the last two dims of t (dim >= 2).
inline BlasLayout blas_layout(const Tensor& t) {
  int64_t n = t.dim();
  return blas_layout(t.size(n - 2), t.size(n - 1), t.stride(n - 2), t.stride(n - 1));
}

/// a (..., M, K), b (..., K, N) with the same batch dims (stride 0 where broadcast) and
/// blas_layout(a).ok, blas_layout(b).ok; out (..., M, N) contiguous. out = a @ b
using MatmulFn = void(const Tensor& a, const Tensor& b, Tensor& out);

MOXING_DECLARE_KERNEL(matmul_forward, MatmulFn);

/// bias (N), a (M,K), b (K,N) with blas_layout ok; out (M,N) contiguous.
/// out = bias + a @ b (bias added to every row): torch.addmm with beta = alpha = 1
using AddmmFn = void(const Tensor& bias, const Tensor& a, const Tensor& b, Tensor& out);

MOXING_DECLARE_KERNEL(addmm_forward, AddmmFn);

}  // namespace moxing::kernels
