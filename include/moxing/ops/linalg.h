// Matrix products (matmul, bmm, linear), each differentiable, computed by BLAS GEMM.
// Both operands must have the same floating dtype (f32 or f64).
#pragma once

#include "moxing/core/tensor.h"

namespace moxing {

/// Matrix product with torch.matmul rules: 1-D x 1-D is a dot product, a 1-D operand is
/// promoted to a matrix and the added dim removed, N-D operands are batches of matrices whose
/// batch dims broadcast, e.g. (B,1,T,C) @ (NH,C,HS) -> (B,NH,T,HS).
Tensor matmul(const Tensor& a, const Tensor& b);
/// Batched product of 3-D tensors with the same batch: (B,M,K) @ (B,K,N) -> (B,M,N).
Tensor bmm(const Tensor& a, const Tensor& b);
/// y = x w^T + b: x (..., C_in), w (C_out, C_in), b (C_out) optional -> y (..., C_out);
/// matches torch.nn.functional.linear.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

}  // namespace moxing
