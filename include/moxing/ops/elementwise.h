// Elementwise ops with NumPy broadcasting, each differentiable. Binary ops require both
// operands to have the same dtype; scalar overloads take the tensor's dtype.
#pragma once

#include <functional>
#include <string>

#include "moxing/core/tensor.h"

namespace moxing {

/// a + alpha * b
Tensor add(const Tensor& a, const Tensor& b, double alpha = 1.0);
Tensor add(const Tensor& a, double b);
/// a - alpha * b
Tensor sub(const Tensor& a, const Tensor& b, double alpha = 1.0);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, double b);
/// a ** b (elementwise)
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// comparisons: bool results, no gradient
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);
Tensor logical_not(const Tensor& a);

/// cond ? a : b, broadcast over all three (cond is bool).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
/// x with value wherever mask (bool, broadcastable to x) is true.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
/// Clamps to [min, max]; pass -inf / inf to leave a side open.
Tensor clamp(const Tensor& x, double min, double max);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
/// approximate: "none" (erf form) or "tanh", as torch.nn.functional.gelu.
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
Tensor silu(const Tensor& x);
/// log(1 + exp(beta x)) / beta, linear above threshold, as torch.nn.functional.softplus.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator-(const Tensor& a);

/// Common shape of two broadcastable shapes (NumPy rules), or an error naming op and shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

/// Applies an in-place update: fast kernel path without autograd; with autograd, computes
/// the out-of-place op on a clone and rebases self's history (refused for leaves and views
/// of tensors that require grad, as in PyTorch).
Tensor& apply_inplace(Tensor& self, const char* op, const std::vector<Tensor>& others,
                      const std::function<Tensor(const Tensor&)>& out_of_place);

}  // namespace moxing
