// Parameter groups built from a model's named parameters.
#include "moxing/optim/param_groups.h"

namespace moxing::optim {

std::vector<ParamGroup> decay_groups(const std::vector<std::pair<std::string, Tensor>>& params,
                                     double weight_decay) {
  ParamGroup decay, no_decay;
  decay.options["weight_decay"] = weight_decay;
  no_decay.options["weight_decay"] = 0.0;
  for (const auto& [name, p] : params) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

}  // namespace moxing::optim
