// Adagrad: the fused kernel for contiguous f32/f64 parameters, and the composite update
// written with tensor ops (mirrors torch.optim.adagrad._single_tensor_adagrad, dense gradients)
// for everything else and as the kernel's reference.
#include "moxing/optim/adagrad.h"

#include "kernels/optim.h"
#include "moxing/ops/elementwise.h"

namespace moxing::kernels {
MOXING_DEFINE_KERNEL(adagrad_step, AdagradStepFn)
}  // namespace moxing::kernels

namespace moxing::optim {

Adagrad::Adagrad(std::vector<Tensor> params, const AdagradOptions& options)
    : Adagrad(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

Adagrad::Adagrad(std::vector<ParamGroup> groups, const AdagradOptions& defaults)
    : Optimizer("adagrad", to_hyper(defaults)) {
  init_groups(std::move(groups));
}

void Adagrad::check_options(const Hyper& o) const {
  MOXING_CHECK(o.at("lr") >= 0.0, "adagrad: invalid learning rate {}", o.at("lr"));
  MOXING_CHECK(o.at("lr_decay") >= 0.0, "adagrad: invalid lr_decay {}", o.at("lr_decay"));
  MOXING_CHECK(o.at("weight_decay") >= 0.0, "adagrad: invalid weight_decay {}",
               o.at("weight_decay"));
  MOXING_CHECK(o.at("initial_accumulator_value") >= 0.0,
               "adagrad: invalid initial_accumulator_value {}", o.at("initial_accumulator_value"));
  MOXING_CHECK(o.at("eps") >= 0.0, "adagrad: invalid epsilon {}", o.at("eps"));
}

void Adagrad::update(const ParamGroup& group, Tensor& param, const Tensor& grad,
                     std::map<std::string, Tensor>& state, int64_t& step_count) {
  const double lr = group.get("lr");
  const double lr_decay = group.get("lr_decay");
  const double weight_decay = group.get("weight_decay");
  if (state.empty()) {
    state["sum"] = full_like(param, group.get("initial_accumulator_value"));
  }
  const auto step = static_cast<double>(++step_count);

  const double clr = lr / (1.0 + (step - 1.0) * lr_decay);
  Tensor& sum = state["sum"];
  const auto& table = kernels::adagrad_step();
  if (group.get("fused") != 0.0 && table.has(param.device().type, param.dtype()) &&
      kernels::all_contiguous({param, grad, sum})) {
    kernels::AdagradStepArgs args;
    args.clr = clr;
    args.weight_decay = weight_decay;
    args.eps = group.get("eps");
    args.maximize = group.get("maximize") != 0.0;
    table.get(param.device(), param.dtype())(param, grad, sum, args);
    param.bump_version();
    sum.bump_version();
    return;
  }

  Tensor g = group.get("maximize") != 0.0 ? neg(grad) : grad;
  if (weight_decay != 0.0) g = add(g, param, weight_decay);
  sum.add_(mul(g, g));
  Tensor std = add(sqrt(sum), group.get("eps"));
  param.add_(div(g, std), -clr);
}

}  // namespace moxing::optim
