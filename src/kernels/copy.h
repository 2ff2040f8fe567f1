// Strided copy with dtype conversion: dst (any strides) <- src (same shape, any strides).
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

using CopyFn = void(const Tensor& dst, const Tensor& src);
/// keyed by the dtype of dst; handles every src dtype
MOXING_DECLARE_KERNEL(copy_forward, CopyFn);

}  // namespace moxing::kernels
