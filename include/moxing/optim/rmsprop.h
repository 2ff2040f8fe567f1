// RMSprop with momentum, the centered variant and L2 weight decay; matches
// torch.optim.RMSprop.
#pragma once

#include "moxing/optim/optimizer.h"

namespace moxing::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
  bool maximize = false;
  bool fused = true;  // one-pass CPU kernel for contiguous f32/f64 tensors

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("alpha", alpha);
    f("eps", eps);
    f("weight_decay", weight_decay);
    f("momentum", momentum);
    f("centered", centered);
    f("maximize", maximize);
    f("fused", fused);
  }
};

/// g = grad + weight_decay p;  v = alpha v + (1 - alpha) g^2;
/// centered: ga = alpha ga + (1 - alpha) g, avg = sqrt(v - ga^2) + eps, else sqrt(v) + eps;
/// momentum > 0: buf = momentum buf + g / avg, p -= lr buf;  else p -= lr g / avg.
/// State: "step", "square_avg", "momentum_buffer" (momentum > 0), "grad_avg" (centered).
class RMSprop : public Optimizer {
 public:
  explicit RMSprop(std::vector<Tensor> params, const RMSpropOptions& options = {});
  RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& defaults = {});

 protected:
  void check_options(const Hyper& options) const override;
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad,
              std::map<std::string, Tensor>& state, int64_t& step) override;
};

}  // namespace moxing::optim
