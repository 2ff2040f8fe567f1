// BatchNorm1d and BatchNorm2d layers (torch.nn.BatchNorm1d / 2d): batch_norm with learned
// per-channel weight and bias and running statistics kept as buffers. Not SyncBatchNorm,
// not the lazy variants.
#pragma once

#include <optional>

#include "moxing/nn/module.h"

namespace moxing::nn {

/// The shared body of BatchNorm1d and BatchNorm2d (torch's _BatchNorm). Parameters weight (C)
/// = 1, bias (C) = 0 when affine; buffers running_mean (C) = 0, running_var (C) = 1 and
/// num_batches_tracked (i64 scalar) when track_running_stats. momentum nullopt uses the
/// cumulative average 1 / num_batches_tracked, as torch's momentum=None.
class BatchNorm : public UnaryModule {
 public:
  BatchNorm(int64_t num_features, double eps, std::optional<double> momentum, bool affine,
            bool track_running_stats);
  /// Training (or no running stats): normalize with batch statistics and update the running
  /// stats; eval: use the running stats.
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  /// Running stats back to mean 0, var 1, num_batches_tracked 0 (in place).
  void reset_running_stats();

  int64_t num_features;
  double eps;
  std::optional<double> momentum;
  bool affine, track_running_stats;
  Tensor weight, bias;                                    // (C) or undefined
  Tensor running_mean, running_var, num_batches_tracked;  // (C), (C), () or undefined

 protected:
  /// Throws when x has a rank the layer does not take.
  virtual void check_input_dim(const Tensor& x) const = 0;
};

/// Normalizes x (B,C) or (B,C,L) over B (and L) per channel. Matches torch.nn.BatchNorm1d.
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm1d"; }

 protected:
  void check_input_dim(const Tensor& x) const override;
};

/// Normalizes x (B,C,H,W) over B, H, W per channel. Matches torch.nn.BatchNorm2d.
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm2d"; }

 protected:
  void check_input_dim(const Tensor& x) const override;
};

}  // namespace moxing::nn
