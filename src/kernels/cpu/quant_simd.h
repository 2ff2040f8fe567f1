// The vector code of the quantized products, compiled once per instruction set in its own file
// (quant_avx2.cpp, quant_avx512.cpp, with that set's compiler flags) and chosen at run time by
// kernels/cpu/quant.cpp. Plain declarations only: the vector files include no header with inline
// functions, so no function compiled for a wider set can stand in for a baseline one.
#pragma once

#include <cstdint>

namespace moxing::kernels::cpu::qsimd {

/// 32 activations quantized to 8 bits: x[j] ~= d * q[j]; sum = q[0] + ... + q[31].
struct XBlock {
  float d;
  int32_t sum;
  int8_t q[32];
};

/// The weight layouts the integer products read (ggml's blocks).
/// kI8: plain int8 rows (per-channel int8; the row scale is applied by the caller).
enum WeightKind : int { kQ8_0 = 0, kQ4_0 = 1, kQ4_1 = 2, kQ4_K = 3, kI8 = 4 };

/// x (nblocks * 32 values) -> nblocks XBlocks: d = max|x| / 127, q = round-to-even(x * 127 /
/// max|x|).
void quantize_x_avx2(const float* x, int64_t nblocks, XBlock* out);
void quantize_x_avx512(const float* x, int64_t nblocks, XBlock* out);

/// y[m * ldy + r] = (row r of w) . (activation row m) for nrows rows of row_bytes bytes each
/// and M activation rows of nblocks XBlocks each (x holds them one after the other).
void gemm_rows_avx2(int kind, const uint8_t* w, int64_t row_bytes, int64_t nrows, const XBlock* x,
                    int64_t M, int64_t nblocks, float* y, int64_t ldy);
void gemm_rows_avx512(int kind, const uint8_t* w, int64_t row_bytes, int64_t nrows, const XBlock* x,
                      int64_t M, int64_t nblocks, float* y, int64_t ldy);

}  // namespace moxing::kernels::cpu::qsimd
