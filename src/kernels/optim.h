// Fused optimizer-update kernel tables: one pass over a parameter and its state instead of
// one pass per tensor op. The composite updates in src/optim are their reference.
#pragma once

#include <initializer_list>

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

struct SgdStepArgs {
  double lr = 0.0;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
  bool first_step = false;  // the momentum buffer starts as the gradient
};

/// param, grad and momentum_buffer (undefined when momentum is 0): contiguous, N elements.
using SgdStepFn = void(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                       const SgdStepArgs& args);

MOXING_DECLARE_KERNEL(sgd_step, SgdStepFn);

struct RmspropStepArgs {
  double lr = 0.0;
  double alpha = 0.0;
  double eps = 0.0;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
  bool maximize = false;
};

/// param, grad, square_avg, grad_avg (undefined unless centered), momentum_buffer (undefined
/// unless momentum > 0): contiguous, N elements.
using RmspropStepFn = void(Tensor& param, const Tensor& grad, Tensor& square_avg, Tensor& grad_avg,
                           Tensor& momentum_buffer, const RmspropStepArgs& args);

MOXING_DECLARE_KERNEL(rmsprop_step, RmspropStepFn);

struct AdagradStepArgs {
  double clr = 0.0;  // lr / (1 + (t - 1) lr_decay)
  double weight_decay = 0.0;
  double eps = 0.0;
  bool maximize = false;
};

/// param, grad, sum: contiguous, N elements.
using AdagradStepFn = void(Tensor& param, const Tensor& grad, Tensor& sum,
                           const AdagradStepArgs& args);

MOXING_DECLARE_KERNEL(adagrad_step, AdagradStepFn);

/// True when every defined tensor is contiguous, as the fused kernels require.
inline bool all_contiguous(std::initializer_list<Tensor> tensors) {
  for (const Tensor& t : tensors) {
    if (t.defined() && !t.is_contiguous()) return false;
  }
  return true;
}

/// torch's lerp: a + w (b - a) for |w| < 0.5, else b - (b - a)(1 - w), exact at both ends.
template <class T>
inline T lerp_scalar(T a, T b, T w) {
  return (w < T(0.5) && w > T(-0.5)) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

}  // namespace moxing::kernels
