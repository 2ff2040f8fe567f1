// 2-D convolution, transposed convolution and pooling over (B,C,H,W) images, each
// differentiable. Every op also takes an unbatched (C,H,W) image and returns one.
// Pairs are (height, width), as torch's int-or-tuple arguments.
#pragma once

#include <array>
#include <cstdint>

#include "moxing/core/tensor.h"

namespace moxing {

using Size2 = std::array<int64_t, 2>;

/// x (B,C_in,H,W), w (C_out,C_in/groups,KH,KW), b (C_out) optional -> (B,C_out,OH,OW),
/// OH = (H + 2 padding - dilation (KH - 1) - 1) / stride + 1; matches
/// torch.nn.functional.conv2d.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), Size2 stride = {1, 1},
              Size2 padding = {0, 0}, Size2 dilation = {1, 1}, int64_t groups = 1);

/// The adjoint of conv2d: x (B,C_in,H,W), w (C_in,C_out/groups,KH,KW), b (C_out) optional
/// -> (B,C_out,OH,OW), OH = (H - 1) stride - 2 padding + dilation (KH - 1) + output_padding + 1;
/// matches torch.nn.functional.conv_transpose2d.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(),
                        Size2 stride = {1, 1}, Size2 padding = {0, 0},
                        Size2 output_padding = {0, 0}, int64_t groups = 1, Size2 dilation = {1, 1});

/// Max over each kernel window (stride 0 = kernel; padding counts as -inf, at most half the
/// kernel); matches torch.nn.functional.max_pool2d.
Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride = {0, 0}, Size2 padding = {0, 0});

/// Mean over each kernel window, zero padding included in the count (count_include_pad=True);
/// matches torch.nn.functional.avg_pool2d.
Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride = {0, 0}, Size2 padding = {0, 0});

/// Mean over windows [floor(i H / OH), ceil((i + 1) H / OH)) per output row i (same for
/// columns); matches torch.nn.functional.adaptive_avg_pool2d.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);

}  // namespace moxing
