// Quantized weights (the q8_0, q4_0, q4_1, q4_k, q6_k dtypes: ggml's block layouts): quantize
// and dequantize, and the layers' products with them. A quantized weight is frozen: the products
// are differentiable with respect to their f32 inputs (and bias), so adapters can train on top.
#pragma once

#include "moxing/core/tensor.h"

namespace moxing {

/// f32 x (any shape, last dim whole blocks of the type) -> the quantized dtype, each block as
/// ggml's reference quantizer writes it (q6_k is read only). Not differentiable.
Tensor quantize(const Tensor& x, DType type);
/// A quantized tensor -> f32 of the same shape, as ggml's dequantizers.
Tensor dequantize(const Tensor& q);
/// y = x w^T + b for w (N, K) quantized: x (..., K) f32 -> (..., N) f32. Each 32-value block of
/// x is quantized to 8 bits and the products run in integers (ggml's scheme), or, with
/// f32_compute, w is dequantized and the products run in f32 (the exactness check).
/// Differentiable wrt x and b.
Tensor quantized_linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(),
                        bool f32_compute = false);
/// Per-channel symmetric int8: w (N, K) f32 -> weight i8 (N, K) and scale f32 (N) with
/// scale[n] = max_k |w[n, k]| / 127 and weight = round(w / scale) (0 rows get scale 0).
struct Int8Rows {
  Tensor weight, scale;
};
Int8Rows quantize_int8_rows(const Tensor& w);
/// y = x (weight * scale[:, None])^T + b for per-channel int8 weight (N, K) i8 and scale (N) f32;
/// the products run in 8-bit integers (activations quantized per 32-value block) or, with
/// f32_compute, in f32. Differentiable wrt x and b.
Tensor int8_linear(const Tensor& x, const Tensor& weight, const Tensor& scale,
                   const Tensor& b = Tensor(), bool f32_compute = false);

/// Rows of a quantized table (V, C) for integer ids (...) -> (..., C) f32. Not differentiable.
Tensor quantized_embedding(const Tensor& table, const Tensor& ids);

/// The instruction set the integer products run on here: "avx512-vnni", "avx2" or "scalar".
const char* quantized_products_isa();

}  // namespace moxing
