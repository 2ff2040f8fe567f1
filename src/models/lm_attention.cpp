#include "moxing/models/lm_attention.h"

#include "moxing/core/error.h"
#include "moxing/ops/attention.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

namespace {

// (B,NKV,S,HS) -> (B,NKV*rep,S,HS)
Tensor repeat_kv(const Tensor& x, int64_t rep) {
  if (rep == 1) return x;
  const int64_t B = x.size(0), NKV = x.size(1), S = x.size(2), HS = x.size(3);
  return x.unsqueeze(2).expand({B, NKV, rep, S, HS}).reshape({B, NKV * rep, S, HS});
}

}  // namespace

Tensor check_lm_input(const Tensor& ids_in, const KVCache* cache, const LmInputSpec& s) {
  MOXING_CHECK(ids_in.defined() && ids_in.dim() == 2, "{}: ids must be 2-D (B,T), got shape {}",
               s.model, ids_in.defined() ? shape_str(ids_in.shape()) : std::string("undefined"));
  MOXING_CHECK(ids_in.dtype() == DType::i64 || ids_in.dtype() == DType::i32,
               "{}: ids must be i64 or i32, got {}", s.model, dtype_name(ids_in.dtype()));
  Tensor ids = ids_in.to(DType::i64);
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  MOXING_CHECK(T > 0, "{}: ids hold no positions (shape {})", s.model, shape_str(ids.shape()));
  MOXING_CHECK(past + T <= s.context,
               "{}: {} positions exceed the model's context of {} = {} tokens", s.model, past + T,
               s.context_key, s.context);
  if (cache) {
    MOXING_CHECK(static_cast<int64_t>(cache->k.size()) == s.n_layer && cache->k[0].size(0) == B &&
                     cache->k[0].size(1) == s.kv_heads && cache->k[0].size(3) == s.head_size,
                 "{}: the KV cache was made for another model or batch size (ids {})", s.model,
                 shape_str(ids.shape()));
    MOXING_CHECK(past + T <= cache->capacity(),
                 "{}: {} positions exceed the KV cache capacity of {}", s.model, past + T,
                 cache->capacity());
  }
  return ids;
}

Tensor causal_self_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor* k_cache,
                             Tensor* v_cache, int64_t past, double dropout_p,
                             std::optional<double> scale) {
  const int64_t rep = q.size(1) / k.size(1), T = q.size(2);
  if (k_cache == nullptr) {
    return scaled_dot_product_attention(q, repeat_kv(k, rep), repeat_kv(v, rep), Tensor(),
                                        dropout_p, true, scale);
  }
  // the new keys and values go straight into the preallocated cache; attention reads the first
  // past + T positions of it
  const int64_t L = past + T;
  k_cache->narrow(2, past, T).copy_(k);
  v_cache->narrow(2, past, T).copy_(v);
  Tensor k_all = repeat_kv(k_cache->narrow(2, 0, L), rep);
  Tensor v_all = repeat_kv(v_cache->narrow(2, 0, L), rep);
  if (past == 0) {
    return scaled_dot_product_attention(q, k_all, v_all, Tensor(), dropout_p, true, scale);
  }
  if (T == 1) {
    return scaled_dot_product_attention(q, k_all, v_all, Tensor(), dropout_p, false, scale);
  }
  // query t sits at position past + t and attends keys s <= past + t (bottom-right aligned)
  Tensor s = arange(L).reshape({1, L});
  Tensor t = arange(static_cast<double>(past), static_cast<double>(L)).reshape({T, 1});
  return scaled_dot_product_attention(q, k_all, v_all, le(s, t), dropout_p, false, scale);
}

}  // namespace moxing::models
