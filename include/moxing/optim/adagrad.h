// Adagrad with learning-rate decay and L2 weight decay; matches torch.optim.Adagrad
// (dense gradients only).
#pragma once

#include "moxing/optim/optimizer.h"

namespace moxing::optim {

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
  bool maximize = false;
  bool fused = true;  // one-pass CPU kernel for contiguous f32/f64 tensors

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("lr_decay", lr_decay);
    f("weight_decay", weight_decay);
    f("initial_accumulator_value", initial_accumulator_value);
    f("eps", eps);
    f("maximize", maximize);
    f("fused", fused);
  }
};

/// t += 1;  g = grad + weight_decay p;  clr = lr / (1 + (t - 1) lr_decay);
/// sum += g^2;  p -= clr g / (sqrt(sum) + eps).  State: "step", "sum" (starts at
/// initial_accumulator_value).
class Adagrad : public Optimizer {
 public:
  explicit Adagrad(std::vector<Tensor> params, const AdagradOptions& options = {});
  Adagrad(std::vector<ParamGroup> groups, const AdagradOptions& defaults = {});

 protected:
  void check_options(const Hyper& options) const override;
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad,
              std::map<std::string, Tensor>& state, int64_t& step) override;
};

}  // namespace moxing::optim
