// Gradient clipping over a list of parameters, in place on their .grad; matches
// torch.nn.utils.clip_grad_norm_ and clip_grad_value_. Parameters without a gradient are
// skipped.
#pragma once

#include <limits>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing::optim {

/// Scales all gradients by min(1, max_norm / (total_norm + 1e-6)), where total_norm is the
/// norm_type-norm of the per-tensor norms (norm_type > 0, or infinity for the max |g|).
/// Returns total_norm (0 when no parameter has a gradient); with error_if_nonfinite, a NaN
/// or infinite total norm is an error and nothing is scaled.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element to [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

inline constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace moxing::optim
