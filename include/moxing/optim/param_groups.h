// Parameter groups that trainers build the same way for every model.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "moxing/optim/optimizer.h"

namespace moxing::optim {

/// AdamW as GPT-2 and BERT trainers use it: matrices (2-D and up) get weight_decay, biases and
/// norm weights (1-D) none. Empty groups are left out.
std::vector<ParamGroup> decay_groups(const std::vector<std::pair<std::string, Tensor>>& params,
                                     double weight_decay);

}  // namespace moxing::optim
