// SGD: the fused kernel for contiguous f32/f64 parameters, and the composite update written
// with tensor ops (mirrors torch.optim.sgd._single_tensor_sgd) for everything else and as the
// kernel's reference.
#include "moxing/optim/sgd.h"

#include "kernels/optim.h"
#include "moxing/ops/elementwise.h"

namespace moxing::kernels {
MOXING_DEFINE_KERNEL(sgd_step, SgdStepFn)
}  // namespace moxing::kernels

namespace moxing::optim {

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : SGD(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& defaults)
    : Optimizer("sgd", to_hyper(defaults)) {
  init_groups(std::move(groups));
}

void SGD::check_options(const Hyper& o) const {
  MOXING_CHECK(o.at("lr") >= 0.0, "sgd: invalid learning rate {}", o.at("lr"));
  MOXING_CHECK(o.at("momentum") >= 0.0, "sgd: invalid momentum {}", o.at("momentum"));
  MOXING_CHECK(o.at("weight_decay") >= 0.0, "sgd: invalid weight_decay {}", o.at("weight_decay"));
  MOXING_CHECK(o.at("nesterov") == 0.0 || (o.at("momentum") > 0.0 && o.at("dampening") == 0.0),
               "sgd: nesterov momentum requires a momentum > 0 and zero dampening (momentum {}, "
               "dampening {})",
               o.at("momentum"), o.at("dampening"));
}

// torch's SGD keeps no step count, so `step` stays 0 and no "step" is saved.
void SGD::update(const ParamGroup& group, Tensor& param, const Tensor& grad,
                 std::map<std::string, Tensor>& state, int64_t& /*step*/) {
  kernels::SgdStepArgs args;
  args.lr = group.get("lr");
  args.momentum = group.get("momentum");
  args.dampening = group.get("dampening");
  args.weight_decay = group.get("weight_decay");
  args.nesterov = group.get("nesterov") != 0.0;
  args.maximize = group.get("maximize") != 0.0;
  const double lr = args.lr;
  const double momentum = args.momentum;

  const auto& table = kernels::sgd_step();
  Tensor buf =
      momentum != 0.0 && state.count("momentum_buffer") ? state["momentum_buffer"] : Tensor();
  if (group.get("fused") != 0.0 && table.has(param.device().type, param.dtype()) &&
      kernels::all_contiguous({param, grad, buf})) {
    if (momentum != 0.0 && !buf.defined()) {
      args.first_step = true;
      buf = empty_like(param);
      state["momentum_buffer"] = buf;
    }
    table.get(param.device(), param.dtype())(param, grad, buf, args);
    param.bump_version();
    if (buf.defined()) buf.bump_version();
    return;
  }

  Tensor g = args.maximize ? neg(grad) : grad;
  if (args.weight_decay != 0.0) g = add(g, param, args.weight_decay);
  if (momentum != 0.0) {
    if (!buf.defined()) {
      buf = g.clone();
      state["momentum_buffer"] = buf;
    } else {
      buf.mul_(momentum).add_(g, 1.0 - args.dampening);
    }
    g = args.nesterov ? add(g, buf, momentum) : buf;
  }
  param.add_(g, -lr);
}

}  // namespace moxing::optim
