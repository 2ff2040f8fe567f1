// Quantized-weight kernels: ggml's block layouts (q8_0, q4_0, q4_1, q4_k, q6_k) quantized and
// dequantized bit for bit as ggml's reference code does, and products of f32 activations with
// quantized weight rows. Tables are keyed by the weight's quantized dtype.
#pragma once

#include <cstdint>

#include "kernels/registry.h"

namespace moxing::kernels {

/// n f32 values (whole blocks) -> n / block blocks at out (ggml's reference quantizer).
using QuantizeFn = void(const float* x, int64_t n, void* out);
MOXING_DECLARE_KERNEL(quantize_rows, QuantizeFn);

/// n weights (whole blocks) at q -> f32.
using DequantizeFn = void(const void* q, int64_t n, float* out);
MOXING_DECLARE_KERNEL(dequantize_rows, DequantizeFn);

/// y (M, N) = x (M, K) w^T for w (N, K) quantized, rows contiguous; all row-major, x and y
/// contiguous. f32_compute: dequantize w and multiply in f32 (the exactness path) instead of
/// quantizing x to 8 bits per block and multiplying in integers.
using QuantMatmulFn = void(const float* x, int64_t M, int64_t K, const void* w, int64_t N, float* y,
                           bool f32_compute);
MOXING_DECLARE_KERNEL(quant_matmul, QuantMatmulFn);

/// dx (M, K) = dy (M, N) w for w (N, K) quantized (the gradient of quant_matmul wrt x).
using QuantMatmulGradFn = void(const float* dy, int64_t M, int64_t N, const void* w, int64_t K,
                               float* dx);
MOXING_DECLARE_KERNEL(quant_matmul_grad, QuantMatmulGradFn);

/// Which integer dot-product code the quantized products use.
enum class QuantIsa { scalar, avx2, avx512_vnni };
/// The best this CPU runs (checked once), or the one set by set_quant_isa.
QuantIsa quant_isa();
/// Forces a path (tests compare every path the CPU can run); asking for more than the CPU has
/// is an error.
void set_quant_isa(QuantIsa isa);
/// "scalar", "avx2", "avx512-vnni".
const char* quant_isa_name(QuantIsa isa);

}  // namespace moxing::kernels
