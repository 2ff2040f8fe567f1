// CPU recurrent layers, one direction of one layer at a time. Forward: the input projection of
// all T steps is one GEMM into the gate buffer; then per step one GEMM h W_hh^T and one pass
// over the (B, G*H) gates that applies the nonlinearities and the state update in place.
// Backward walks the steps the other way: per step one pass for the gate gradients and one
// GEMM for the state gradient; dx, dW_ih and dW_hh are then one GEMM each over all steps.
// The f32 passes use the vectorizable exp/tanh of vec_math.h, built per ISA.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/rnn.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

__attribute__((always_inline)) inline float sigmoid_(float x) {
  return 1.0f / (1.0f + exp_f32(-x));
}
__attribute__((always_inline)) inline double sigmoid_(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
__attribute__((always_inline)) inline float tanh_(float x) { return tanh_f32(x); }
__attribute__((always_inline)) inline double tanh_(double x) { return std::tanh(x); }

// One step's rows. Gate blocks of H columns in torch's order.
template <class T>
struct StepForward {
  int64_t H = 0, t = 0, ldy = 0;
  const int64_t* lengths = nullptr;
  T* g = nullptr;         // (B,G*H): x W_ih^T + b_ih in, activated gates out
  const T* hg = nullptr;  // (B,G*H): h W_hh^T + b_hh
  const T* h_prev = nullptr;
  T* h_new = nullptr;  // (B,H)
  const T* c_prev = nullptr;
  T* c_new = nullptr;  // (B,H) lstm
  T* hn = nullptr;     // (B,H) gru: the h W_hn^T + b_hn block, kept for backward
  T* y = nullptr;      // (B,H) with row stride ldy
};

template <RnnMode M, class T>
__attribute__((always_inline)) inline void forward_rows(const StepForward<T>& s, int64_t b0,
                                                        int64_t b1) {
  const int64_t H = s.H, GH = H * rnn_gate_count(M);
  for (int64_t b = b0; b < b1; ++b) {
    const T* __restrict hp = s.h_prev + b * H;
    T* __restrict h = s.h_new + b * H;
    T* __restrict y = s.y + b * s.ldy;
    if (s.lengths != nullptr && s.t >= s.lengths[b]) {  // padding: keep the state, y = 0
      std::memcpy(h, hp, sizeof(T) * H);
      if constexpr (M == RnnMode::lstm)
        std::memcpy(s.c_new + b * H, s.c_prev + b * H, sizeof(T) * H);
      std::fill(y, y + H, T(0));
      continue;
    }
    T* __restrict g = s.g + b * GH;
    const T* __restrict hg = s.hg + b * GH;
    if constexpr (M == RnnMode::lstm) {
      const T* __restrict cp = s.c_prev + b * H;
      T* __restrict c = s.c_new + b * H;
      // one pointer per gate block (i, f, g, o)
      T* __restrict gi = g;
      T* __restrict gf = g + H;
      T* __restrict gg = g + 2 * H;
      T* __restrict go = g + 3 * H;
      const T* __restrict hi = hg;
      const T* __restrict hf = hg + H;
      const T* __restrict hgg = hg + 2 * H;
      const T* __restrict ho = hg + 3 * H;
#pragma GCC ivdep  // the rows of h, c, y, the gate blocks and their gradients never overlap
      for (int64_t j = 0; j < H; ++j) {
        T i = sigmoid_(gi[j] + hi[j]);
        T f = sigmoid_(gf[j] + hf[j]);
        T gj = tanh_(gg[j] + hgg[j]);
        T o = sigmoid_(go[j] + ho[j]);
        T cj = f * cp[j] + i * gj;
        T hj = o * tanh_(cj);
        gi[j] = i;
        gf[j] = f;
        gg[j] = gj;
        go[j] = o;
        c[j] = cj;
        h[j] = hj;
        y[j] = hj;
      }
    } else if constexpr (M == RnnMode::gru) {
      T* __restrict hn = s.hn + b * H;
      T* __restrict gr = g;
      T* __restrict gz = g + H;
      T* __restrict gn = g + 2 * H;
      const T* __restrict hr = hg;
      const T* __restrict hz = hg + H;
      const T* __restrict hgn = hg + 2 * H;
#pragma GCC ivdep  // the rows of h, c, y, the gate blocks and their gradients never overlap
      for (int64_t j = 0; j < H; ++j) {
        T r = sigmoid_(gr[j] + hr[j]);
        T z = sigmoid_(gz[j] + hz[j]);
        T hnj = hgn[j];
        T n = tanh_(gn[j] + r * hnj);
        T hj = (T(1) - z) * n + z * hp[j];
        gr[j] = r;
        gz[j] = z;
        gn[j] = n;
        hn[j] = hnj;
        h[j] = hj;
        y[j] = hj;
      }
    } else {
#pragma GCC ivdep  // the rows of h, c, y, the gate blocks and their gradients never overlap
      for (int64_t j = 0; j < H; ++j) {
        T a = g[j] + hg[j];
        T hj = M == RnnMode::rnn_tanh ? tanh_(a) : (a > T(0) ? a : T(0));
        g[j] = hj;
        h[j] = hj;
        y[j] = hj;
      }
    }
  }
}

template <class T>
struct StepBackward {
  int64_t H = 0, t = 0, ldy = 0;
  const int64_t* lengths = nullptr;
  const T* __restrict g = nullptr;   // (B,G*H) activated gates
  const T* __restrict hn = nullptr;  // (B,H) gru
  const T* h_prev = nullptr;
  const T* h_new = nullptr;
  const T* c_prev = nullptr;
  const T* c_new = nullptr;
  const T* __restrict dy = nullptr;  // (B,H) with row stride ldy
  const T* __restrict dh = nullptr;  // (B,H): gradient of h_new from later steps and h_n
  T* __restrict dc = nullptr;        // (B,H) lstm: of c_new in, of c_prev out
  T* __restrict dxg = nullptr;       // (B,G*H): gradient of the x-side pre-activations
  T* __restrict dhg = nullptr;       // (B,G*H): of the h-side ones (dxg itself unless gru)
  T* dh_prev = nullptr;              // (B,H): the part of dh_prev that skips W_hh (gru: z dh)
};

// lstm: dc' = dc + dh o (1 - tanh(c)^2); di = dc' g, df = dc' c_prev, dg = dc' i, do = dh tanh(c),
//       each times its activation's derivative; dc_prev = dc' f
// gru:  dn = dh (1-z), dz = dh (h_prev - n), dh_prev = dh z + ...; da_n = dn (1 - n^2) is the
//       x-side n gradient and r da_n the h-side one; dr = da_n (h W_hn^T + b_hn)
template <RnnMode M, class T>
__attribute__((always_inline)) inline void backward_rows(const StepBackward<T>& s, int64_t b0,
                                                         int64_t b1) {
  const int64_t H = s.H, GH = H * rnn_gate_count(M);
  for (int64_t b = b0; b < b1; ++b) {
    const T* __restrict dh = s.dh + b * H;
    T* __restrict dhp = s.dh_prev + b * H;
    T* __restrict dxg = s.dxg + b * GH;
    T* __restrict dhg = s.dhg + b * GH;
    if (s.lengths != nullptr && s.t >= s.lengths[b]) {  // padding: gradients pass through
      std::memcpy(dhp, dh, sizeof(T) * H);
      std::fill(dxg, dxg + GH, T(0));
      if constexpr (M == RnnMode::gru) std::fill(dhg, dhg + GH, T(0));
      continue;
    }
    const T* __restrict g = s.g + b * GH;
    const T* __restrict dy = s.dy + b * s.ldy;
    if constexpr (M == RnnMode::lstm) {
      const T* __restrict cp = s.c_prev + b * H;
      const T* __restrict cn = s.c_new + b * H;
      T* __restrict dc = s.dc + b * H;
      const T* __restrict gi = g;
      const T* __restrict gf = g + H;
      const T* __restrict gg = g + 2 * H;
      const T* __restrict go = g + 3 * H;
      T* __restrict di = dxg;
      T* __restrict df = dxg + H;
      T* __restrict dg = dxg + 2 * H;
      T* __restrict d_o = dxg + 3 * H;
#pragma GCC ivdep  // the rows of h, c, y, the gate blocks and their gradients never overlap
      for (int64_t j = 0; j < H; ++j) {
        T dhj = dh[j] + dy[j];
        T i = gi[j], f = gf[j], gj = gg[j], o = go[j];
        T tc = tanh_(cn[j]);
        T dct = dc[j] + dhj * o * (T(1) - tc * tc);
        di[j] = dct * gj * i * (T(1) - i);
        df[j] = dct * cp[j] * f * (T(1) - f);
        dg[j] = dct * i * (T(1) - gj * gj);
        d_o[j] = dhj * tc * o * (T(1) - o);
        dc[j] = dct * f;
        dhp[j] = T(0);
      }
    } else if constexpr (M == RnnMode::gru) {
      const T* __restrict hp = s.h_prev + b * H;
      const T* __restrict hn = s.hn + b * H;
      const T* __restrict gr = g;
      const T* __restrict gz = g + H;
      const T* __restrict gn = g + 2 * H;
      T* __restrict dxr = dxg;
      T* __restrict dxz = dxg + H;
      T* __restrict dxn = dxg + 2 * H;
      T* __restrict dhr = dhg;
      T* __restrict dhz = dhg + H;
      T* __restrict dhn = dhg + 2 * H;
#pragma GCC ivdep  // the rows of h, c, y, the gate blocks and their gradients never overlap
      for (int64_t j = 0; j < H; ++j) {
        T dhj = dh[j] + dy[j];
        T r = gr[j], z = gz[j], n = gn[j];
        T dan = dhj * (T(1) - z) * (T(1) - n * n);
        T dar = dan * hn[j] * r * (T(1) - r);
        T daz = dhj * (hp[j] - n) * z * (T(1) - z);
        dxr[j] = dar;
        dxz[j] = daz;
        dxn[j] = dan;
        dhr[j] = dar;
        dhz[j] = daz;
        dhn[j] = dan * r;
        dhp[j] = dhj * z;
      }
    } else {
      const T* __restrict hnew = s.h_new + b * H;
#pragma GCC ivdep  // the rows of h, c, y, the gate blocks and their gradients never overlap
      for (int64_t j = 0; j < H; ++j) {
        T dhj = dh[j] + dy[j];
        T hj = hnew[j];
        dxg[j] = M == RnnMode::rnn_tanh ? dhj * (T(1) - hj * hj) : (hj > T(0) ? dhj : T(0));
        dhp[j] = T(0);
      }
    }
  }
}

// the f32 passes built for each ISA, chosen at run time; f64 (gradcheck) plain
template <RnnMode M>
MOXING_TARGET_AVX512 void forward_rows_avx512(const StepForward<float>& s, int64_t b0, int64_t b1) {
  forward_rows<M>(s, b0, b1);
}
template <RnnMode M>
MOXING_TARGET_AVX2 void forward_rows_avx2(const StepForward<float>& s, int64_t b0, int64_t b1) {
  forward_rows<M>(s, b0, b1);
}
template <RnnMode M>
void forward_rows_base(const StepForward<float>& s, int64_t b0, int64_t b1) {
  forward_rows<M>(s, b0, b1);
}
template <RnnMode M>
MOXING_TARGET_AVX512 void backward_rows_avx512(const StepBackward<float>& s, int64_t b0,
                                               int64_t b1) {
  backward_rows<M>(s, b0, b1);
}
template <RnnMode M>
MOXING_TARGET_AVX2 void backward_rows_avx2(const StepBackward<float>& s, int64_t b0, int64_t b1) {
  backward_rows<M>(s, b0, b1);
}
template <RnnMode M>
void backward_rows_base(const StepBackward<float>& s, int64_t b0, int64_t b1) {
  backward_rows<M>(s, b0, b1);
}

template <RnnMode M>
void step_rows(const StepForward<float>& s, int64_t b0, int64_t b1) {
  switch (cpu_level()) {
    case CpuLevel::avx512:
      return forward_rows_avx512<M>(s, b0, b1);
    case CpuLevel::avx2:
      return forward_rows_avx2<M>(s, b0, b1);
    case CpuLevel::base:
      return forward_rows_base<M>(s, b0, b1);
  }
}
template <RnnMode M>
void step_rows(const StepBackward<float>& s, int64_t b0, int64_t b1) {
  switch (cpu_level()) {
    case CpuLevel::avx512:
      return backward_rows_avx512<M>(s, b0, b1);
    case CpuLevel::avx2:
      return backward_rows_avx2<M>(s, b0, b1);
    case CpuLevel::base:
      return backward_rows_base<M>(s, b0, b1);
  }
}
template <RnnMode M>
void step_rows(const StepForward<double>& s, int64_t b0, int64_t b1) {
  forward_rows<M>(s, b0, b1);
}
template <RnnMode M>
void step_rows(const StepBackward<double>& s, int64_t b0, int64_t b1) {
  backward_rows<M>(s, b0, b1);
}

// Runs one step's pass over rows [0, B), split across threads only when each thread gets at
// least ~16K gate values (below that the fork costs more than it saves).
template <class Step>
void run_step(RnnMode mode, const Step& s, int64_t B, int64_t GH) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(GH, 1));
  parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    switch (mode) {
      case RnnMode::rnn_tanh:
        return step_rows<RnnMode::rnn_tanh>(s, b0, b1);
      case RnnMode::rnn_relu:
        return step_rows<RnnMode::rnn_relu>(s, b0, b1);
      case RnnMode::lstm:
        return step_rows<RnnMode::lstm>(s, b0, b1);
      case RnnMode::gru:
        return step_rows<RnnMode::gru>(s, b0, b1);
    }
  });
}

// dst (rows, cols) = bias in every row, or zeros
template <class T>
void fill_rows(T* dst, int64_t rows, int64_t cols, const Tensor& bias) {
  if (!bias.defined()) {
    std::fill(dst, dst + rows * cols, T(0));
    return;
  }
  const T* pb = bias.data<T>();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * cols, pb, sizeof(T) * cols);
}

// out (cols) = sum over the rows of m (rows, cols)
template <class T>
void column_sums(const T* m, int64_t rows, int64_t cols, T* out) {
  std::fill(out, out + cols, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = m + r * cols;
    for (int64_t j = 0; j < cols; ++j) out[j] += row[j];
  }
}

template <class T>
void copy_or_zero(T* dst, const Tensor& src, int64_t n) {
  if (src.defined()) {
    std::memcpy(dst, src.data<T>(), sizeof(T) * n);
  } else {
    std::fill(dst, dst + n, T(0));
  }
}

template <class T>
void forward_direction(const RnnDirection& d) {
  const int64_t T_ = d.x.size(0), B = d.x.size(1), I = d.x.size(2), H = d.w_hh.size(1);
  const int64_t GH = rnn_gate_count(d.mode) * H, BH = B * H;
  const int64_t prev = d.reverse ? 1 : 0, next = 1 - prev;
  const bool lstm = d.mode == RnnMode::lstm;
  T* xg = d.gates.data<T>();
  T* hs = d.h.data<T>();
  T* cs = lstm ? d.c.data<T>() : nullptr;
  const T* w_hh = d.w_hh.data<T>();

  // every step's x W_ih^T + b_ih in one GEMM
  fill_rows(xg, T_ * B, GH, d.b_ih);
  gemm<T>(false, true, T_ * B, GH, I, T(1), d.x.data<T>(), I, d.w_ih.data<T>(), I, T(1), xg, GH);

  const int64_t first = d.reverse ? T_ : 0;
  copy_or_zero(hs + first * BH, d.h0, BH);
  if (lstm) copy_or_zero(cs + first * BH, d.c0, BH);
  auto hg = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(B * GH));
  StepForward<T> s;
  s.H = H;
  s.ldy = d.y.stride(1);
  s.lengths = d.lengths;
  for (int64_t p = 0; p < T_; ++p) {
    const int64_t t = d.reverse ? T_ - 1 - p : p;
    s.t = t;
    s.h_prev = hs + (t + prev) * BH;
    s.h_new = hs + (t + next) * BH;
    if (lstm) {
      s.c_prev = cs + (t + prev) * BH;
      s.c_new = cs + (t + next) * BH;
    }
    s.g = xg + t * B * GH;
    s.hn = d.mode == RnnMode::gru ? d.hn.data<T>() + t * BH : nullptr;
    s.y = d.y.data<T>() + t * d.y.stride(0);
    fill_rows(hg.get(), B, GH, d.b_hh);
    gemm<T>(false, true, B, GH, H, T(1), s.h_prev, H, w_hh, H, T(1), hg.get(), GH);
    s.hg = hg.get();
    run_step(d.mode, s, B, GH);
  }
  const int64_t last = d.reverse ? 0 : T_;
  std::memcpy(d.h_n.data<T>(), hs + last * BH, sizeof(T) * BH);
  if (lstm) std::memcpy(d.c_n.data<T>(), cs + last * BH, sizeof(T) * BH);
}

template <class T>
void backward_direction(const RnnDirection& d, RnnGrads& gr) {
  const int64_t T_ = d.x.size(0), B = d.x.size(1), I = d.x.size(2), H = d.w_hh.size(1);
  const int64_t GH = rnn_gate_count(d.mode) * H, BH = B * H;
  const int64_t prev = d.reverse ? 1 : 0, next = 1 - prev;
  const bool lstm = d.mode == RnnMode::lstm, gru = d.mode == RnnMode::gru;
  const T* hs = d.h.data<T>();
  const T* cs = lstm ? d.c.data<T>() : nullptr;
  const T* w_hh = d.w_hh.data<T>();

  const auto n_gates = static_cast<size_t>(T_ * B * GH);
  auto dxg = std::make_unique_for_overwrite<T[]>(n_gates);
  std::unique_ptr<T[]> dhg_gru = gru ? std::make_unique_for_overwrite<T[]>(n_gates) : nullptr;
  T* dhg = gru ? dhg_gru.get() : dxg.get();
  auto dh_other = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(BH));
  T* dh = gr.dh.data<T>();
  T* dh_next = dh_other.get();

  StepBackward<T> s;
  s.H = H;
  s.ldy = gr.dy.stride(1);
  s.lengths = d.lengths;
  s.dc = lstm ? gr.dc.data<T>() : nullptr;
  for (int64_t p = 0; p < T_; ++p) {
    const int64_t t = d.reverse ? p : T_ - 1 - p;
    s.t = t;
    s.g = d.gates.data<T>() + t * B * GH;
    s.hn = gru ? d.hn.data<T>() + t * BH : nullptr;
    s.h_prev = hs + (t + prev) * BH;
    s.h_new = hs + (t + next) * BH;
    if (lstm) {
      s.c_prev = cs + (t + prev) * BH;
      s.c_new = cs + (t + next) * BH;
    }
    s.dy = gr.dy.data<T>() + t * gr.dy.stride(0);
    s.dh = dh;
    s.dxg = dxg.get() + t * B * GH;
    s.dhg = dhg + t * B * GH;
    s.dh_prev = dh_next;
    run_step(d.mode, s, B, GH);
    // dh_prev += dhg W_hh
    gemm<T>(false, false, B, H, GH, T(1), s.dhg, GH, w_hh, H, T(1), dh_next, H);
    std::swap(dh, dh_next);
  }
  if (dh != gr.dh.data<T>()) std::memcpy(gr.dh.data<T>(), dh, sizeof(T) * BH);

  // over all steps at once: dx = dxg W_ih, dW_ih = dxg^T x, dW_hh = dhg^T h_prev
  const int64_t TB = T_ * B;
  gemm<T>(false, false, TB, I, GH, T(1), dxg.get(), GH, d.w_ih.data<T>(), I,
          gr.accumulate_dx ? T(1) : T(0), gr.dx.data<T>(), I);
  gemm<T>(true, false, GH, I, TB, T(1), dxg.get(), GH, d.x.data<T>(), I, T(0), gr.dw_ih.data<T>(),
          I);
  gemm<T>(true, false, GH, H, TB, T(1), dhg, GH, hs + prev * BH, H, T(0), gr.dw_hh.data<T>(), H);
  if (gr.db_ih.defined()) column_sums(dxg.get(), TB, GH, gr.db_ih.data<T>());
  if (gr.db_hh.defined()) column_sums(dhg, TB, GH, gr.db_hh.data<T>());
}

}  // namespace

MOXING_REGISTER_KERNEL(rnn_forward, cpu, f32, &forward_direction<float>);
MOXING_REGISTER_KERNEL(rnn_forward, cpu, f64, &forward_direction<double>);
MOXING_REGISTER_KERNEL(rnn_backward, cpu, f32, &backward_direction<float>);
MOXING_REGISTER_KERNEL(rnn_backward, cpu, f64, &backward_direction<double>);

}  // namespace moxing::kernels::cpu
