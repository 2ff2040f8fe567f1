// Convolution and pooling kernels over contiguous (B,C,H,W) tensors. Sizes come from the
// tensors' shapes; the op has checked them. conv2d_backward_input is also the forward of
// conv_transpose2d, and conv2d_forward its input gradient.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// How a convolution walks its input: input row oh * stride_h - pad_h + kh * dil_h feeds
/// output row oh through kernel row kh (likewise for columns); channels split into groups.
struct ConvParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
};

/// x (B,C_in,H,W), w (C_out,C_in/G,KH,KW), b (C_out) or undefined -> out (B,C_out,OH,OW)
using Conv2dFn = void(const Tensor& x, const Tensor& w, const Tensor& b, const ConvParams& p,
                      Tensor& out);
/// gout (B,C_out,OH,OW), w (C_out,C_in/G,KH,KW) -> gx (B,C_in,H,W), overwritten
using Conv2dBackwardInputFn = void(const Tensor& gout, const Tensor& w, const ConvParams& p,
                                   Tensor& gx);
/// gout (B,C_out,OH,OW), x (B,C_in,H,W) -> gw (C_out,C_in/G,KH,KW), overwritten
using Conv2dBackwardWeightFn = void(const Tensor& gout, const Tensor& x, const ConvParams& p,
                                    Tensor& gw);

/// The input window of every output row and column, clipped to the input: output (oh, ow)
/// pools rows [h_begin[oh], h_end[oh]) and columns [w_begin[ow], w_end[ow]).
struct PoolWindows {
  std::vector<int64_t> h_begin, h_end, w_begin, w_end;
  int64_t divisor = 0;  // averages: 0 divides by each clipped window's size, else by this
};

/// x (B,C,H,W) -> out (B,C,OH,OW), indices (B,C,OH,OW) i64: argmax as h * W + w in its plane
using MaxPool2dFn = void(const Tensor& x, const PoolWindows& win, Tensor& out, Tensor& indices);
/// gout (B,C,OH,OW), indices as above -> gx (B,C,H,W), overwritten
using MaxPool2dBackwardFn = void(const Tensor& gout, const Tensor& indices, Tensor& gx);
/// x (B,C,H,W) -> out (B,C,OH,OW)
using AvgPool2dFn = void(const Tensor& x, const PoolWindows& win, Tensor& out);
/// gout (B,C,OH,OW) -> gx (B,C,H,W), overwritten
using AvgPool2dBackwardFn = void(const Tensor& gout, const PoolWindows& win, Tensor& gx);

MOXING_DECLARE_KERNEL(conv2d_forward, Conv2dFn);
MOXING_DECLARE_KERNEL(conv2d_backward_input, Conv2dBackwardInputFn);
MOXING_DECLARE_KERNEL(conv2d_backward_weight, Conv2dBackwardWeightFn);
MOXING_DECLARE_KERNEL(max_pool2d_forward, MaxPool2dFn);
MOXING_DECLARE_KERNEL(max_pool2d_backward, MaxPool2dBackwardFn);
MOXING_DECLARE_KERNEL(avg_pool2d_forward, AvgPool2dFn);
MOXING_DECLARE_KERNEL(avg_pool2d_backward, AvgPool2dBackwardFn);

}  // namespace moxing::kernels
