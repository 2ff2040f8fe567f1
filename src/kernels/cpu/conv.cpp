// CPU convolution as im2col + GEMM (OpenBLAS), and pooling as plain window loops.
// im2col lays out, per image and group, every kernel tap's view of the input as one row of a
// (C/G*KH*KW, OH*OW) matrix, so that a convolution is one GEMM with the weight matrix;
// col2im is its adjoint (scatter-add back into the image).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cpu/blas.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

// Sizes of one convolution: input (H,W), output (OH,OW), kernel (KH,KW), and the params.
struct Geometry {
  int64_t H, W, OH, OW, KH, KW;
  ConvParams p;
  // a 1x1 kernel that maps the image onto itself: the image is its own column matrix
  bool pointwise() const {
    return KH == 1 && KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
           p.pad_w == 0 && H == OH && W == OW;
  }
};

// The output indices o in [lo, hi) of n_out whose input index o * stride + offset is in
// [0, size).
struct Range {
  int64_t lo, hi;
};
Range valid_range(int64_t offset, int64_t stride, int64_t size, int64_t n_out) {
  int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t hi = size - 1 - offset < 0 ? 0 : (size - 1 - offset) / stride + 1;
  lo = std::min(lo, n_out);
  hi = std::max(lo, std::min(hi, n_out));
  return {lo, hi};
}

// x (C,H,W) -> cols (C*KH*KW, OH*OW) with row stride ld; zeros where a tap falls in padding
template <class T>
void im2col(const T* x, int64_t C, const Geometry& g, T* cols, int64_t ld) {
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        T* row = cols + ((c * g.KH + kh) * g.KW + kw) * ld;
        const int64_t off_h = kh * g.p.dil_h - g.p.pad_h, off_w = kw * g.p.dil_w - g.p.pad_w;
        const Range ow = valid_range(off_w, g.p.stride_w, g.W, g.OW);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          T* dst = row + oh * g.OW;
          const int64_t ih = oh * g.p.stride_h + off_h;
          if (ih < 0 || ih >= g.H) {
            std::fill(dst, dst + g.OW, T(0));
            continue;
          }
          const T* src = x + (c * g.H + ih) * g.W;
          std::fill(dst, dst + ow.lo, T(0));
          for (int64_t o = ow.lo; o < ow.hi; ++o) dst[o] = src[o * g.p.stride_w + off_w];
          std::fill(dst + ow.hi, dst + g.OW, T(0));
        }
      }
    }
  }
}

// cols (C*KH*KW, OH*OW) with row stride ld -> x (C,H,W) += every tap's value at its pixel
template <class T>
void col2im(const T* cols, int64_t ld, int64_t C, const Geometry& g, T* x) {
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = cols + ((c * g.KH + kh) * g.KW + kw) * ld;
        const int64_t off_h = kh * g.p.dil_h - g.p.pad_h, off_w = kw * g.p.dil_w - g.p.pad_w;
        const Range ow = valid_range(off_w, g.p.stride_w, g.W, g.OW);
        const Range oh = valid_range(off_h, g.p.stride_h, g.H, g.OH);
        for (int64_t h = oh.lo; h < oh.hi; ++h) {
          const T* src = row + h * g.OW;
          T* dst = x + (c * g.H + h * g.p.stride_h + off_h) * g.W;
          for (int64_t o = ow.lo; o < ow.hi; ++o) dst[o * g.p.stride_w + off_w] += src[o];
        }
      }
    }
  }
}

// Calls f(n, scratch) for every image n of the batch, scratch holding `scratch_size` T's.
// With at least one image per thread each thread runs its own images with single-threaded
// GEMMs (OpenBLAS does not thread inside a parallel region); otherwise the images run in turn
// and OpenBLAS threads each GEMM. Each image's result is computed the same way either way.
template <class T, class F>
void for_each_image(int64_t B, int64_t scratch_size, const F& f) {
  auto run = [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(static_cast<size_t>(scratch_size));
    for (int64_t n = begin; n < end; ++n) f(n, scratch.data());
  };
  if (B >= num_threads()) {
    parallel_for(0, B, 1, run);
  } else {
    run(0, B);
  }
}

Geometry geometry(const Tensor& input, const Tensor& w, const Tensor& output, const ConvParams& p) {
  return {input.size(2), input.size(3), output.size(2), output.size(3), w.size(2), w.size(3), p};
}

// out[n, g] = w[g] (C_out/G, C_in/G*KH*KW) @ im2col(x[n, g]) + b
template <class T>
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvParams& p,
                    Tensor& out) {
  if (out.numel() == 0) return;
  const Geometry g = geometry(x, w, out, p);
  const int64_t C_in = x.size(1), C_out = w.size(0), G = p.groups;
  const int64_t Cg_in = C_in / G, Cg_out = C_out / G, CK = Cg_in * g.KH * g.KW;
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  const T* pb = b.defined() ? b.data<T>() : nullptr;
  T* po = out.data<T>();
  const bool direct = g.pointwise();
  for_each_image<T>(x.size(0), direct ? 0 : CK * P, [&](int64_t n, T* cols) {
    for (int64_t gr = 0; gr < G; ++gr) {
      const T* xg = px + (n * C_in + gr * Cg_in) * HW;
      T* og = po + (n * C_out + gr * Cg_out) * P;
      if (!direct) im2col(xg, Cg_in, g, cols, P);
      gemm(false, false, Cg_out, P, CK, T(1), pw + gr * Cg_out * CK, CK, direct ? xg : cols, P,
           T(0), og, P);
      if (pb == nullptr) continue;
      for (int64_t co = 0; co < Cg_out; ++co) {
        const T bias = pb[gr * Cg_out + co];
        for (int64_t i = 0; i < P; ++i) og[co * P + i] += bias;
      }
    }
  });
}

// gx[n, g] = col2im(w[g]^T (C_in/G*KH*KW, C_out/G) @ gout[n, g])
template <class T>
void conv2d_backward_input(const Tensor& gout, const Tensor& w, const ConvParams& p, Tensor& gx) {
  if (gx.numel() == 0) return;
  const Geometry g = geometry(gx, w, gout, p);
  const int64_t C_in = gx.size(1), C_out = w.size(0), G = p.groups;
  const int64_t Cg_in = C_in / G, Cg_out = C_out / G, CK = Cg_in * g.KH * g.KW;
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  const T* pg = gout.data<T>();
  const T* pw = w.data<T>();
  T* px = gx.data<T>();
  const bool direct = g.pointwise();
  for_each_image<T>(gx.size(0), direct ? 0 : CK * P, [&](int64_t n, T* cols) {
    for (int64_t gr = 0; gr < G; ++gr) {
      const T* gg = pg + (n * C_out + gr * Cg_out) * P;
      T* xg = px + (n * C_in + gr * Cg_in) * HW;
      gemm(true, false, CK, P, Cg_out, T(1), pw + gr * Cg_out * CK, CK, gg, P, T(0),
           direct ? xg : cols, P);
      if (direct) continue;
      std::fill(xg, xg + Cg_in * HW, T(0));
      col2im(cols, P, Cg_in, g, xg);
    }
  });
}

// gw[g] = sum over images n of gout[n, g] (C_out/G, OH*OW) @ im2col(x[n, g])^T.
// Images are taken in chunks laid side by side, so that each chunk is one wide GEMM per group
// (K = images * OH * OW) accumulated in a fixed order.
template <class T>
void conv2d_backward_weight(const Tensor& gout, const Tensor& x, const ConvParams& p, Tensor& gw) {
  if (gw.numel() == 0) return;
  const Geometry g = geometry(x, gw, gout, p);
  const int64_t B = x.size(0), C_in = x.size(1), C_out = gw.size(0), G = p.groups;
  const int64_t Cg_in = C_in / G, Cg_out = C_out / G, CK = Cg_in * g.KH * g.KW;
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
  const T* pg = gout.data<T>();
  const T* px = x.data<T>();
  T* pw = gw.data<T>();
  if (B == 0 || P == 0) {
    std::fill(pw, pw + gw.numel(), T(0));
    return;
  }
  // images per chunk: columns of all groups for a chunk stay under about 2^22 elements
  const int64_t per_image = (G * CK + C_out) * P;
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 22) / per_image, 1, B);
  std::vector<T> cols(static_cast<size_t>(G * CK * chunk * P));
  std::vector<T> grads(static_cast<size_t>(C_out * chunk * P));
  for (int64_t n0 = 0; n0 < B; n0 += chunk) {
    const int64_t m = std::min(chunk, B - n0), L = m * P;
    // cols (G*CK, L) and grads (C_out, L): image i fills columns [i P, (i + 1) P)
    parallel_for(0, m, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        im2col(px + (n0 + i) * C_in * HW, C_in, g, cols.data() + i * P, L);
        for (int64_t co = 0; co < C_out; ++co) {
          std::memcpy(grads.data() + co * L + i * P, pg + ((n0 + i) * C_out + co) * P,
                      static_cast<size_t>(P) * sizeof(T));
        }
      }
    });
    for (int64_t gr = 0; gr < G; ++gr) {
      gemm(false, true, Cg_out, CK, L, T(1), grads.data() + gr * Cg_out * L, L,
           cols.data() + gr * CK * L, L, n0 == 0 ? T(0) : T(1), pw + gr * Cg_out * CK, CK);
    }
  }
}

int64_t window_size(const PoolWindows& win, int64_t oh, int64_t ow) {
  return (win.h_end[static_cast<size_t>(oh)] - win.h_begin[static_cast<size_t>(oh)]) *
         (win.w_end[static_cast<size_t>(ow)] - win.w_begin[static_cast<size_t>(ow)]);
}

// Calls f(plane) for each of the B*C planes, in parallel chunks sized by the plane's work.
template <class F>
void for_each_plane(const Tensor& x, int64_t plane_work, const F& f) {
  const int64_t planes = x.size(0) * x.size(1);
  parallel_for(0, planes, std::max<int64_t>(1, 32768 / std::max<int64_t>(plane_work, 1)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t pl = begin; pl < end; ++pl) f(pl);
               });
}

// out = max over the window, indices = where (first max; NaN wins as in torch)
template <class T>
void max_pool2d(const Tensor& x, const PoolWindows& win, Tensor& out, Tensor& indices) {
  const int64_t H = x.size(2), W = x.size(3), OH = out.size(2), OW = out.size(3);
  const T* px = x.data<T>();
  T* po = out.data<T>();
  int64_t* pi = indices.data<int64_t>();
  for_each_plane(x, H * W, [&](int64_t pl) {
    const T* xp = px + pl * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_i = -1;
        for (int64_t h = win.h_begin[static_cast<size_t>(oh)];
             h < win.h_end[static_cast<size_t>(oh)]; ++h) {
          for (int64_t w = win.w_begin[static_cast<size_t>(ow)];
               w < win.w_end[static_cast<size_t>(ow)]; ++w) {
            const T v = xp[h * W + w];
            if (best_i < 0 || v > best || std::isnan(v)) {
              best = v;
              best_i = h * W + w;
            }
          }
        }
        po[(pl * OH + oh) * OW + ow] = best;
        pi[(pl * OH + oh) * OW + ow] = best_i;
      }
    }
  });
}

// gx[argmax] += gout
template <class T>
void max_pool2d_backward(const Tensor& gout, const Tensor& indices, Tensor& gx) {
  const int64_t HW = gx.size(2) * gx.size(3), P = gout.size(2) * gout.size(3);
  const T* pg = gout.data<T>();
  const int64_t* pi = indices.data<int64_t>();
  T* px = gx.data<T>();
  for_each_plane(gx, HW + P, [&](int64_t pl) {
    T* xp = px + pl * HW;
    std::fill(xp, xp + HW, T(0));
    for (int64_t i = 0; i < P; ++i) xp[pi[pl * P + i]] += pg[pl * P + i];
  });
}

// out = sum over the window / divisor
template <class T>
void avg_pool2d(const Tensor& x, const PoolWindows& win, Tensor& out) {
  const int64_t H = x.size(2), W = x.size(3), OH = out.size(2), OW = out.size(3);
  const T* px = x.data<T>();
  T* po = out.data<T>();
  for_each_plane(x, H * W, [&](int64_t pl) {
    const T* xp = px + pl * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        double s = 0;
        for (int64_t h = win.h_begin[static_cast<size_t>(oh)];
             h < win.h_end[static_cast<size_t>(oh)]; ++h) {
          for (int64_t w = win.w_begin[static_cast<size_t>(ow)];
               w < win.w_end[static_cast<size_t>(ow)]; ++w) {
            s += xp[h * W + w];
          }
        }
        const int64_t div = win.divisor > 0 ? win.divisor : window_size(win, oh, ow);
        po[(pl * OH + oh) * OW + ow] = static_cast<T>(s / static_cast<double>(div));
      }
    }
  });
}

// gx[window] += gout / divisor
template <class T>
void avg_pool2d_backward(const Tensor& gout, const PoolWindows& win, Tensor& gx) {
  const int64_t H = gx.size(2), W = gx.size(3), OH = gout.size(2), OW = gout.size(3);
  const T* pg = gout.data<T>();
  T* px = gx.data<T>();
  for_each_plane(gx, H * W, [&](int64_t pl) {
    T* xp = px + pl * H * W;
    std::fill(xp, xp + H * W, T(0));
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t div = win.divisor > 0 ? win.divisor : window_size(win, oh, ow);
        const T v = pg[(pl * OH + oh) * OW + ow] / static_cast<T>(div);
        for (int64_t h = win.h_begin[static_cast<size_t>(oh)];
             h < win.h_end[static_cast<size_t>(oh)]; ++h) {
          for (int64_t w = win.w_begin[static_cast<size_t>(ow)];
               w < win.w_end[static_cast<size_t>(ow)]; ++w) {
            xp[h * W + w] += v;
          }
        }
      }
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(conv2d_forward, cpu, f32, conv2d_forward<float>);
MOXING_REGISTER_KERNEL(conv2d_forward, cpu, f64, conv2d_forward<double>);
MOXING_REGISTER_KERNEL(conv2d_backward_input, cpu, f32, conv2d_backward_input<float>);
MOXING_REGISTER_KERNEL(conv2d_backward_input, cpu, f64, conv2d_backward_input<double>);
MOXING_REGISTER_KERNEL(conv2d_backward_weight, cpu, f32, conv2d_backward_weight<float>);
MOXING_REGISTER_KERNEL(conv2d_backward_weight, cpu, f64, conv2d_backward_weight<double>);
MOXING_REGISTER_KERNEL(max_pool2d_forward, cpu, f32, max_pool2d<float>);
MOXING_REGISTER_KERNEL(max_pool2d_forward, cpu, f64, max_pool2d<double>);
MOXING_REGISTER_KERNEL(max_pool2d_backward, cpu, f32, max_pool2d_backward<float>);
MOXING_REGISTER_KERNEL(max_pool2d_backward, cpu, f64, max_pool2d_backward<double>);
MOXING_REGISTER_KERNEL(avg_pool2d_forward, cpu, f32, avg_pool2d<float>);
MOXING_REGISTER_KERNEL(avg_pool2d_forward, cpu, f64, avg_pool2d<double>);
MOXING_REGISTER_KERNEL(avg_pool2d_backward, cpu, f32, avg_pool2d_backward<float>);
MOXING_REGISTER_KERNEL(avg_pool2d_backward, cpu, f64, avg_pool2d_backward<double>);

}  // namespace moxing::kernels::cpu
