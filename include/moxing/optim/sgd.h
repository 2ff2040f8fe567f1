// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight
// decay; matches torch.optim.SGD.
#pragma once

#include "moxing/optim/optimizer.h"

namespace moxing::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
  bool fused = true;  // one-pass CPU kernel for contiguous f32/f64 tensors

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("momentum", momentum);
    f("dampening", dampening);
    f("weight_decay", weight_decay);
    f("nesterov", nesterov);
    f("maximize", maximize);
    f("fused", fused);
  }
};

/// g = grad + weight_decay p;  buf = momentum buf + (1 - dampening) g  (buf = g at step 1);
/// g = nesterov ? g + momentum buf : buf;  p -= lr g.  State: "momentum_buffer".
class SGD : public Optimizer {
 public:
  explicit SGD(std::vector<Tensor> params, const SGDOptions& options = {});
  /// Groups override `defaults` key by key: SGD({{w, {{"weight_decay", 1e-4}}}, {b, {}}}, {.lr =
  /// 0.1}).
  SGD(std::vector<ParamGroup> groups, const SGDOptions& defaults = {});

 protected:
  void check_options(const Hyper& options) const override;
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad,
              std::map<std::string, Tensor>& state, int64_t& step) override;
};

}  // namespace moxing::optim
