// Convolution and pooling ops: argument checks, output sizes, dispatch, and backward.
// conv2d and conv_transpose2d are each other's adjoint, so three kernels serve both:
// the forward of one is the input gradient of the other, and they share the weight gradient.
#include "moxing/ops/conv.h"

#include "kernels/conv.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(conv2d_forward, Conv2dFn)
MOXING_DEFINE_KERNEL(conv2d_backward_input, Conv2dBackwardInputFn)
MOXING_DEFINE_KERNEL(conv2d_backward_weight, Conv2dBackwardWeightFn)
MOXING_DEFINE_KERNEL(max_pool2d_forward, MaxPool2dFn)
MOXING_DEFINE_KERNEL(max_pool2d_backward, MaxPool2dBackwardFn)
MOXING_DEFINE_KERNEL(avg_pool2d_forward, AvgPool2dFn)
MOXING_DEFINE_KERNEL(avg_pool2d_backward, AvgPool2dBackwardFn)
}  // namespace kernels

using autograd::SavedTensor;
using kernels::ConvParams;
using kernels::PoolWindows;

namespace {

std::string pair_str(Size2 s) { return fmt::format("[{}, {}]", s[0], s[1]); }

// Runs f on x as a batch: an unbatched (C,H,W) image becomes (1,C,H,W) and the result loses
// that dim again.
template <class F>
Tensor with_batch_dim(const Tensor& x, const char* op, const F& f) {
  MOXING_CHECK(x.defined(), "{}: undefined input", op);
  MOXING_CHECK(x.dim() == 3 || x.dim() == 4,
               "{}: expected input (B,C,H,W) or (C,H,W), got shape {}", op, shape_str(x.shape()));
  if (x.dim() == 3) return squeeze(f(unsqueeze(x, 0)), 0);
  return f(x);
}

void check_param(Size2 v, int64_t min, const char* op, const char* name) {
  MOXING_CHECK(v[0] >= min && v[1] >= min, "{}: {} {} must be >= {}", op, name, pair_str(v), min);
}

// Checks shared by conv2d and conv_transpose2d on x (B,C,H,W), w (4-D) and b (1-D).
void check_conv_args(const char* op, const Tensor& x, const Tensor& w, const Tensor& b,
                     Size2 stride, Size2 padding, Size2 dilation, int64_t groups) {
  MOXING_CHECK(w.defined(), "{}: undefined weight", op);
  check_same_device(op, {x, w, b});
  MOXING_CHECK(x.dtype() == w.dtype() && (!b.defined() || b.dtype() == x.dtype()),
               "{}: input, weight and bias dtypes differ ({}, {}, {})", op, dtype_name(x.dtype()),
               dtype_name(w.dtype()), b.defined() ? dtype_name(b.dtype()) : "none");
  MOXING_CHECK(is_floating(x.dtype()), "{}: needs floating-point tensors, got {}", op,
               dtype_name(x.dtype()));
  MOXING_CHECK(w.dim() == 4, "{}: expected a 4-D weight, got shape {}", op, shape_str(w.shape()));
  check_param(stride, 1, op, "stride");
  check_param(padding, 0, op, "padding");
  check_param(dilation, 1, op, "dilation");
  MOXING_CHECK(groups >= 1, "{}: groups {} must be >= 1", op, groups);
}

ConvParams conv_params(Size2 stride, Size2 padding, Size2 dilation, int64_t groups) {
  return {stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups};
}

// The kernels on contiguous operands, outside autograd.
Tensor conv_forward_raw(const Tensor& x, const Tensor& w, const Tensor& b, const ConvParams& p,
                        const Shape& out_shape) {
  Tensor out = empty(out_shape, x.options());
  Tensor bc = b.defined() ? contiguous(b.detach()) : Tensor();
  kernels::conv2d_forward().get(x.device(), x.dtype())(contiguous(x.detach()),
                                                       contiguous(w.detach()), bc, p, out);
  return out;
}

Tensor conv_input_grad_raw(const Tensor& gout, const Tensor& w, const ConvParams& p,
                           const Shape& in_shape) {
  Tensor gx = empty(in_shape, gout.options());
  kernels::conv2d_backward_input().get(gout.device(), gout.dtype())(contiguous(gout.detach()),
                                                                    contiguous(w.detach()), p, gx);
  return gx;
}

Tensor conv_weight_grad_raw(const Tensor& gout, const Tensor& x, const ConvParams& p,
                            const Shape& w_shape) {
  Tensor gw = empty(w_shape, gout.options());
  kernels::conv2d_backward_weight().get(gout.device(), gout.dtype())(contiguous(gout.detach()),
                                                                     contiguous(x.detach()), p, gw);
  return gw;
}

Tensor bias_grad(const Tensor& g) { return sum(g, {0, 2, 3}); }

}  // namespace

// out[n, co] = b[co] + sum over ci in co's group, kh, kw of
//   w[co, ci, kh, kw] x[n, ci, oh stride - padding + kh dilation, ow stride - padding + kw
//   dilation]
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride, Size2 padding,
              Size2 dilation, int64_t groups) {
  const char* op = "conv2d";
  return with_batch_dim(x, op, [&](const Tensor& xb) {
    check_conv_args(op, xb, w, b, stride, padding, dilation, groups);
    const int64_t C_in = xb.size(1), C_out = w.size(0), KH = w.size(2), KW = w.size(3);
    MOXING_CHECK(C_in % groups == 0 && C_out % groups == 0,
                 "conv2d: groups {} must divide the input channels {} and output channels {} "
                 "(input shape {}, weight shape {})",
                 groups, C_in, C_out, shape_str(x.shape()), shape_str(w.shape()));
    MOXING_CHECK(w.size(1) * groups == C_in,
                 "conv2d: input shape {} has {} channels but weight shape {} expects {} "
                 "({} per group x groups {})",
                 shape_str(x.shape()), C_in, shape_str(w.shape()), w.size(1) * groups, w.size(1),
                 groups);
    MOXING_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == C_out),
                 "conv2d: bias shape {} does not match weight shape {} (expected [{}])",
                 b.defined() ? shape_str(b.shape()) : "", shape_str(w.shape()), C_out);
    const int64_t H = xb.size(2), W = xb.size(3);
    const int64_t ek_h = dilation[0] * (KH - 1) + 1, ek_w = dilation[1] * (KW - 1) + 1;
    MOXING_CHECK(ek_h <= H + 2 * padding[0] && ek_w <= W + 2 * padding[1],
                 "conv2d: kernel {} (dilated {}) is larger than the padded input {} (input shape "
                 "{}, weight shape {}, padding {})",
                 pair_str({KH, KW}), pair_str({ek_h, ek_w}),
                 pair_str({H + 2 * padding[0], W + 2 * padding[1]}), shape_str(x.shape()),
                 shape_str(w.shape()), pair_str(padding));
    const int64_t OH = (H + 2 * padding[0] - ek_h) / stride[0] + 1;
    const int64_t OW = (W + 2 * padding[1] - ek_w) / stride[1] + 1;
    const ConvParams p = conv_params(stride, padding, dilation, groups);
    Tensor out = conv_forward_raw(xb, w, b, p, {xb.size(0), C_out, OH, OW});
    if (autograd::any_requires_grad({xb, w, b})) {
      SavedTensor sx(w.requires_grad() ? xb : Tensor(), op);
      SavedTensor sw(xb.requires_grad() ? w : Tensor(), op);
      Shape x_shape = xb.shape(), w_shape = w.shape();
      const bool has_b = b.defined();
      autograd::record(op, {out}, {xb, w, b},
                       [sx, sw, p, x_shape, w_shape, has_b](const std::vector<Tensor>& g) {
                         Tensor gx, gw;
                         if (sw.defined()) gx = conv_input_grad_raw(g[0], sw.get(), p, x_shape);
                         if (sx.defined()) gw = conv_weight_grad_raw(g[0], sx.get(), p, w_shape);
                         return std::vector<Tensor>{gx, gw, has_b ? bias_grad(g[0]) : Tensor()};
                       });
    }
    return out;
  });
}

// y is the input gradient of conv2d(y, w) at output gradient x: every x[n, ci, h, w] adds
// x * w[ci, co, kh, kw] at y[n, co, h stride - padding + kh dilation, ...]; then + b
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride,
                        Size2 padding, Size2 output_padding, int64_t groups, Size2 dilation) {
  const char* op = "conv_transpose2d";
  return with_batch_dim(x, op, [&](const Tensor& xb) {
    check_conv_args(op, xb, w, b, stride, padding, dilation, groups);
    check_param(output_padding, 0, op, "output_padding");
    MOXING_CHECK(output_padding[0] < std::max(stride[0], dilation[0]) &&
                     output_padding[1] < std::max(stride[1], dilation[1]),
                 "conv_transpose2d: output_padding {} must be smaller than stride {} or dilation "
                 "{}",
                 pair_str(output_padding), pair_str(stride), pair_str(dilation));
    const int64_t C_in = xb.size(1), KH = w.size(2), KW = w.size(3);
    MOXING_CHECK(C_in % groups == 0,
                 "conv_transpose2d: groups {} must divide the input channels {} (input shape {}, "
                 "weight shape {})",
                 groups, C_in, shape_str(x.shape()), shape_str(w.shape()));
    MOXING_CHECK(w.size(0) == C_in,
                 "conv_transpose2d: input shape {} has {} channels but weight shape {} expects {}",
                 shape_str(x.shape()), C_in, shape_str(w.shape()), w.size(0));
    const int64_t C_out = w.size(1) * groups;
    MOXING_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == C_out),
                 "conv_transpose2d: bias shape {} does not match weight shape {} and groups {} "
                 "(expected [{}])",
                 b.defined() ? shape_str(b.shape()) : "", shape_str(w.shape()), groups, C_out);
    const int64_t H = xb.size(2), W = xb.size(3);
    const int64_t OH =
        (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (KH - 1) + output_padding[0] + 1;
    const int64_t OW =
        (W - 1) * stride[1] - 2 * padding[1] + dilation[1] * (KW - 1) + output_padding[1] + 1;
    MOXING_CHECK(OH > 0 && OW > 0,
                 "conv_transpose2d: output size {} is not positive (input shape {}, weight shape "
                 "{}, padding {})",
                 pair_str({OH, OW}), shape_str(x.shape()), shape_str(w.shape()), pair_str(padding));
    // the conv2d this op is the adjoint of: input (B,C_out,OH,OW) -> output (B,C_in,H,W)
    // with weight w read as (C_in, C_out/groups, KH, KW)
    const ConvParams p = conv_params(stride, padding, dilation, groups);
    Tensor out = conv_input_grad_raw(xb, w, p, {xb.size(0), C_out, OH, OW});
    if (b.defined()) {
      NoGradGuard no_grad;
      out = add(out, reshape(b.detach(), {1, C_out, 1, 1}));
    }
    if (autograd::any_requires_grad({xb, w, b})) {
      SavedTensor sx(w.requires_grad() ? xb : Tensor(), op);
      SavedTensor sw(xb.requires_grad() ? w : Tensor(), op);
      Shape x_shape = xb.shape(), w_shape = w.shape();
      const bool has_b = b.defined();
      autograd::record(op, {out}, {xb, w, b},
                       [sx, sw, p, x_shape, w_shape, has_b](const std::vector<Tensor>& g) {
                         Tensor gx, gw;
                         if (sw.defined()) gx = conv_forward_raw(g[0], sw.get(), {}, p, x_shape);
                         if (sx.defined()) gw = conv_weight_grad_raw(sx.get(), g[0], p, w_shape);
                         return std::vector<Tensor>{gx, gw, has_b ? bias_grad(g[0]) : Tensor()};
                       });
    }
    return out;
  });
}

namespace {

// Window of output o: [o stride - padding, o stride - padding + kernel) clipped to [0, size).
void fixed_windows(int64_t size, int64_t n_out, int64_t kernel, int64_t stride, int64_t padding,
                   std::vector<int64_t>& begin, std::vector<int64_t>& end) {
  for (int64_t o = 0; o < n_out; ++o) {
    int64_t s = o * stride - padding;
    begin.push_back(std::max<int64_t>(s, 0));
    end.push_back(std::min(s + kernel, size));
  }
}

// Windows of a kernel/stride/padding pool; checks the arguments against the input shape.
PoolWindows pool_windows(const char* op, const Tensor& x, const Shape& shown_shape, Size2 kernel,
                         Size2& stride, Size2 padding) {
  MOXING_CHECK(is_floating(x.dtype()), "{}: needs a floating-point tensor, got {}", op,
               dtype_name(x.dtype()));
  check_param(kernel, 1, op, "kernel");
  check_param(stride, 0, op, "stride");
  check_param(padding, 0, op, "padding");
  for (size_t i = 0; i < 2; ++i) {
    if (stride[i] == 0) stride[i] = kernel[i];
  }
  MOXING_CHECK(2 * padding[0] <= kernel[0] && 2 * padding[1] <= kernel[1],
               "{}: padding {} must be at most half the kernel {}", op, pair_str(padding),
               pair_str(kernel));
  const int64_t H = x.size(2), W = x.size(3);
  MOXING_CHECK(kernel[0] <= H + 2 * padding[0] && kernel[1] <= W + 2 * padding[1],
               "{}: kernel {} is larger than the padded input {} (input shape {}, padding {})", op,
               pair_str(kernel), pair_str({H + 2 * padding[0], W + 2 * padding[1]}),
               shape_str(shown_shape), pair_str(padding));
  PoolWindows win;
  fixed_windows(H, (H + 2 * padding[0] - kernel[0]) / stride[0] + 1, kernel[0], stride[0],
                padding[0], win.h_begin, win.h_end);
  fixed_windows(W, (W + 2 * padding[1] - kernel[1]) / stride[1] + 1, kernel[1], stride[1],
                padding[1], win.w_begin, win.w_end);
  return win;
}

Shape pooled_shape(const Tensor& x, const PoolWindows& win) {
  return {x.size(0), x.size(1), static_cast<int64_t>(win.h_begin.size()),
          static_cast<int64_t>(win.w_begin.size())};
}

// Average over each window of x (B,C,H,W); the backward spreads each gradient over its window.
Tensor avg_pool_windows(const char* op, const Tensor& x, const PoolWindows& win) {
  Tensor out = empty(pooled_shape(x, win), x.options());
  kernels::avg_pool2d_forward().get(x.device(), x.dtype())(contiguous(x.detach()), win, out);
  Shape x_shape = x.shape();
  autograd::record(op, {out}, {x}, [win, x_shape](const std::vector<Tensor>& g) {
    Tensor gx = empty(x_shape, g[0].options());
    kernels::avg_pool2d_backward().get(g[0].device(), g[0].dtype())(contiguous(g[0]), win, gx);
    return std::vector<Tensor>{gx};
  });
  return out;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  const char* op = "max_pool2d";
  return with_batch_dim(x, op, [&](const Tensor& xb) {
    PoolWindows win = pool_windows(op, xb, x.shape(), kernel, stride, padding);
    Tensor out = empty(pooled_shape(xb, win), xb.options());
    Tensor indices = empty(out.shape(), out.options().dtype(DType::i64));
    kernels::max_pool2d_forward().get(xb.device(), xb.dtype())(contiguous(xb.detach()), win, out,
                                                               indices);
    Shape x_shape = xb.shape();
    autograd::record(op, {out}, {xb}, [indices, x_shape](const std::vector<Tensor>& g) {
      Tensor gx = empty(x_shape, g[0].options());
      kernels::max_pool2d_backward().get(g[0].device(), g[0].dtype())(contiguous(g[0]), indices,
                                                                      gx);
      return std::vector<Tensor>{gx};
    });
    return out;
  });
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  const char* op = "avg_pool2d";
  return with_batch_dim(x, op, [&](const Tensor& xb) {
    PoolWindows win = pool_windows(op, xb, x.shape(), kernel, stride, padding);
    win.divisor = kernel[0] * kernel[1];  // padding counts (count_include_pad=True)
    return avg_pool_windows(op, xb, win);
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  const char* op = "adaptive_avg_pool2d";
  return with_batch_dim(x, op, [&](const Tensor& xb) {
    MOXING_CHECK(is_floating(xb.dtype()), "{}: needs a floating-point tensor, got {}", op,
                 dtype_name(xb.dtype()));
    check_param(output_size, 1, op, "output_size");
    MOXING_CHECK(xb.size(2) > 0 && xb.size(3) > 0, "{}: input shape {} has an empty image", op,
                 shape_str(x.shape()));
    PoolWindows win;
    const int64_t H = xb.size(2), W = xb.size(3), OH = output_size[0], OW = output_size[1];
    for (int64_t o = 0; o < OH; ++o) {
      win.h_begin.push_back(o * H / OH);
      win.h_end.push_back(((o + 1) * H + OH - 1) / OH);
    }
    for (int64_t o = 0; o < OW; ++o) {
      win.w_begin.push_back(o * W / OW);
      win.w_end.push_back(((o + 1) * W + OW - 1) / OW);
    }
    return avg_pool_windows(op, xb, win);
  });
}

}  // namespace moxing
