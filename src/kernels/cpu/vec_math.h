// Branch-free float math that the compiler vectorizes (std::exp and std::erf are scalar
// library calls). exp_f32 matches std::exp within 2 ulp on [-87.3, 88.7], gives exactly 0
// below (so -inf masks vanish), inf above, and propagates NaN; erf_f32 is within 5e-7.
#pragma once

#include <cstdint>
#include <cstring>

namespace moxing::kernels::cpu {

// Per-ISA builds of one loop body: write the body once as an always-inline function, wrap it
// in functions with these attributes, and pick one at run time with cpu_level(). The library
// itself is built for the baseline x86-64, so it runs anywhere.
#if defined(__x86_64__)
#define MOXING_TARGET_AVX2 __attribute__((target("avx2,fma"), noinline))
#define MOXING_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"), noinline))
#else
#define MOXING_TARGET_AVX2 __attribute__((noinline))
#define MOXING_TARGET_AVX512 __attribute__((noinline))
#endif

enum class CpuLevel { base, avx2, avx512 };

/// The widest vector level this CPU supports (checked once).
inline CpuLevel cpu_level() {
#if defined(__x86_64__)
  static const CpuLevel level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
      return CpuLevel::avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuLevel::avx2;
    return CpuLevel::base;
  }();
  return level;
#else
  return CpuLevel::base;
#endif
}

// exp(x) = 2^n * exp(r), n = round(x / ln2), r = x - n ln2 (ln2 split in two for accuracy),
// exp(r) by a degree-6 polynomial on |r| <= ln2 / 2 (Cephes expf coefficients).
__attribute__((always_inline)) inline float exp_f32(float x) {
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float xc = x > 88.3762626647949f ? 88.3762626647949f : x;
  xc = xc < -87.3365478515625f ? -87.3365478515625f : xc;
  float t = xc * kLog2e + kRound;
  float n = t - kRound;
  float r = xc - n * kLn2Hi - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t ti;
  std::memcpy(&ti, &t, 4);
  int32_t bits = (ti - 0x4B400000 + 127) << 23;  // 2^n as float bits
  float scale;
  std::memcpy(&scale, &bits, 4);
  float y = p * scale;
  y = x > 88.3762626647949f ? __builtin_inff() : y;
  y = x < -87.3365478515625f ? 0.0f : y;
  return x != x ? x : y;
}

// tanh(x) = sign(x) (1 - 2 / (exp(2|x|) + 1)); x (1 - x^2/3) below |x| = 0.004, where the
// subtraction would lose digits. Absolute error below 2e-7.
__attribute__((always_inline)) inline float tanh_f32(float x) {
  float a = x < 0 ? -x : x;
  float e = exp_f32(2.0f * a);
  float t = 1.0f - 2.0f / (e + 1.0f);
  t = a < 0.004f ? a * (1.0f - a * a * (1.0f / 3.0f)) : t;
  return x < 0 ? -t : t;
}

// erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (|erf| rounds to 1 in f32 beyond), a rational minimax
// fit of odd degree 13 over even degree 8 (the coefficients of Eigen's and XLA's float erf).
// Absolute error below 5e-7 against std::erf; no exp, no branch, so it vectorizes.
__attribute__((always_inline)) inline float erf_f32(float x) {
  float xc = x > 4.0f ? 4.0f : x;
  xc = xc < -4.0f ? -4.0f : xc;
  const float x2 = xc * xc;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return x != x ? x : xc * p / q;
}

}  // namespace moxing::kernels::cpu
