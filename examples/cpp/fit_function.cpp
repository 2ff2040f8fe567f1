// Fits y = sin(2x) + 0.3x on [-3, 3] with a 1-64-64-1 tanh MLP trained by Adam, written
// directly against moxing's tensors and autograd (the nn/optim layers come later).
// Usage: example_fit_function [steps]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "moxing/moxing.h"

using namespace moxing;

namespace {

Tensor target_fn(const Tensor& x) { return sin(x * 2.0) + x * 0.3; }

// PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
Tensor init_param(const Shape& shape, int64_t fan_in) {
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return uniform(shape, -bound, bound).requires_grad_();
}

struct Adam {
  std::vector<Tensor> params, m, v;
  double lr = 3e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int64_t t = 0;
  explicit Adam(std::vector<Tensor> ps) : params(std::move(ps)) {
    for (auto& p : params) {
      m.push_back(zeros_like(p));
      v.push_back(zeros_like(p));
    }
  }
  void step() {
    NoGradGuard no_grad;
    ++t;
    double c1 = 1.0 - std::pow(b1, static_cast<double>(t));
    double c2 = 1.0 - std::pow(b2, static_cast<double>(t));
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = params[i].grad();
      m[i].mul_(b1).add_(g, 1.0 - b1);
      v[i].mul_(b2).add_(g * g, 1.0 - b2);
      Tensor update = (m[i] / c1) / (sqrt(v[i] / c2) + eps);
      params[i].add_(update, -lr);
      params[i].zero_grad();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  int steps = argc > 1 ? std::atoi(argv[1]) : 1500;
  if (steps <= 0) {
    std::fprintf(stderr, "usage: example_fit_function [steps > 0]\n");
    return 2;
  }
  manual_seed(0);
  const int64_t n = 256, hidden = 64;
  Tensor x = linspace(-3.0, 3.0, n).reshape({n, 1});
  Tensor y = target_fn(x);

  Tensor w1 = init_param({hidden, 1}, 1), b1 = init_param({hidden}, 1);
  Tensor w2 = init_param({hidden, hidden}, hidden), b2 = init_param({hidden}, hidden);
  Tensor w3 = init_param({1, hidden}, hidden), b3 = init_param({1}, hidden);
  auto model = [&](const Tensor& in) {
    Tensor h = tanh(linear(in, w1, b1));
    h = tanh(linear(h, w2, b2));
    return linear(h, w3, b3);
  };
  Adam opt({w1, b1, w2, b2, w3, b3});

  std::printf("fitting y = sin(2x) + 0.3x with a 1-64-64-1 MLP (%d Adam steps, %d threads)\n",
              steps, num_threads());
  double first = 0, last = 0;
  for (int step = 1; step <= steps; ++step) {
    Tensor loss = mse_loss(model(x), y);
    loss.backward();
    opt.step();
    last = loss.item<double>();
    if (step == 1) first = last;
    if (step == 1 || step % (steps / 10 > 0 ? steps / 10 : 1) == 0) {
      std::printf("step %5d  loss %.6f\n", step, last);
    }
  }

  // use the trained model on points between the training grid
  NoGradGuard no_grad;
  Tensor xt = from_vector<float>({-2.71f, -1.33f, 0.05f, 0.77f, 2.49f}, {5, 1});
  Tensor pred = model(xt), truth = target_fn(xt);
  std::printf("\n     x   predicted     true\n");
  auto px = xt.to_vector<float>(), pp = pred.to_vector<float>(), pt = truth.to_vector<float>();
  for (size_t i = 0; i < px.size(); ++i) {
    std::printf("%6.2f  %10.4f  %7.4f\n", px[i], pp[i], pt[i]);
  }
  double test_mse = mse_loss(pred, truth).item<double>();
  std::printf("\nloss %.6f -> %.6f; mse on unseen points %.6f\n", first, last, test_mse);
  return last < first * 0.05 ? 0 : 1;
}
