// BatchNorm1d / BatchNorm2d: parameters, running-stat buffers, and the momentum rule of
// torch's _BatchNorm.forward around the batch_norm op.
#include "moxing/nn/batchnorm.h"

#include <fmt/format.h>

#include "moxing/autograd/node.h"
#include "moxing/ops/batch_norm.h"

namespace moxing::nn {

BatchNorm::BatchNorm(int64_t num_features, double eps, std::optional<double> momentum, bool affine,
                     bool track_running_stats)
    : num_features(num_features),
      eps(eps),
      momentum(momentum),
      affine(affine),
      track_running_stats(track_running_stats) {
  MOXING_CHECK(num_features > 0, "BatchNorm: num_features must be positive, got {}", num_features);
  if (affine) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({num_features}));
    running_var = register_buffer("running_var", ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::i64));
  }
}

void BatchNorm::reset_running_stats() {
  if (!track_running_stats) return;
  NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1.0);
  num_batches_tracked.zero_();
}

Tensor BatchNorm::forward(const Tensor& x) {
  check_input_dim(x);
  MOXING_CHECK(x.size(1) == num_features,
               "{}: input of shape {} has {} channels, expected num_features = {}", type_name(),
               shape_str(x.shape()), x.size(1), num_features);
  double factor = momentum.value_or(0.0);
  if (training_ && track_running_stats) {
    NoGradGuard no_grad;
    // counted where the buffer lives (no host read, so meta estimates run it too); only
    // momentum=None reads the count
    num_batches_tracked.add_(ones_like(num_batches_tracked));
    if (!momentum) factor = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
  }
  // without running stats the batch statistics are used in eval mode too
  bool use_batch_stats = training_ || !track_running_stats;
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, factor, eps);
}

std::string BatchNorm::extra_repr() const {
  return fmt::format("{}, eps={}, momentum={}, affine={}, track_running_stats={}", num_features,
                     eps, momentum ? fmt::format("{}", *momentum) : "None",
                     affine ? "True" : "False", track_running_stats ? "True" : "False");
}

void BatchNorm1d::check_input_dim(const Tensor& x) const {
  MOXING_CHECK(x.dim() == 2 || x.dim() == 3, "BatchNorm1d: expected 2D or 3D input, got shape {}",
               shape_str(x.shape()));
}

void BatchNorm2d::check_input_dim(const Tensor& x) const {
  MOXING_CHECK(x.dim() == 4, "BatchNorm2d: expected 4D input (B,C,H,W), got shape {}",
               shape_str(x.shape()));
}

}  // namespace moxing::nn
