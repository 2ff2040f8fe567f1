// Embedding lookup: rows of a (V,C) table picked by integer indices, with a deterministic
// backward that adds the gradient of every lookup into its row.
#pragma once

#include "moxing/core/tensor.h"

namespace moxing {

/// weight (V,C), indices i64 of any shape -> (..., C). Rows at padding_idx get no gradient
/// (-1: none; torch writes None). Matches torch.nn.functional.embedding.
Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx = -1);

}  // namespace moxing
