// The basic torch.nn layers: Linear, Conv2d, ConvTranspose2d, pooling, Flatten, activations,
// Softmax, Dropout, Embedding, LayerNorm. Each holds its parameters as members (the same
// handles as in its registry), initializes them as PyTorch does, and calls the functional op
// in forward. Normalization layers with running statistics and attention live elsewhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "moxing/core/rng.h"
#include "moxing/nn/module.h"
#include "moxing/ops/conv.h"

namespace moxing::nn {

/// A (height, width) pair written as one int (3) or two ({3, 5}), as torch's int-or-tuple.
struct IntPair {
  IntPair(int64_t v) : h(v), w(v) {}  // NOLINT(google-explicit-constructor): 3 means {3, 3}
  IntPair(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  Size2 size2() const { return {h, w}; }
  int64_t h, w;
};

/// y = x W^T + b: x (..., in_features) -> y (..., out_features). weight (out, in) and bias
/// (out) ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)); matches nn.Linear.
class Linear : public UnaryModule {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
  int64_t in_features, out_features;
  Tensor weight, bias;
};

/// x (B,C_in,H,W) -> (B,C_out,OH,OW); weight (C_out, C_in/groups, KH, KW), bias (C_out),
/// both ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in/groups KH KW; matches nn.Conv2d
/// (padding_mode "zeros").
class Conv2d : public UnaryModule {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, IntPair kernel_size, IntPair stride = 1,
         IntPair padding = 0, IntPair dilation = 1, int64_t groups = 1, bool bias = true,
         Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  int64_t in_channels, out_channels, groups;
  Size2 kernel_size, stride, padding, dilation;
  Tensor weight, bias;
};

/// x (B,C_in,H,W) -> (B,C_out,OH,OW); weight (C_in, C_out/groups, KH, KW), bias (C_out),
/// initialized with fan_in = C_out/groups KH KW as torch; matches nn.ConvTranspose2d.
class ConvTranspose2d : public UnaryModule {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, IntPair kernel_size,
                  IntPair stride = 1, IntPair padding = 0, IntPair output_padding = 0,
                  int64_t groups = 1, bool bias = true, IntPair dilation = 1,
                  Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ConvTranspose2d"; }
  std::string extra_repr() const override;
  int64_t in_channels, out_channels, groups;
  Size2 kernel_size, stride, padding, output_padding, dilation;
  Tensor weight, bias;
};

/// Max over windows (stride defaults to the kernel); matches nn.MaxPool2d.
class MaxPool2d : public UnaryModule {
 public:
  explicit MaxPool2d(IntPair kernel_size, std::optional<IntPair> stride = std::nullopt,
                     IntPair padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MaxPool2d"; }
  std::string extra_repr() const override;
  Size2 kernel_size, stride, padding;
};

/// Mean over windows, zero padding counted; matches nn.AvgPool2d.
class AvgPool2d : public UnaryModule {
 public:
  explicit AvgPool2d(IntPair kernel_size, std::optional<IntPair> stride = std::nullopt,
                     IntPair padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AvgPool2d"; }
  std::string extra_repr() const override;
  Size2 kernel_size, stride, padding;
};

/// (B,C,H,W) -> (B,C,OH,OW) by averaging adaptive windows; matches nn.AdaptiveAvgPool2d.
class AdaptiveAvgPool2d : public UnaryModule {
 public:
  explicit AdaptiveAvgPool2d(IntPair output_size);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override;
  Size2 output_size;
};

/// Merges dims start_dim..end_dim; matches nn.Flatten (start_dim 1: the batch dim is kept).
class Flatten : public UnaryModule {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Flatten"; }
  std::string extra_repr() const override;
  int64_t start_dim, end_dim;
};

class ReLU : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU"; }
};

class LeakyReLU : public UnaryModule {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override;
  double negative_slope;
};

/// approximate "none" (erf) or "tanh"; matches nn.GELU.
class GELU : public UnaryModule {
 public:
  explicit GELU(std::string approximate = "none");
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GELU"; }
  std::string extra_repr() const override;
  std::string approximate;
};

class SiLU : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "SiLU"; }
};

class Tanh : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Tanh"; }
};

class Sigmoid : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sigmoid"; }
};

/// softmax along dim; matches nn.Softmax.
class Softmax : public UnaryModule {
 public:
  explicit Softmax(int64_t dim) : dim(dim) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softmax"; }
  std::string extra_repr() const override;
  int64_t dim;
};

/// Zeroes each element with probability p and scales the rest by 1/(1-p) in training mode;
/// the identity in eval mode. gen defaults to default_generator(); matches nn.Dropout.
class Dropout : public UnaryModule {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override;
  double p;
  Generator* gen;
};

/// indices i64 (...) -> (..., embedding_dim); weight (num_embeddings, embedding_dim) ~ N(0, 1)
/// with the padding_idx row zero (it gets no gradient); a negative padding_idx counts from
/// the end. Matches nn.Embedding.
class Embedding : public UnaryModule {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim,
            std::optional<int64_t> padding_idx = std::nullopt, Generator* gen = nullptr);
  Tensor forward(const Tensor& indices) override;
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;
  Tensor weight;
};

/// Normalizes over the trailing normalized_shape dims; weight ones, bias zeros when
/// elementwise_affine; matches nn.LayerNorm.
class LayerNorm : public UnaryModule {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                     bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;
  Shape normalized_shape;
  double eps;
  bool elementwise_affine;
  Tensor weight, bias;
};

}  // namespace moxing::nn
