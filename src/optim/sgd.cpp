// SGD update, written with tensor ops; mirrors torch.optim.sgd._single_tensor_sgd.
#include "moxing/optim/sgd.h"

#include "moxing/ops/elementwise.h"

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

void SGD::update(const ParamGroup& group, Tensor& param, const Tensor& grad,
                 std::map<std::string, Tensor>& state) {
  const double lr = group.get("lr");
  const double momentum = group.get("momentum");
  const double dampening = group.get("dampening");
  const double weight_decay = group.get("weight_decay");
  Tensor g = group.get("maximize") != 0.0 ? neg(grad) : grad;
  if (weight_decay != 0.0) g = add(g, param, weight_decay);
  if (momentum != 0.0) {
    auto it = state.find("momentum_buffer");
    if (it == state.end()) {
      it = state.emplace("momentum_buffer", g.clone()).first;
    } else {
      it->second.mul_(momentum).add_(g, 1.0 - dampening);
    }
    const Tensor& buf = it->second;
    g = group.get("nesterov") != 0.0 ? add(g, buf, momentum) : buf;
  }
  param.add_(g, -lr);
}

}  // namespace moxing::optim
