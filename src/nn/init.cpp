// torch.nn.init equivalents: fan and gain arithmetic, then one draw copied in place. On a meta
// tensor each is a no-op that draws nothing, so a model built on meta costs no time or memory.
#include "moxing/nn/init.h"

#include <cmath>
#include <vector>

#include "moxing/autograd/node.h"
#include "moxing/ops/random.h"

namespace moxing::nn::init {

namespace {

void check_floating(const Tensor& t, const char* fn) {
  MOXING_CHECK(t.defined(), "{}: the tensor is undefined", fn);
  MOXING_CHECK(is_floating(t.dtype()), "{}: expected a floating tensor, got {}", fn,
               dtype_name(t.dtype()));
}

// Writes values (any dtype) into t without recording history.
Tensor assign(Tensor t, const Tensor& values) {
  NoGradGuard guard;
  t.copy_(values.to(t.dtype()));
  return t;
}

int64_t fan(const Tensor& t, const std::string& mode, const char* fn) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  if (mode == "fan_in") return fan_in;
  if (mode == "fan_out") return fan_out;
  fail("{}: mode must be \"fan_in\" or \"fan_out\", got \"{}\"", fn, mode);
}

}  // namespace

double calculate_gain(const std::string& nonlinearity, std::optional<double> param) {
  const std::string& n = nonlinearity;
  if (n == "linear" || n == "conv1d" || n == "conv2d" || n == "conv3d" || n == "conv_transpose1d" ||
      n == "conv_transpose2d" || n == "conv_transpose3d" || n == "sigmoid") {
    return 1.0;
  }
  if (n == "tanh") return 5.0 / 3.0;
  if (n == "relu") return std::sqrt(2.0);
  if (n == "leaky_relu") {
    double slope = param.value_or(0.01);
    return std::sqrt(2.0 / (1.0 + slope * slope));
  }
  if (n == "selu") return 3.0 / 4.0;
  fail("calculate_gain: unsupported nonlinearity \"{}\"", n);
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  MOXING_CHECK(t.dim() >= 2,
               "calculate_fan_in_and_fan_out: fan in and fan out cannot be computed for a "
               "tensor of shape {} (fewer than 2 dims)",
               shape_str(t.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor uniform_(Tensor t, double a, double b, Generator* gen) {
  check_floating(t, "uniform_");
  if (t.is_meta()) return t;
  return assign(t, uniform(t.shape(), a, b, TensorOptions(DType::f64).device(kCPU), gen));
}

Tensor normal_(Tensor t, double mean, double std, Generator* gen) {
  check_floating(t, "normal_");
  if (t.is_meta()) return t;
  return assign(t, normal(t.shape(), mean, std, TensorOptions(DType::f64).device(kCPU), gen));
}

Tensor constant_(Tensor t, double value) {
  MOXING_CHECK(t.defined(), "constant_: the tensor is undefined");
  if (t.is_meta()) return t;
  NoGradGuard guard;
  t.fill_(value);
  return t;
}

Tensor zeros_(Tensor t) { return constant_(t, 0.0); }
Tensor ones_(Tensor t) { return constant_(t, 1.0); }

Tensor xavier_uniform_(Tensor t, double gain, Generator* gen) {
  check_floating(t, "xavier_uniform_");
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform_(t, -bound, bound, gen);
}

Tensor xavier_normal_(Tensor t, double gain, Generator* gen) {
  check_floating(t, "xavier_normal_");
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

Tensor kaiming_uniform_(Tensor t, double a, const std::string& mode,
                        const std::string& nonlinearity, Generator* gen) {
  check_floating(t, "kaiming_uniform_");
  int64_t f = fan(t, mode, "kaiming_uniform_");
  double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / static_cast<double>(f));
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(Tensor t, double a, const std::string& mode, const std::string& nonlinearity,
                       Generator* gen) {
  check_floating(t, "kaiming_normal_");
  int64_t f = fan(t, mode, "kaiming_normal_");
  return normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(f)), gen);
}

Tensor trunc_normal_(Tensor t, double mean, double std, double a, double b, Generator* gen) {
  check_floating(t, "trunc_normal_");
  MOXING_CHECK(a < b && std > 0.0, "trunc_normal_: need a < b and std > 0, got a={} b={} std={}", a,
               b, std);
  if (t.is_meta()) return t;
  // redrawing the values outside [a, b] samples the truncated distribution exactly; the
  // interval must keep a reasonable mass for this to end quickly, as torch's warning asks
  int64_t n = t.numel();
  std::vector<double> out(static_cast<size_t>(n));
  std::vector<size_t> todo(out.size());
  for (size_t i = 0; i < todo.size(); ++i) todo[i] = i;
  for (int round = 0; !todo.empty(); ++round) {
    MOXING_CHECK(round < 1000, "trunc_normal_: [{}, {}] holds too little of N({}, {}^2)", a, b,
                 mean, std);
    std::vector<double> draw = normal({static_cast<int64_t>(todo.size())}, mean, std,
                                      TensorOptions(DType::f64).device(kCPU), gen)
                                   .to_vector<double>();
    std::vector<size_t> again;
    for (size_t k = 0; k < todo.size(); ++k) {
      if (draw[k] >= a && draw[k] <= b) {
        out[todo[k]] = draw[k];
      } else {
        again.push_back(todo[k]);
      }
    }
    todo = std::move(again);
  }
  return assign(t, from_vector(out, {n}).reshape(t.shape()));
}

}  // namespace moxing::nn::init
