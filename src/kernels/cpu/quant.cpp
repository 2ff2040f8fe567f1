// CPU quantized-weight kernels: ggml's reference quantizers and dequantizers (bit for bit), and
// the products of f32 activations with quantized rows. The integer products quantize each
// 32-value block of the activations to 8 bits (as ggml does) and run on the widest instruction
// set the CPU has (quant_avx512.cpp, quant_avx2.cpp, or the scalar loops here), over output rows
// in parallel; f32_compute (and q6_k) dequantizes row panels and multiplies them with sgemm.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/quant_simd.h"
#include "kernels/quant.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels {

namespace {

// The vector files also use F16C's half conversions: every CPU with AVX2 has F16C (Intel since
// Ivy Bridge, AMD since Piledriver), so it is not asked for separately.
QuantIsa detect_isa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return QuantIsa::avx512_vnni;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return QuantIsa::avx2;
#endif
  return QuantIsa::scalar;
}

const QuantIsa kBestIsa = detect_isa();
QuantIsa g_isa = kBestIsa;

}  // namespace

QuantIsa quant_isa() { return g_isa; }

void set_quant_isa(QuantIsa isa) {
  MOXING_CHECK(static_cast<int>(isa) <= static_cast<int>(kBestIsa),
               "set_quant_isa: this CPU runs up to {}, not {}", quant_isa_name(kBestIsa),
               quant_isa_name(isa));
  g_isa = isa;
}

const char* quant_isa_name(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::scalar:
      return "scalar";
    case QuantIsa::avx2:
      return "avx2";
    case QuantIsa::avx512_vnni:
      return "avx512-vnni";
  }
  return "?";
}

namespace cpu {
namespace {

using qsimd::XBlock;

float f16_at(const uint8_t* p) {
  Half h;
  std::memcpy(&h, p, 2);
  return from_f16(h);
}
void put_f16(uint8_t* p, float v) {
  const Half h = to_f16(v);
  std::memcpy(p, &h, 2);
}

// ggml's round-to-nearest-even of a float known to be small
int nearest_int(float v) { return static_cast<int>(std::nearbyint(v)); }

// ---- quantizers (ggml's quantize_row_*_ref)

void quantize_q8_0(const float* x, int64_t n, void* out) {
  auto* y = static_cast<uint8_t*>(out);
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 34) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    put_f16(y, d);
    for (int j = 0; j < 32; ++j)
      y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
  }
}

void quantize_q4_0(const float* x, int64_t n, void* out) {
  auto* y = static_cast<uint8_t*>(out);
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 18) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < 32; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    put_f16(y, d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[16 + j] * id + 8.5f)));
      y[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_q4_1(const float* x, int64_t n, void* out) {
  auto* y = static_cast<uint8_t*>(out);
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 20) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / 15.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    put_f16(y, d);
    put_f16(y + 2, min);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
      const int q1 =
          std::min(15, static_cast<int>(static_cast<int8_t>((x[16 + j] - min) * id + 0.5f)));
      y[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// ggml's make_qkx2_quants: a scale and a (negated) minimum for n values in [0, nmax] levels,
// the weighted squared error minimised over nstep + 1 trial scales.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_mad = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
    L[i] = static_cast<uint8_t>(l);
    const float diff = scale * static_cast<float>(L[i]) + min - x[i];
    best_mad += weights[i] * diff * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * static_cast<float>(l);
      sum_l2 += w * static_cast<float>(l * l);
      sum_xl += w * static_cast<float>(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float mad = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        mad += weights[i] * diff * diff;
      }
      if (mad < best_mad) {
        std::copy(Laux, Laux + n, L);
        best_mad = mad;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// ggml's 6-bit scale and min j (0-7) of a q4_k super-block
void scale_min_k4(int j, const uint8_t* q, int& d, int& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void quantize_q4_k(const float* x, int64_t n, void* out) {
  auto* y = static_cast<uint8_t*>(out);
  uint8_t L[256], Laux[32];
  float weights[32], mins[8], scales[8];
  for (int64_t b = 0; b < n / 256; ++b, x += 256, y += 144) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] =
          make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    uint8_t* sc = y + 4;
    std::memset(sc, 0, 12);
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
      const auto ls = static_cast<uint8_t>(std::min(63, nearest_int(inv_scale * scales[j])));
      const auto lm = static_cast<uint8_t>(std::min(63, nearest_int(inv_min * mins[j])));
      if (j < 4) {
        sc[j] = ls;
        sc[j + 4] = lm;
      } else {
        sc[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        sc[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        sc[j] |= static_cast<uint8_t>((lm >> 4) << 6);
      }
    }
    put_f16(y, max_scale / 63.f);
    put_f16(y + 2, max_min / 63.f);
    const float dd = f16_at(y), ddmin = f16_at(y + 2);
    for (int j = 0; j < 8; ++j) {
      int s, m;
      scale_min_k4(j, sc, s, m);
      const float d = dd * static_cast<float>(s);
      if (d == 0.f) continue;
      const float dm = ddmin * static_cast<float>(m);
      for (int ii = 0; ii < 32; ++ii) {
        L[32 * j + ii] =
            static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + ii] + dm) / d), 0, 15));
      }
    }
    uint8_t* q = y + 16;
    for (int j = 0; j < 256; j += 64, q += 32) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    }
  }
}

void quantize_unsupported(const float*, int64_t, void*) {
  fail("quantize: moxing writes q8_0, q4_0, q4_1 and q4_k; q6_k is read only");
}

// ---- dequantizers (ggml's dequantize_row_*)

void dequantize_q8_0(const void* in, int64_t n, float* y) {
  const auto* p = static_cast<const uint8_t*>(in);
  for (int64_t b = 0; b < n / 32; ++b, p += 34, y += 32) {
    const float d = f16_at(p);
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(p[2 + j]));
  }
}

void dequantize_q4_0(const void* in, int64_t n, float* y) {
  const auto* p = static_cast<const uint8_t*>(in);
  for (int64_t b = 0; b < n / 32; ++b, p += 18, y += 32) {
    const float d = f16_at(p);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((p[2 + j] & 0xF) - 8);
      y[j + 16] = d * static_cast<float>((p[2 + j] >> 4) - 8);
    }
  }
}

void dequantize_q4_1(const void* in, int64_t n, float* y) {
  const auto* p = static_cast<const uint8_t*>(in);
  for (int64_t b = 0; b < n / 32; ++b, p += 20, y += 32) {
    const float d = f16_at(p), m = f16_at(p + 2);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(p[4 + j] & 0xF) + m;
      y[j + 16] = d * static_cast<float>(p[4 + j] >> 4) + m;
    }
  }
}

void dequantize_q4_k(const void* in, int64_t n, float* y) {
  const auto* p = static_cast<const uint8_t*>(in);
  for (int64_t b = 0; b < n / 256; ++b, p += 144) {
    const float d = f16_at(p), dmin = f16_at(p + 2);
    const uint8_t* scales = p + 4;
    const uint8_t* q = p + 16;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
      int sc, m;
      scale_min_k4(is, scales, sc, m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      scale_min_k4(is + 1, scales, sc, m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// per-channel int8 rows without their scale (the caller multiplies by it)
void dequantize_i8(const void* in, int64_t n, float* y) {
  const auto* p = static_cast<const int8_t*>(in);
  for (int64_t k = 0; k < n; ++k) y[k] = static_cast<float>(p[k]);
}

void dequantize_q6_k(const void* in, int64_t n, float* y) {
  const auto* p = static_cast<const uint8_t*>(in);
  for (int64_t b = 0; b < n / 256; ++b, p += 210) {
    const uint8_t* ql = p;
    const uint8_t* qh = p + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(p + 192);
    const float d = f16_at(p + 208);
    for (int k = 0; k < 256; k += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is] * q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2] * q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4] * q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6] * q4);
      }
    }
  }
}

// ---- the integer products, scalar (the reference the vector paths are tested against)

void quantize_x_scalar(const float* x, int64_t nblocks, XBlock* out) {
  for (int64_t b = 0; b < nblocks; ++b, x += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    XBlock& o = out[b];
    o.d = amax / 127.f;
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = nearest_int(x[j] * id);
      o.q[j] = static_cast<int8_t>(q);
      sum += q;
    }
    o.sum = sum;
  }
}

float row_scalar(int kind, const uint8_t* w, const XBlock* x, int64_t nb) {
  float acc = 0.f;
  if (kind == qsimd::kQ4_K) {
    for (int64_t b = 0; b < nb; b += 8, w += 144, x += 8) {
      const float d = f16_at(w), dmin = f16_at(w + 2);
      const uint8_t* qs = w + 16;
      for (int s = 0; s < 8; ++s) {
        int sc, m;
        scale_min_k4(s, w + 4, sc, m);
        const uint8_t* q = qs + 32 * (s / 2);
        const int shift = (s % 2) * 4;
        int dot = 0;
        for (int j = 0; j < 32; ++j) dot += ((q[j] >> shift) & 0xF) * x[s].q[j];
        acc += d * static_cast<float>(sc) * x[s].d * static_cast<float>(dot) -
               dmin * static_cast<float>(m) * x[s].d * static_cast<float>(x[s].sum);
      }
    }
    return acc;
  }
  for (int64_t b = 0; b < nb; ++b) {
    const XBlock& xb = x[b];
    int dot = 0;
    switch (kind) {
      case qsimd::kI8: {
        const auto* p = reinterpret_cast<const int8_t*>(w + 32 * b);
        for (int j = 0; j < 32; ++j) dot += p[j] * xb.q[j];
        acc += xb.d * static_cast<float>(dot);
        break;
      }
      case qsimd::kQ8_0: {
        const uint8_t* p = w + 34 * b;
        for (int j = 0; j < 32; ++j) dot += static_cast<int8_t>(p[2 + j]) * xb.q[j];
        acc += f16_at(p) * xb.d * static_cast<float>(dot);
        break;
      }
      case qsimd::kQ4_0: {
        const uint8_t* p = w + 18 * b;
        for (int j = 0; j < 16; ++j)
          dot += (p[2 + j] & 0xF) * xb.q[j] + (p[2 + j] >> 4) * xb.q[16 + j];
        acc += f16_at(p) * xb.d * static_cast<float>(dot - 8 * xb.sum);
        break;
      }
      default: {  // q4_1
        const uint8_t* p = w + 20 * b;
        for (int j = 0; j < 16; ++j)
          dot += (p[4 + j] & 0xF) * xb.q[j] + (p[4 + j] >> 4) * xb.q[16 + j];
        acc += f16_at(p) * xb.d * static_cast<float>(dot) +
               f16_at(p + 2) * xb.d * static_cast<float>(xb.sum);
        break;
      }
    }
  }
  return acc;
}

void quantize_x(const float* x, int64_t nblocks, XBlock* out) {
  switch (quant_isa()) {
#if defined(__x86_64__)
    case QuantIsa::avx512_vnni:
      return qsimd::quantize_x_avx512(x, nblocks, out);
    case QuantIsa::avx2:
      return qsimd::quantize_x_avx2(x, nblocks, out);
#endif
    default:
      return quantize_x_scalar(x, nblocks, out);
  }
}

// y[m * ldy + r] for nrows weight rows and M activation rows
void gemm_rows(int kind, const uint8_t* w, int64_t row_bytes, int64_t nrows, const XBlock* x,
               int64_t M, int64_t nblocks, float* y, int64_t ldy) {
  switch (quant_isa()) {
#if defined(__x86_64__)
    case QuantIsa::avx512_vnni:
      return qsimd::gemm_rows_avx512(kind, w, row_bytes, nrows, x, M, nblocks, y, ldy);
    case QuantIsa::avx2:
      return qsimd::gemm_rows_avx2(kind, w, row_bytes, nrows, x, M, nblocks, y, ldy);
#endif
    default:
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t r = 0; r < nrows; ++r) {
          y[m * ldy + r] = row_scalar(kind, w + r * row_bytes, x + m * nblocks, nblocks);
        }
      }
  }
}

// ---- the products

// y (M, N) = x (M, K) w^T by dequantized panels of rows and sgemm.
void matmul_dequantized(DequantizeFn* deq, size_t row_bytes, const float* x, int64_t M, int64_t K,
                        const uint8_t* w, int64_t N, float* y) {
  constexpr int64_t kPanel = 64;
  parallel_for(0, (N + kPanel - 1) / kPanel, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> panel(static_cast<size_t>(kPanel * K));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n0 = p * kPanel, rows = std::min(kPanel, N - n0);
      deq(w + static_cast<size_t>(n0) * row_bytes, rows * K, panel.data());
      gemm<float>(false, true, M, rows, K, 1.f, x, K, panel.data(), K, 0.f, y + n0, N);
    }
  });
}

template <DType T, int Kind>
void matmul(const float* x, int64_t M, int64_t K, const void* wv, int64_t N, float* y,
            bool f32_compute) {
  const auto* w = static_cast<const uint8_t*>(wv);
  const size_t row_bytes = dtype_nbytes(T, K);
  if (Kind < 0 || f32_compute || K % 32 != 0) {
    matmul_dequantized(dequantize_rows().get(kCPU, T), row_bytes, x, M, K, w, N, y);
    return;
  }
  const int64_t nb = K / 32;
  std::vector<XBlock> xq(static_cast<size_t>(M * nb));
  parallel_for(0, M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) quantize_x(x + m * K, nb, xq.data() + m * nb);
  });
  // tiles of rows small enough to stay in L2 while every activation row passes over them
  const int64_t tile = std::max<int64_t>(1, (64 << 10) / static_cast<int64_t>(row_bytes));
  const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(tile, N / (4 * num_threads()) + 1));
  parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t t0 = n0; t0 < n1; t0 += tile) {
      gemm_rows(Kind, w + static_cast<size_t>(t0) * row_bytes, static_cast<int64_t>(row_bytes),
                std::min(tile, n1 - t0), xq.data(), M, nb, y + t0, N);
    }
  });
}

template <DType T>
void matmul_grad(const float* dy, int64_t M, int64_t N, const void* wv, int64_t K, float* dx) {
  const auto* w = static_cast<const uint8_t*>(wv);
  const size_t row_bytes = dtype_nbytes(T, K);
  DequantizeFn* deq = dequantize_rows().get(kCPU, T);
  constexpr int64_t kPanel = 256;
  std::vector<float> panel(static_cast<size_t>(std::min(kPanel, N) * K));
  for (int64_t n0 = 0; n0 < N; n0 += kPanel) {
    const int64_t rows = std::min(kPanel, N - n0);
    deq(w + static_cast<size_t>(n0) * row_bytes, rows * K, panel.data());
    gemm<float>(false, false, M, K, rows, 1.f, dy + n0, N, panel.data(), K, n0 == 0 ? 0.f : 1.f, dx,
                K);
  }
  if (N == 0) std::fill(dx, dx + M * K, 0.f);
}

}  // namespace
}  // namespace cpu

MOXING_REGISTER_KERNEL(quantize_rows, cpu, q8_0, cpu::quantize_q8_0);
MOXING_REGISTER_KERNEL(quantize_rows, cpu, q4_0, cpu::quantize_q4_0);
MOXING_REGISTER_KERNEL(quantize_rows, cpu, q4_1, cpu::quantize_q4_1);
MOXING_REGISTER_KERNEL(quantize_rows, cpu, q4_k, cpu::quantize_q4_k);
MOXING_REGISTER_KERNEL(quantize_rows, cpu, q6_k, cpu::quantize_unsupported);
MOXING_REGISTER_KERNEL(dequantize_rows, cpu, q8_0, cpu::dequantize_q8_0);
MOXING_REGISTER_KERNEL(dequantize_rows, cpu, q4_0, cpu::dequantize_q4_0);
MOXING_REGISTER_KERNEL(dequantize_rows, cpu, q4_1, cpu::dequantize_q4_1);
MOXING_REGISTER_KERNEL(dequantize_rows, cpu, q4_k, cpu::dequantize_q4_k);
MOXING_REGISTER_KERNEL(dequantize_rows, cpu, q6_k, cpu::dequantize_q6_k);
MOXING_REGISTER_KERNEL(quant_matmul, cpu, q8_0, (cpu::matmul<DType::q8_0, cpu::qsimd::kQ8_0>));
MOXING_REGISTER_KERNEL(quant_matmul, cpu, q4_0, (cpu::matmul<DType::q4_0, cpu::qsimd::kQ4_0>));
MOXING_REGISTER_KERNEL(quant_matmul, cpu, q4_1, (cpu::matmul<DType::q4_1, cpu::qsimd::kQ4_1>));
MOXING_REGISTER_KERNEL(quant_matmul, cpu, q4_k, (cpu::matmul<DType::q4_k, cpu::qsimd::kQ4_K>));
MOXING_REGISTER_KERNEL(quant_matmul, cpu, q6_k, (cpu::matmul<DType::q6_k, -1>));
MOXING_REGISTER_KERNEL(quant_matmul_grad, cpu, q8_0, cpu::matmul_grad<DType::q8_0>);
MOXING_REGISTER_KERNEL(quant_matmul_grad, cpu, q4_0, cpu::matmul_grad<DType::q4_0>);
MOXING_REGISTER_KERNEL(quant_matmul_grad, cpu, q4_1, cpu::matmul_grad<DType::q4_1>);
MOXING_REGISTER_KERNEL(quant_matmul_grad, cpu, q4_k, cpu::matmul_grad<DType::q4_k>);
MOXING_REGISTER_KERNEL(quant_matmul_grad, cpu, q6_k, cpu::matmul_grad<DType::q6_k>);
// per-channel int8 (i8 rows; the row scales are applied by the op)
MOXING_REGISTER_KERNEL(dequantize_rows, cpu, i8, cpu::dequantize_i8);
MOXING_REGISTER_KERNEL(quant_matmul, cpu, i8, (cpu::matmul<DType::i8, cpu::qsimd::kI8>));
MOXING_REGISTER_KERNEL(quant_matmul_grad, cpu, i8, cpu::matmul_grad<DType::i8>);

}  // namespace moxing::kernels
