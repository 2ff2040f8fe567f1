// Loss functions with PyTorch's names, arguments and reductions. nll_loss is a primitive
// (gather of the target column); the others are composites of existing ops.
#pragma once

#include "moxing/core/tensor.h"

namespace moxing {

/// How a per-element loss is reduced: kept as is, averaged, or summed.
enum class Reduction { none, mean, sum };

/// -logp[b, target[b, ...], ...]; logp (B,C) or (B,C,d1,...) (or (C) with a 0-d target),
/// target i64 (B) or (B,d1,...). mean divides by the number of targets != ignore_index.
/// Matches torch.nn.functional.nll_loss without class weights.
Tensor nll_loss(const Tensor& logp, const Tensor& target, Reduction r = Reduction::mean,
                int64_t ignore_index = -100);
/// nll_loss(log_softmax(logits, 1), target) mixed with label_smoothing / C on every class;
/// logits (B,C) or (B,C,d1,...), class-index targets as nll_loss.
/// Matches torch.nn.functional.cross_entropy without class weights.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction r = Reduction::mean,
                     int64_t ignore_index = -100, double label_smoothing = 0.0);
/// (input - target)^2, input and target of one shape.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean);
/// |input - target|, input and target of one shape.
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean);
/// -[pos_weight t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed stably from logits;
/// pos_weight (optional) broadcasts against the logits, e.g. (C) for logits (B,C).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction r = Reduction::mean,
                                        const Tensor& pos_weight = Tensor());

}  // namespace moxing
