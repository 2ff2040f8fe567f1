// Parameter initializers matching torch.nn.init: each fills a tensor in place (no autograd)
// and returns the same handle. The distributions match torch; the random streams do not
// (moxing draws from its own Philox generator; gen defaults to default_generator()). On a meta
// tensor each one is a no-op that draws nothing.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"

namespace moxing::nn::init {

/// The recommended gain for a nonlinearity: linear/conv*/sigmoid 1, tanh 5/3, relu sqrt(2),
/// leaky_relu sqrt(2 / (1 + slope^2)) (slope defaults to 0.01), selu 3/4;
/// matches torch.nn.init.calculate_gain.
double calculate_gain(const std::string& nonlinearity, std::optional<double> param = std::nullopt);
/// (fan_in, fan_out) of a weight of at least 2 dims: (size(1), size(0)) times the receptive
/// field (the product of the dims after the first two), e.g. a conv weight (C_out,C_in,KH,KW)
/// gives (C_in KH KW, C_out KH KW).
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);

/// U(a, b).
Tensor uniform_(Tensor t, double a = 0.0, double b = 1.0, Generator* gen = nullptr);
/// N(mean, std^2).
Tensor normal_(Tensor t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
Tensor constant_(Tensor t, double value);
Tensor zeros_(Tensor t);
Tensor ones_(Tensor t);
/// U(-bound, bound), bound = gain sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform_(Tensor t, double gain = 1.0, Generator* gen = nullptr);
/// N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal_(Tensor t, double gain = 1.0, Generator* gen = nullptr);
/// U(-bound, bound), bound = gain(nonlinearity, a) sqrt(3 / fan); mode "fan_in" or "fan_out".
Tensor kaiming_uniform_(Tensor t, double a = 0.0, const std::string& mode = "fan_in",
                        const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
/// N(0, std^2), std = gain(nonlinearity, a) / sqrt(fan).
Tensor kaiming_normal_(Tensor t, double a = 0.0, const std::string& mode = "fan_in",
                       const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
/// N(mean, std^2) restricted to [a, b] (values outside are redrawn).
Tensor trunc_normal_(Tensor t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                     Generator* gen = nullptr);

}  // namespace moxing::nn::init
