// RMSprop: the fused kernel for contiguous f32/f64 parameters, and the composite update
// written with tensor ops (mirrors torch.optim.rmsprop._single_tensor_rmsprop) for everything
// else and as the kernel's reference.
#include "moxing/optim/rmsprop.h"

#include "kernels/optim.h"
#include "moxing/ops/elementwise.h"

namespace moxing::kernels {
MOXING_DEFINE_KERNEL(rmsprop_step, RmspropStepFn)
}  // namespace moxing::kernels

namespace moxing::optim {

RMSprop::RMSprop(std::vector<Tensor> params, const RMSpropOptions& options)
    : RMSprop(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

RMSprop::RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& defaults)
    : Optimizer("rmsprop", to_hyper(defaults)) {
  init_groups(std::move(groups));
}

void RMSprop::check_options(const Hyper& o) const {
  MOXING_CHECK(o.at("lr") >= 0.0, "rmsprop: invalid learning rate {}", o.at("lr"));
  MOXING_CHECK(o.at("eps") >= 0.0, "rmsprop: invalid epsilon {}", o.at("eps"));
  MOXING_CHECK(o.at("momentum") >= 0.0, "rmsprop: invalid momentum {}", o.at("momentum"));
  MOXING_CHECK(o.at("weight_decay") >= 0.0, "rmsprop: invalid weight_decay {}",
               o.at("weight_decay"));
  MOXING_CHECK(o.at("alpha") >= 0.0, "rmsprop: invalid alpha {}", o.at("alpha"));
}

void RMSprop::update(const ParamGroup& group, Tensor& param, const Tensor& grad,
                     std::map<std::string, Tensor>& state, int64_t& step_count) {
  const double lr = group.get("lr");
  const double alpha = group.get("alpha");
  const double eps = group.get("eps");
  const double weight_decay = group.get("weight_decay");
  const double momentum = group.get("momentum");
  const bool centered = group.get("centered") != 0.0;
  if (state.empty()) state["square_avg"] = zeros_like(param);
  if (momentum > 0.0 && state.count("momentum_buffer") == 0) {
    state["momentum_buffer"] = zeros_like(param);
  }
  if (centered && state.count("grad_avg") == 0) state["grad_avg"] = zeros_like(param);
  ++step_count;

  Tensor& square_avg = state["square_avg"];
  Tensor grad_avg = centered ? state["grad_avg"] : Tensor();
  Tensor buf = momentum > 0.0 ? state["momentum_buffer"] : Tensor();
  const auto& table = kernels::rmsprop_step();
  if (group.get("fused") != 0.0 && table.has(param.device().type, param.dtype()) &&
      kernels::all_contiguous({param, grad, square_avg, grad_avg, buf})) {
    kernels::RmspropStepArgs args;
    args.lr = lr;
    args.alpha = alpha;
    args.eps = eps;
    args.weight_decay = weight_decay;
    args.momentum = momentum;
    args.centered = centered;
    args.maximize = group.get("maximize") != 0.0;
    table.get(param.device(), param.dtype())(param, grad, square_avg, grad_avg, buf, args);
    for (Tensor* t : {&param, &square_avg, &grad_avg, &buf}) {
      if (t->defined()) t->bump_version();
    }
    return;
  }

  Tensor g = group.get("maximize") != 0.0 ? neg(grad) : grad;
  if (weight_decay != 0.0) g = add(g, param, weight_decay);
  square_avg.mul_(alpha).add_(mul(mul(g, 1.0 - alpha), g));
  Tensor avg;
  if (centered) {
    // grad_avg = lerp(grad_avg, g, 1 - alpha); 1 - alpha < 0.5 for the usual alpha
    const double w = 1.0 - alpha;
    if (w < 0.5 && w > -0.5) {
      grad_avg.add_(sub(g, grad_avg), w);
    } else {
      grad_avg.copy_(sub(g, mul(sub(g, grad_avg), 1.0 - w)));
    }
    avg = sqrt(sub(square_avg, mul(grad_avg, grad_avg)));
  } else {
    avg = sqrt(square_avg);
  }
  avg = add(avg, eps);
  if (momentum > 0.0) {
    buf.mul_(momentum).add_(div(g, avg));
    param.add_(buf, -lr);
  } else {
    param.add_(div(g, avg), -lr);
  }
}

}  // namespace moxing::optim
