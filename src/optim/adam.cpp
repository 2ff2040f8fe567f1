// Adam and AdamW: the fused kernel for contiguous f32/f64 parameters, and the composite
// update written with tensor ops (mirrors torch.optim.adam._single_tensor_adam) for
// everything else and as the kernel's reference.
#include "moxing/optim/adam.h"

#include <cmath>

#include "kernels/optim.h"
#include "moxing/ops/elementwise.h"

namespace moxing::kernels {
MOXING_DEFINE_KERNEL(adam_step, AdamStepFn)
}  // namespace moxing::kernels

namespace moxing::optim {
namespace {

// m = lerp(m, g, w) in place, as torch's lerp_
void lerp_(Tensor& m, const Tensor& g, double w) {
  if (std::abs(w) < 0.5) {
    m.add_(sub(g, m), w);
  } else {
    m.copy_(sub(g, mul(sub(g, m), 1.0 - w)));
  }
}

}  // namespace

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& defaults)
    : Adam("adam", false, to_hyper(defaults)) {
  init_groups(std::move(groups));
}

Adam::Adam(const char* name, bool decoupled_weight_decay, Hyper defaults)
    : Optimizer(name, std::move(defaults)), decoupled_weight_decay_(decoupled_weight_decay) {}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : AdamW(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults)
    : Adam("adamw", true, to_hyper(defaults)) {
  init_groups(std::move(groups));
}

void Adam::check_options(const Hyper& o) const {
  const char* n = name().c_str();
  MOXING_CHECK(o.at("lr") >= 0.0, "{}: invalid learning rate {}", n, o.at("lr"));
  MOXING_CHECK(o.at("eps") >= 0.0, "{}: invalid epsilon {}", n, o.at("eps"));
  MOXING_CHECK(o.at("beta1") >= 0.0 && o.at("beta1") < 1.0,
               "{}: invalid beta1 {} (must be in [0, 1))", n, o.at("beta1"));
  MOXING_CHECK(o.at("beta2") >= 0.0 && o.at("beta2") < 1.0,
               "{}: invalid beta2 {} (must be in [0, 1))", n, o.at("beta2"));
  MOXING_CHECK(o.at("weight_decay") >= 0.0, "{}: invalid weight_decay {}", n, o.at("weight_decay"));
}

void Adam::update(const ParamGroup& group, Tensor& param, const Tensor& grad,
                  std::map<std::string, Tensor>& state, int64_t& step_count) {
  const bool amsgrad = group.get("amsgrad") != 0.0;
  if (state.empty()) {
    state["exp_avg"] = zeros_like(param);
    state["exp_avg_sq"] = zeros_like(param);
  }
  if (amsgrad && state.count("max_exp_avg_sq") == 0) {
    state["max_exp_avg_sq"] = zeros_like(param);
  }
  const auto step = static_cast<double>(++step_count);
  Tensor& exp_avg = state["exp_avg"];
  Tensor& exp_avg_sq = state["exp_avg_sq"];
  Tensor max_exp_avg_sq = amsgrad ? state["max_exp_avg_sq"] : Tensor();

  kernels::AdamStepArgs args;
  args.lr = group.get("lr");
  args.beta1 = group.get("beta1");
  args.beta2 = group.get("beta2");
  args.eps = group.get("eps");
  args.weight_decay = group.get("weight_decay");
  args.step = step;
  args.amsgrad = amsgrad;
  args.maximize = group.get("maximize") != 0.0;
  args.decoupled_weight_decay = decoupled_weight_decay_;

  const auto& table = kernels::adam_step();
  bool fused = group.get("fused") != 0.0 && table.has(param.device().type, param.dtype()) &&
               param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() &&
               exp_avg_sq.is_contiguous() && (!amsgrad || max_exp_avg_sq.is_contiguous());
  if (fused) {
    table.get(param.device(), param.dtype())(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
                                             args);
    param.bump_version();
    exp_avg.bump_version();
    exp_avg_sq.bump_version();
    if (amsgrad) max_exp_avg_sq.bump_version();
    return;
  }

  Tensor g = args.maximize ? neg(grad) : grad;
  if (args.weight_decay != 0.0) {
    if (decoupled_weight_decay_) {
      param.mul_(1.0 - args.lr * args.weight_decay);
    } else {
      g = add(g, param, args.weight_decay);
    }
  }
  lerp_(exp_avg, g, 1.0 - args.beta1);
  exp_avg_sq.mul_(args.beta2).add_(mul(mul(g, 1.0 - args.beta2), g));
  const double bias_correction1 = 1.0 - std::pow(args.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(args.beta2, step);
  const double step_size = args.lr / bias_correction1;
  const double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
  if (amsgrad) max_exp_avg_sq.copy_(maximum(max_exp_avg_sq, exp_avg_sq));
  Tensor second = amsgrad ? max_exp_avg_sq : exp_avg_sq;
  Tensor denom = add(div(sqrt(second), bias_correction2_sqrt), args.eps);
  param.add_(div(exp_avg, denom), -step_size);
}

}  // namespace moxing::optim
