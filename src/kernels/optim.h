// Fused optimizer-update kernel tables: one pass over a parameter and its state instead of
// one pass per tensor op. The composite updates in src/optim are their reference.
#pragma once

#include "kernels/registry.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels {

/// One Adam/AdamW step's scalars; step is t after its increment (1 on the first step).
struct AdamStepArgs {
  double lr = 0.0;
  double beta1 = 0.0;
  double beta2 = 0.0;
  double eps = 0.0;
  double weight_decay = 0.0;
  double step = 1.0;
  bool amsgrad = false;
  bool maximize = false;
  bool decoupled_weight_decay = false;
};

/// param, grad, exp_avg, exp_avg_sq (and max_exp_avg_sq when amsgrad, else undefined): all
/// contiguous with N elements; param and the state are updated in place.
using AdamStepFn = void(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                        Tensor& max_exp_avg_sq, const AdamStepArgs& args);

MOXING_DECLARE_KERNEL(adam_step, AdamStepFn);

/// torch's lerp: a + w (b - a) for |w| < 0.5, else b - (b - a)(1 - w), exact at both ends.
template <class T>
inline T lerp_scalar(T a, T b, T w) {
  return (w < T(0.5) && w > T(-0.5)) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

}  // namespace moxing::kernels
