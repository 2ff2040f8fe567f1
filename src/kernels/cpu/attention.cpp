// CPU fused attention, one (b, h) head at a time, queries in blocks of kRowBlock rows.
// Per block: scores = q k^T * scale by one GEMM straight into the attention-weight rows, plus
// the additive mask if any, softmax in place, dropout multipliers if any, out = att v by one
// GEMM. A causal block stops at the key of its last query, so the masked upper triangle is
// mostly never computed. A single query (KV-cache decoding) takes two GEMVs. Heads run in
// parallel; BLAS is single-threaded inside the parallel region, so every head is computed the
// same way whatever the thread count.
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/softmax_row.h"
#include "kernels/cpu/vec_math.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

// 64 query rows: large enough for efficient GEMMs, small enough that causal blocks skip
// most of the masked triangle (about 60% of the full scores at T = 256).
constexpr int64_t kRowBlock = 64;

// y (1,N) = alpha x (1,K) op(A): a one-row GEMM, which gemm runs as GEMV
template <class T>
void row_times(bool ta, int64_t N, int64_t K, T alpha, const T* x, const T* A, int64_t lda, T* y) {
  gemm<T>(false, ta, 1, N, K, alpha, x, K, A, lda, T(0), y, N);
}

// ds, att (L): ds = att * (ds - d), ds holding datt on entry
__attribute__((always_inline)) inline void softmax_grad_f32_body(float* ds, const float* att,
                                                                 float d, int64_t L) {
  for (int64_t j = 0; j < L; ++j) ds[j] = att[j] * (ds[j] - d);
}

MOXING_TARGET_AVX512 void softmax_grad_f32_avx512(float* ds, const float* att, float d, int64_t L) {
  softmax_grad_f32_body(ds, att, d, L);
}
MOXING_TARGET_AVX2 void softmax_grad_f32_avx2(float* ds, const float* att, float d, int64_t L) {
  softmax_grad_f32_body(ds, att, d, L);
}
void softmax_grad_f32_base(float* ds, const float* att, float d, int64_t L) {
  softmax_grad_f32_body(ds, att, d, L);
}

void softmax_inplace(float* x, int64_t L) { softmax_row_f32(x, x, L, false); }
void softmax_inplace(double* x, int64_t L) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < L; ++j) m = std::max(m, x[j]);
  if (m == -std::numeric_limits<double>::infinity()) m = 0.0;
  double sum = 0.0;
  for (int64_t j = 0; j < L; ++j) {
    x[j] = std::exp(x[j] - m);
    sum += x[j];
  }
  for (int64_t j = 0; j < L; ++j) x[j] /= sum;
}

void softmax_grad(float* ds, const float* att, float d, int64_t L) {
  switch (cpu_level()) {
    case CpuLevel::avx512:
      return softmax_grad_f32_avx512(ds, att, d, L);
    case CpuLevel::avx2:
      return softmax_grad_f32_avx2(ds, att, d, L);
    case CpuLevel::base:
      return softmax_grad_f32_base(ds, att, d, L);
  }
}
void softmax_grad(double* ds, const double* att, double d, int64_t L) {
  for (int64_t j = 0; j < L; ++j) ds[j] = att[j] * (ds[j] - d);
}

// sum(x * y) over n: 16 lanes of partial sums, added in double
template <class T>
T dot_product(const T* x, const T* y, int64_t n) {
  constexpr int64_t kLanes = 16;
  T acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += x[j + l] * y[j + l];
  }
  double sum = 0.0;
  for (int64_t l = 0; l < kLanes; ++l) sum += acc[l];
  for (; j < n; ++j) sum += static_cast<double>(x[j]) * y[j];
  return static_cast<T>(sum);
}

// Heads per parallel chunk: enough multiply-adds (2^16, a few microseconds) to pay for waking
// a second thread, so a decoding step over a short cache stays on one thread.
int64_t heads_grain(int64_t Tq, int64_t S, int64_t HS, int64_t HSv) {
  int64_t per_head = std::max<int64_t>(1, Tq * S * (HS + HSv));
  return std::max<int64_t>(1, (int64_t{1} << 16) / per_head);
}

// One head's (R,C) matrix of a (B,NH,R,C) tensor: first element and row stride.
template <class T>
struct HeadMat {
  T* p;
  int64_t ld;
};
template <class T>
HeadMat<T> head(const Tensor& t, int64_t b, int64_t h) {
  int64_t ld = t.size(2) == 1 ? std::max<int64_t>(t.size(3), 1) : t.stride(2);
  return {t.data<T>() + b * t.stride(0) + h * t.stride(1), ld};
}

// Keys visible to query t: s <= t when causal (top-left aligned), all S otherwise.
inline int64_t keys_for(int64_t t, int64_t S, bool causal) {
  return causal ? std::min(S, t + 1) : S;
}

// One head's rows of an additive mask (T,S): p null when there is none.
template <class T>
struct Mask {
  const T* p = nullptr;
  int64_t st = 0, ss = 0;  // strides over t and s
  void add_row(int64_t t, T* row, int64_t L) const {
    if (p == nullptr) return;
    const T* m = p + t * st;
    if (ss == 1) {
      for (int64_t j = 0; j < L; ++j) row[j] += m[j];
    } else {
      for (int64_t j = 0; j < L; ++j) row[j] += m[j * ss];
    }
  }
};

// row (L) times the dropout multipliers keep (L) -> dst (L)
template <class T>
void drop_row(const T* row, const T* keep, T* dst, int64_t L) {
  for (int64_t j = 0; j < L; ++j) dst[j] = row[j] * keep[j];
}

// One head: q (T,HS), k (S,HS), v (S,HSv), mask (T,S), drop (T,S) contiguous or null
// -> o (T,HSv); att (T,S) with row stride S; pd (kRowBlock,S) scratch for dropped rows
template <class T>
void head_forward(HeadMat<const T> q, HeadMat<const T> k, HeadMat<const T> v, const Mask<T>& mask,
                  const T* drop, HeadMat<T> o, T* att, bool att_is_scratch, T* pd, int64_t Tq,
                  int64_t S, int64_t HS, int64_t HSv, bool causal, T scale) {
  if (Tq == 1) {
    int64_t L = keys_for(0, S, causal);
    row_times(true, L, HS, scale, q.p, k.p, k.ld, att);  // att = q k^T
    mask.add_row(0, att, L);
    softmax_inplace(att, L);
    std::fill(att + L, att + S, T(0));
    if (drop != nullptr) drop_row(att, drop, pd, L);
    row_times(false, HSv, L, T(1), drop != nullptr ? pd : att, v.p, v.ld, o.p);  // o = att v
    return;
  }
  for (int64_t r0 = 0; r0 < Tq; r0 += kRowBlock) {
    const int64_t r1 = std::min(Tq, r0 + kRowBlock), rb = r1 - r0;
    const int64_t L = keys_for(r1 - 1, S, causal);
    T* a = att_is_scratch ? att : att + r0 * S;  // rows of S; backward reads only [0, L)
    gemm(false, true, rb, L, HS, scale, q.p + r0 * q.ld, q.ld, k.p, k.ld, T(0), a, S);
    for (int64_t t = r0; t < r1; ++t) {
      T* row = a + (t - r0) * S;
      int64_t Lt = keys_for(t, S, causal);
      mask.add_row(t, row, Lt);
      softmax_inplace(row, Lt);
      std::fill(row + Lt, row + L, T(0));
      if (drop != nullptr) drop_row(row, drop + t * S, pd + (t - r0) * S, L);
    }
    gemm(false, false, rb, HSv, L, T(1), drop != nullptr ? pd : a, S, v.p, v.ld, T(0),
         o.p + r0 * o.ld, o.ld);
  }
}

template <class T>
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       const Tensor& drop, bool causal, double scale, Tensor& out, Tensor& att) {
  const int64_t B = q.size(0), NH = q.size(1), Tq = q.size(2), S = k.size(2);
  const int64_t HS = q.size(3), HSv = v.size(3);
  const bool keep = att.defined();
  const size_t block = static_cast<size_t>(std::min(Tq, kRowBlock) * S);
  parallel_for(0, B * NH, heads_grain(Tq, S, HS, HSv), [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(keep ? 0 : block), pd(drop.defined() ? block : 0);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / NH, h = i % NH;
      T* a = keep ? att.data<T>() + i * Tq * S : scratch.data();
      auto qh = head<T>(q, b, h), kh = head<T>(k, b, h), vh = head<T>(v, b, h);
      Mask<T> m;
      if (mask.defined()) {
        m = {mask.data<T>() + b * mask.stride(0) + h * mask.stride(1), mask.stride(2),
             mask.stride(3)};
      }
      const T* dh = drop.defined() ? drop.data<T>() + i * Tq * S : nullptr;
      head_forward<T>({qh.p, qh.ld}, {kh.p, kh.ld}, {vh.p, vh.ld}, m, dh, head<T>(out, b, h), a,
                      !keep, pd.data(), Tq, S, HS, HSv, causal, static_cast<T>(scale));
    }
  });
}

// rows (R,C) of a head matrix set to zero
template <class T>
void zero_rows(HeadMat<T> m, int64_t R, int64_t C) {
  for (int64_t r = 0; r < R; ++r) std::fill(m.p + r * m.ld, m.p + r * m.ld + C, T(0));
}

// One head's backward; ds, pd (kRowBlock, S) scratch. dk, dv accumulate over the query
// blocks. With dropout (multipliers drop), dv = (att * drop)^T dout and datt = drop * (dout v^T);
// rowsum(dout * out) is still rowsum(att * datt).
template <class T>
void head_backward(HeadMat<const T> dout, HeadMat<const T> q, HeadMat<const T> k,
                   HeadMat<const T> v, HeadMat<const T> out, const T* att, const T* drop,
                   HeadMat<T> dq, HeadMat<T> dk, HeadMat<T> dv, T* ds, T* pd, int64_t Tq, int64_t S,
                   int64_t HS, int64_t HSv, bool causal, T scale) {
  zero_rows(dk, S, HS);
  zero_rows(dv, S, HSv);
  for (int64_t r0 = 0; r0 < Tq; r0 += kRowBlock) {
    const int64_t r1 = std::min(Tq, r0 + kRowBlock), rb = r1 - r0;
    const int64_t L = keys_for(r1 - 1, S, causal);
    const T* a = att + r0 * S;
    const T* dob = dout.p + r0 * dout.ld;
    if (drop != nullptr) {
      for (int64_t t = r0; t < r1; ++t) {
        drop_row(a + (t - r0) * S, drop + t * S, pd + (t - r0) * L, L);
      }
      gemm(true, false, L, HSv, rb, T(1), pd, L, dob, dout.ld, T(1), dv.p, dv.ld);
    } else {
      gemm(true, false, L, HSv, rb, T(1), a, S, dob, dout.ld, T(1), dv.p, dv.ld);
    }
    gemm(false, true, rb, L, HSv, T(1), dob, dout.ld, v.p, v.ld, T(0), ds, L);
    for (int64_t t = r0; t < r1; ++t) {
      T* dst = ds + (t - r0) * L;
      if (drop != nullptr) drop_row(dst, drop + t * S, dst, L);
      const T* dot = dout.p + t * dout.ld;
      const T* ot = out.p + t * out.ld;
      T d = dot_product(dot, ot, HSv);  // rowsum(dout * out) = rowsum(att * datt)
      softmax_grad(dst, a + (t - r0) * S, d, L);
    }
    gemm(false, false, rb, HS, L, scale, ds, L, k.p, k.ld, T(0), dq.p + r0 * dq.ld, dq.ld);
    gemm(true, false, L, HS, rb, scale, ds, L, q.p + r0 * q.ld, q.ld, T(1), dk.p, dk.ld);
  }
}

template <class T>
void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& out, const Tensor& att, const Tensor& drop, bool causal,
                        double scale, Tensor& dq, Tensor& dk, Tensor& dv) {
  const int64_t B = q.size(0), NH = q.size(1), Tq = q.size(2), S = k.size(2);
  const int64_t HS = q.size(3), HSv = v.size(3);
  const size_t block = static_cast<size_t>(std::min(Tq, kRowBlock) * S);
  parallel_for(0, B * NH, heads_grain(Tq, S, HS, HSv), [&](int64_t begin, int64_t end) {
    std::vector<T> ds(block), pd(drop.defined() ? block : 0);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / NH, h = i % NH;
      auto c = [&](const Tensor& t) {
        auto m = head<T>(t, b, h);
        return HeadMat<const T>{m.p, m.ld};
      };
      const T* dh = drop.defined() ? drop.data<T>() + i * Tq * S : nullptr;
      head_backward<T>(c(dout), c(q), c(k), c(v), c(out), att.data<T>() + i * Tq * S, dh,
                       head<T>(dq, b, h), head<T>(dk, b, h), head<T>(dv, b, h), ds.data(),
                       pd.data(), Tq, S, HS, HSv, causal, static_cast<T>(scale));
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(attention_forward, cpu, f32, attention_forward<float>);
MOXING_REGISTER_KERNEL(attention_forward, cpu, f64, attention_forward<double>);
MOXING_REGISTER_KERNEL(attention_backward, cpu, f32, attention_backward<float>);
MOXING_REGISTER_KERNEL(attention_backward, cpu, f64, attention_backward<double>);

}  // namespace moxing::kernels::cpu
