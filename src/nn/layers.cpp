// Basic layers: constructors register and initialize parameters as PyTorch does; forward
// calls the functional op.
#include "moxing/nn/layers.h"

#include <cmath>

#include "moxing/autograd/node.h"
#include "moxing/nn/init.h"
#include "moxing/ops/dropout.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/embedding.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/norm.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"

namespace moxing::nn {

namespace {

std::string pair_str(Size2 p) { return fmt::format("({}, {})", p[0], p[1]); }

// torch's reset_parameters for Linear / Conv: kaiming_uniform_(a = sqrt(5)) gives
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight; the bias uses the same bound.
void reset_linear_like(Tensor& weight, Tensor& bias, Generator* gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), "fan_in", "leaky_relu", gen);
  if (bias.defined()) {
    int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound, gen);
  }
}

void check_positive(int64_t v, const char* layer, const char* what) {
  MOXING_CHECK(v > 0, "{}: {} must be positive, got {}", layer, what, v);
}

}  // namespace

// ---- Linear

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias, Generator* gen)
    : in_features(in_features), out_features(out_features) {
  MOXING_CHECK(in_features >= 0 && out_features >= 0,
               "Linear: in_features and out_features must be >= 0, got {} and {}", in_features,
               out_features);
  weight = register_parameter("weight", empty({out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", empty({out_features}));
  reset_linear_like(weight, bias, gen);
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::extra_repr() const {
  return fmt::format("in_features={}, out_features={}, bias={}", in_features, out_features,
                     bias.defined() ? "True" : "False");
}

// ---- Conv2d

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, IntPair kernel, IntPair stride_,
               IntPair padding_, IntPair dilation_, int64_t groups, bool with_bias, Generator* gen)
    : in_channels(in_channels),
      out_channels(out_channels),
      groups(groups),
      kernel_size(kernel.size2()),
      stride(stride_.size2()),
      padding(padding_.size2()),
      dilation(dilation_.size2()) {
  check_positive(in_channels, "Conv2d", "in_channels");
  check_positive(out_channels, "Conv2d", "out_channels");
  check_positive(groups, "Conv2d", "groups");
  MOXING_CHECK(in_channels % groups == 0 && out_channels % groups == 0,
               "Conv2d: in_channels {} and out_channels {} must be divisible by groups {}",
               in_channels, out_channels, groups);
  weight = register_parameter(
      "weight", empty({out_channels, in_channels / groups, kernel_size[0], kernel_size[1]}));
  if (with_bias) bias = register_parameter("bias", empty({out_channels}));
  reset_linear_like(weight, bias, gen);
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, stride, padding, dilation, groups);
}

std::string Conv2d::extra_repr() const {
  std::string s = fmt::format("{}, {}, kernel_size={}, stride={}", in_channels, out_channels,
                              pair_str(kernel_size), pair_str(stride));
  if (padding != Size2{0, 0}) s += ", padding=" + pair_str(padding);
  if (dilation != Size2{1, 1}) s += ", dilation=" + pair_str(dilation);
  if (groups != 1) s += fmt::format(", groups={}", groups);
  if (!bias.defined()) s += ", bias=False";
  return s;
}

// ---- ConvTranspose2d

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, IntPair kernel,
                                 IntPair stride_, IntPair padding_, IntPair output_padding_,
                                 int64_t groups, bool with_bias, IntPair dilation_, Generator* gen)
    : in_channels(in_channels),
      out_channels(out_channels),
      groups(groups),
      kernel_size(kernel.size2()),
      stride(stride_.size2()),
      padding(padding_.size2()),
      output_padding(output_padding_.size2()),
      dilation(dilation_.size2()) {
  check_positive(in_channels, "ConvTranspose2d", "in_channels");
  check_positive(out_channels, "ConvTranspose2d", "out_channels");
  check_positive(groups, "ConvTranspose2d", "groups");
  MOXING_CHECK(in_channels % groups == 0 && out_channels % groups == 0,
               "ConvTranspose2d: in_channels {} and out_channels {} must be divisible by groups {}",
               in_channels, out_channels, groups);
  weight = register_parameter(
      "weight", empty({in_channels, out_channels / groups, kernel_size[0], kernel_size[1]}));
  if (with_bias) bias = register_parameter("bias", empty({out_channels}));
  reset_linear_like(weight, bias, gen);
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation);
}

std::string ConvTranspose2d::extra_repr() const {
  std::string s = fmt::format("{}, {}, kernel_size={}, stride={}", in_channels, out_channels,
                              pair_str(kernel_size), pair_str(stride));
  if (padding != Size2{0, 0}) s += ", padding=" + pair_str(padding);
  if (output_padding != Size2{0, 0}) s += ", output_padding=" + pair_str(output_padding);
  if (dilation != Size2{1, 1}) s += ", dilation=" + pair_str(dilation);
  if (groups != 1) s += fmt::format(", groups={}", groups);
  if (!bias.defined()) s += ", bias=False";
  return s;
}

// ---- pooling

MaxPool2d::MaxPool2d(IntPair kernel, std::optional<IntPair> stride_, IntPair padding_)
    : kernel_size(kernel.size2()),
      stride(stride_ ? stride_->size2() : kernel.size2()),
      padding(padding_.size2()) {}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_size, stride, padding); }

std::string MaxPool2d::extra_repr() const {
  return fmt::format("kernel_size={}, stride={}, padding={}", pair_str(kernel_size),
                     pair_str(stride), pair_str(padding));
}

AvgPool2d::AvgPool2d(IntPair kernel, std::optional<IntPair> stride_, IntPair padding_)
    : kernel_size(kernel.size2()),
      stride(stride_ ? stride_->size2() : kernel.size2()),
      padding(padding_.size2()) {}

Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, kernel_size, stride, padding); }

std::string AvgPool2d::extra_repr() const {
  return fmt::format("kernel_size={}, stride={}, padding={}", pair_str(kernel_size),
                     pair_str(stride), pair_str(padding));
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(IntPair output_size_) : output_size(output_size_.size2()) {}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size); }

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + pair_str(output_size); }

// ---- Flatten and activations

Flatten::Flatten(int64_t start_dim, int64_t end_dim) : start_dim(start_dim), end_dim(end_dim) {}

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_dim, end_dim); }

std::string Flatten::extra_repr() const {
  return fmt::format("start_dim={}, end_dim={}", start_dim, end_dim);
}

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, negative_slope); }

std::string LeakyReLU::extra_repr() const {
  return fmt::format("negative_slope={}", negative_slope);
}

GELU::GELU(std::string approximate_) : approximate(std::move(approximate_)) {
  MOXING_CHECK(approximate == "none" || approximate == "tanh",
               "GELU: approximate must be \"none\" or \"tanh\", got \"{}\"", approximate);
}

Tensor GELU::forward(const Tensor& x) { return gelu(x, approximate); }

std::string GELU::extra_repr() const { return "approximate='" + approximate + "'"; }

Tensor SiLU::forward(const Tensor& x) { return silu(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

Tensor Softmax::forward(const Tensor& x) { return softmax(x, dim); }

std::string Softmax::extra_repr() const { return fmt::format("dim={}", dim); }

Dropout::Dropout(double p, Generator* gen) : p(p), gen(gen) {
  MOXING_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got {}", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training(), gen); }

std::string Dropout::extra_repr() const { return fmt::format("p={}", p); }

// ---- Embedding

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim,
                     std::optional<int64_t> padding_idx_, Generator* gen)
    : num_embeddings(num_embeddings), embedding_dim(embedding_dim) {
  check_positive(num_embeddings, "Embedding", "num_embeddings");
  check_positive(embedding_dim, "Embedding", "embedding_dim");
  if (padding_idx_) {
    int64_t p = *padding_idx_;
    MOXING_CHECK(p >= -num_embeddings && p < num_embeddings,
                 "Embedding: padding_idx {} is out of range for {} embeddings", p, num_embeddings);
    padding_idx = p < 0 ? p + num_embeddings : p;
  }
  weight = register_parameter("weight", empty({num_embeddings, embedding_dim}));
  init::normal_(weight, 0.0, 1.0, gen);
  if (padding_idx) {
    NoGradGuard guard;
    weight.select(0, *padding_idx).zero_();
  }
}

Tensor Embedding::forward(const Tensor& indices) {
  return embedding(weight, indices, padding_idx.value_or(-1));
}

std::string Embedding::extra_repr() const {
  std::string s = fmt::format("{}, {}", num_embeddings, embedding_dim);
  if (padding_idx) s += fmt::format(", padding_idx={}", *padding_idx);
  return s;
}

// ---- LayerNorm

LayerNorm::LayerNorm(Shape normalized_shape_, double eps, bool elementwise_affine, bool with_bias)
    : normalized_shape(std::move(normalized_shape_)),
      eps(eps),
      elementwise_affine(elementwise_affine) {
  MOXING_CHECK(!normalized_shape.empty(), "LayerNorm: normalized_shape is empty");
  if (elementwise_affine) {
    weight = register_parameter("weight", ones(normalized_shape));
    if (with_bias) bias = register_parameter("bias", zeros(normalized_shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  return layer_norm(x, normalized_shape, weight, bias, eps);
}

std::string LayerNorm::extra_repr() const {
  std::string s = "(";
  for (size_t i = 0; i < normalized_shape.size(); ++i) {
    s += fmt::format("{}{}", i ? ", " : "", normalized_shape[i]);
  }
  s += normalized_shape.size() == 1 ? ",)" : ")";
  return fmt::format("{}, eps={}, elementwise_affine={}", s, eps,
                     elementwise_affine ? "True" : "False");
}

}  // namespace moxing::nn
