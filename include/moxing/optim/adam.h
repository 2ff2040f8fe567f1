// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), with
// amsgrad; match torch.optim.Adam and torch.optim.AdamW. A fused CPU kernel does the
// whole update in one pass over f32/f64 contiguous tensors ("fused", on by default); the
// composite path written with tensor ops is the reference it is tested against.
#pragma once

#include "moxing/optim/optimizer.h"

namespace moxing::optim {

/// The options of Adam and AdamW, which differ only in the weight_decay default (torch's 0 for
/// Adam, 1e-2 for AdamW).
template <class Defaults>
struct AdamFamilyOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = Defaults::weight_decay;
  bool amsgrad = false;
  bool maximize = false;
  bool fused = true;  // one-pass CPU kernel for contiguous f32/f64 tensors

  template <class F>
  void visit(F&& f) {
    f("lr", lr);
    f("beta1", beta1);
    f("beta2", beta2);
    f("eps", eps);
    f("weight_decay", weight_decay);
    f("amsgrad", amsgrad);
    f("maximize", maximize);
    f("fused", fused);
  }
};
struct AdamDefaults {
  static constexpr double weight_decay = 0.0;
};
struct AdamWDefaults {
  static constexpr double weight_decay = 1e-2;
};
using AdamOptions = AdamFamilyOptions<AdamDefaults>;
using AdamWOptions = AdamFamilyOptions<AdamWDefaults>;

/// t += 1;  g = grad (+ weight_decay p for Adam; AdamW instead does p *= 1 - lr weight_decay);
/// m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  vmax = max(vmax, v) (amsgrad);
/// p -= lr / (1 - beta1^t) * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps).
/// State: "step" (0-d f64), "exp_avg", "exp_avg_sq", "max_exp_avg_sq" (amsgrad).
class Adam : public Optimizer {
 public:
  explicit Adam(std::vector<Tensor> params, const AdamOptions& options = {});
  Adam(std::vector<ParamGroup> groups, const AdamOptions& defaults = {});

 protected:
  Adam(const char* name, bool decoupled_weight_decay, Hyper defaults);
  void check_options(const Hyper& options) const override;
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad,
              std::map<std::string, Tensor>& state, int64_t& step) override;

 private:
  bool decoupled_weight_decay_;
};

class AdamW : public Adam {
 public:
  explicit AdamW(std::vector<Tensor> params, const AdamWOptions& options = {});
  /// AdamW({{decay, {{"weight_decay", 0.1}}}, {no_decay, {{"weight_decay", 0.0}}}}, {.lr = 3e-4})
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults = {});
};

}  // namespace moxing::optim
