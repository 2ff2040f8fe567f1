// The backward engine: runs recorded nodes in reverse topological order (no recursion),
// sums gradients that meet, and reduces broadcast gradients to each input's shape.
#pragma once

#include <vector>

#include "moxing/core/tensor.h"

namespace moxing::autograd {

/// Backpropagates `grads` (one per root; undefined means ones for a scalar root).
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
              bool retain_graph = false);

}  // namespace moxing::autograd
