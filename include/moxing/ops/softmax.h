// softmax and log_softmax along one dim, computed stably (the row max is subtracted first).
// Both are primitives with their own kernels; neither supports double backward.
#pragma once

#include "moxing/core/tensor.h"

namespace moxing {

/// exp(x - max) / sum(exp(x - max)) along dim, as torch.softmax.
Tensor softmax(const Tensor& x, int64_t dim);
/// x - max - log(sum(exp(x - max))) along dim, as torch.log_softmax.
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace moxing
