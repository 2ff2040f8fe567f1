// Scaled dot-product attention: a fused kernel for the common cases (causal or a constant
// mask, dropout) and the composite of matmul, softmax and dropout it is tested against.
#pragma once

#include <optional>

#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"

namespace moxing {

/// softmax(q k^T * scale + mask) v: q (B,NH,T,HS), k (B,NH,S,HS), v (B,NH,S,HSv)
/// -> (B,NH,T,HSv); leading dims may broadcast. attn_mask broadcasts to (B,NH,T,S) and is
/// bool (true = attend) or floating (added to the scores). is_causal lets query t attend
/// keys s <= t (then no attn_mask). scale defaults to 1/sqrt(HS). dropout_p drops attention
/// weights with draws from gen. Matches torch.nn.functional.scaled_dot_product_attention.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                    bool is_causal = false,
                                    std::optional<double> scale = std::nullopt,
                                    Generator* gen = nullptr);

/// The same op written with matmul, masked_fill / add, softmax and dropout (each recording its
/// own backward): the reference for the fused kernel, which scaled_dot_product_attention uses
/// for 3-D/4-D q, k, v with equal leading dims, dropout_p < 1 and an attn_mask (4-D q only)
/// that needs no gradient. Both draw the same dropout mask from the same generator state.
Tensor scaled_dot_product_attention_math(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                         bool is_causal = false,
                                         std::optional<double> scale = std::nullopt,
                                         Generator* gen = nullptr);

}  // namespace moxing
