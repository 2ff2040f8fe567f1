// Llama (transformers' LlamaForCausalLM): the config, RMSNorm, rotary embeddings, grouped-query
// attention with the cached forward, the SwiGLU MLP and the family registration. The
// transformers names are the module and parameter names themselves.
#include "moxing/models/llama.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "moxing/autograd/node.h"
#include "moxing/models/family.h"
#include "moxing/nn/init.h"
#include "moxing/ops/attention.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

using nlohmann::json;

void LlamaConfig::validate() const {
  MOXING_CHECK(vocab_size > 0, "LlamaConfig: vocab_size must be positive, got {}", vocab_size);
  MOXING_CHECK(hidden_size > 0 && intermediate_size > 0 && num_hidden_layers > 0,
               "LlamaConfig: hidden_size {}, intermediate_size {} and num_hidden_layers {} must "
               "be positive",
               hidden_size, intermediate_size, num_hidden_layers);
  MOXING_CHECK(num_attention_heads > 0 && (head_dim || hidden_size % num_attention_heads == 0),
               "LlamaConfig: hidden_size {} must be a multiple of num_attention_heads {} (or "
               "head_dim set)",
               hidden_size, num_attention_heads);
  MOXING_CHECK(head_size() > 0 && head_size() % 2 == 0,
               "LlamaConfig: the head size must be positive and even for rotary embeddings, got "
               "{}",
               head_size());
  MOXING_CHECK(kv_heads() > 0 && num_attention_heads % kv_heads() == 0,
               "LlamaConfig: num_attention_heads {} must be a multiple of num_key_value_heads {}",
               num_attention_heads, kv_heads());
  MOXING_CHECK(hidden_act == "silu",
               "LlamaConfig: hidden_act \"{}\" is not supported (moxing knows: silu)", hidden_act);
  MOXING_CHECK(max_position_embeddings > 0,
               "LlamaConfig: max_position_embeddings must be positive, got {}",
               max_position_embeddings);
  MOXING_CHECK(rms_norm_eps > 0.0, "LlamaConfig: rms_norm_eps must be positive, got {}",
               rms_norm_eps);
  MOXING_CHECK(rope_theta > 0.0, "LlamaConfig: rope_theta must be positive, got {}", rope_theta);
  MOXING_CHECK(attention_dropout >= 0.0 && attention_dropout < 1.0,
               "LlamaConfig: attention_dropout must be in [0, 1), got {}", attention_dropout);
}

// ---- layers

LlamaRMSNorm::LlamaRMSNorm(int64_t size, double eps) : eps(eps) {
  weight = register_parameter("weight", ones({size}));
}

Tensor LlamaRMSNorm::forward(const Tensor& x) {
  Tensor ms = mean(mul(x, x), {-1}, true);
  return mul(mul(x, rsqrt(add(ms, eps))), weight);
}

std::pair<Tensor, Tensor> rotary_tables(int64_t first, int64_t T, int64_t head_size, double theta,
                                        DType dtype) {
  const int64_t half = head_size / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // transformers: 1 / base ** (arange(0, dim, 2) / dim), in f32
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_size);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(static_cast<float>(theta), e);
  }
  std::vector<double> c(static_cast<size_t>(T * head_size)), s(c.size());
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < head_size; ++i) {
      const float angle = static_cast<float>(first + t) * inv[static_cast<size_t>(i % half)];
      const auto k = static_cast<size_t>(t * head_size + i);
      c[k] = static_cast<float>(std::cos(static_cast<double>(angle)));
      s[k] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  return {from_vector(c, {T, head_size}).to(dtype), from_vector(s, {T, head_size}).to(dtype)};
}

Tensor apply_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  Tensor rotated = cat({neg(x2), x1}, -1);
  return add(mul(x, cos), mul(rotated, sin));
}

namespace {

std::shared_ptr<nn::Linear> llama_linear(int64_t in, int64_t out, bool bias, double std,
                                         Generator* gen) {
  auto l = std::make_shared<nn::Linear>(in, out, bias, gen);
  nn::init::normal_(l->weight, 0.0, std, gen);
  if (bias) nn::init::zeros_(l->bias);
  return l;
}

// (B,NKV,S,HD) -> (B,NKV*rep,S,HD): each key/value head serves rep query heads
Tensor repeat_kv(const Tensor& x, int64_t rep) {
  if (rep == 1) return x;
  const int64_t B = x.size(0), NKV = x.size(1), S = x.size(2), HD = x.size(3);
  return x.unsqueeze(2).expand({B, NKV, rep, S, HD}).reshape({B, NKV * rep, S, HD});
}

}  // namespace

LlamaAttention::LlamaAttention(const LlamaConfig& config, Generator* gen)
    : n_head(config.num_attention_heads),
      n_kv_head(config.kv_heads()),
      head_size(config.head_size()),
      attention_dropout(config.attention_dropout) {
  const double std = config.initializer_range;
  const int64_t C = config.hidden_size;
  const bool b = config.attention_bias;
  q_proj =
      register_slot<nn::UnaryModule>("q_proj", llama_linear(C, n_head * head_size, b, std, gen));
  k_proj =
      register_slot<nn::UnaryModule>("k_proj", llama_linear(C, n_kv_head * head_size, b, std, gen));
  v_proj =
      register_slot<nn::UnaryModule>("v_proj", llama_linear(C, n_kv_head * head_size, b, std, gen));
  o_proj =
      register_slot<nn::UnaryModule>("o_proj", llama_linear(n_head * head_size, C, b, std, gen));
}

Tensor LlamaAttention::forward(const Tensor& x, const Tensor& cos, const Tensor& sin,
                               Tensor* k_cache, Tensor* v_cache, int64_t past) {
  const int64_t B = x.size(0), T = x.size(1), HD = head_size;
  auto heads = [&](const Tensor& y, int64_t n) { return y.view({B, T, n, HD}).transpose(1, 2); };
  Tensor q = apply_rotary(heads(q_proj->forward(x), n_head), cos, sin);
  Tensor k = apply_rotary(heads(k_proj->forward(x), n_kv_head), cos, sin);
  Tensor v = heads(v_proj->forward(x), n_kv_head);
  const double p = is_training() ? attention_dropout : 0.0;
  const int64_t rep = n_head / n_kv_head;
  Tensor y;
  if (k_cache == nullptr) {
    y = scaled_dot_product_attention(q, repeat_kv(k, rep), repeat_kv(v, rep), Tensor(), p, true);
  } else {
    const int64_t L = past + T;
    k_cache->narrow(2, past, T).copy_(k);
    v_cache->narrow(2, past, T).copy_(v);
    Tensor k_all = repeat_kv(k_cache->narrow(2, 0, L), rep);
    Tensor v_all = repeat_kv(v_cache->narrow(2, 0, L), rep);
    if (past == 0) {
      y = scaled_dot_product_attention(q, k_all, v_all, Tensor(), p, true);
    } else if (T == 1) {
      y = scaled_dot_product_attention(q, k_all, v_all, Tensor(), p, false);
    } else {
      // query t sits at position past + t and attends keys s <= past + t
      Tensor s = arange(L).reshape({1, L});
      Tensor t = arange(static_cast<double>(past), static_cast<double>(L)).reshape({T, 1});
      y = scaled_dot_product_attention(q, k_all, v_all, le(s, t), p, false);
    }
  }
  return o_proj->forward(y.transpose(1, 2).reshape({B, T, n_head * HD}));
}

LlamaMLP::LlamaMLP(const LlamaConfig& config, Generator* gen) {
  const double std = config.initializer_range;
  const int64_t C = config.hidden_size, I = config.intermediate_size;
  gate_proj =
      register_slot<nn::UnaryModule>("gate_proj", llama_linear(C, I, config.mlp_bias, std, gen));
  up_proj =
      register_slot<nn::UnaryModule>("up_proj", llama_linear(C, I, config.mlp_bias, std, gen));
  down_proj =
      register_slot<nn::UnaryModule>("down_proj", llama_linear(I, C, config.mlp_bias, std, gen));
}

Tensor LlamaMLP::forward(const Tensor& x) {
  return down_proj->forward(mul(silu(gate_proj->forward(x)), up_proj->forward(x)));
}

LlamaDecoderLayer::LlamaDecoderLayer(const LlamaConfig& config, Generator* gen) {
  self_attn =
      register_slot<LlamaAttention>("self_attn", std::make_shared<LlamaAttention>(config, gen));
  mlp = register_slot<nn::UnaryModule>("mlp", std::make_shared<LlamaMLP>(config, gen));
  input_layernorm = register_slot<nn::UnaryModule>(
      "input_layernorm", std::make_shared<LlamaRMSNorm>(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm = register_slot<nn::UnaryModule>(
      "post_attention_layernorm",
      std::make_shared<LlamaRMSNorm>(config.hidden_size, config.rms_norm_eps));
}

Tensor LlamaDecoderLayer::forward(const Tensor& x, const Tensor& cos, const Tensor& sin,
                                  Tensor* k_cache, Tensor* v_cache, int64_t past) {
  Tensor h =
      add(x, self_attn->forward(input_layernorm->forward(x), cos, sin, k_cache, v_cache, past));
  return add(h, mlp->forward(post_attention_layernorm->forward(h)));
}

LlamaModel::LlamaModel(const LlamaConfig& config, Generator* gen) {
  auto e =
      std::make_shared<nn::Embedding>(config.vocab_size, config.hidden_size, std::nullopt, gen);
  nn::init::normal_(e->weight, 0.0, config.initializer_range, gen);
  embed_tokens = register_slot<nn::UnaryModule>("embed_tokens", e);
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    layers->push_back(std::make_shared<LlamaDecoderLayer>(config, gen));
  }
  norm = register_slot<nn::UnaryModule>(
      "norm", std::make_shared<LlamaRMSNorm>(config.hidden_size, config.rms_norm_eps));
}

// ---- the language model

Llama::Llama(const LlamaConfig& config, Generator* gen) : config_(config) {
  config_.validate();
  model = register_module("model", std::make_shared<LlamaModel>(config_, gen));
  const Tensor& table = model->embed_tokens.as<nn::Embedding>()->weight;
  std::shared_ptr<nn::Linear> linear;
  if (config_.tie_word_embeddings) {
    {
      DeviceGuard meta(kMeta);  // no (V,C) table drawn only to be replaced
      linear = std::make_shared<nn::Linear>(config_.hidden_size, config_.vocab_size, false, gen);
    }
    linear->weight = linear->register_parameter("weight", table);
  } else {
    linear = std::make_shared<nn::Linear>(config_.hidden_size, config_.vocab_size, false, gen);
    nn::init::normal_(linear->weight, 0.0, config_.initializer_range, gen);
  }
  head = register_slot<nn::UnaryModule>("lm_head", linear);
}

Tensor Llama::hidden_states(const Tensor& ids, KVCache* cache) {
  if (cache == nullptr) return run_body(ids, nullptr);
  NoGradGuard no_grad;
  return run_body(ids, cache);
}

KVCache Llama::make_cache(int64_t batch, int64_t capacity) const {
  return KVCache(config_.num_hidden_layers, batch, config_.kv_heads(),
                 capacity > 0 ? capacity : config_.max_position_embeddings, config_.head_size(),
                 model->embed_tokens.as<nn::Embedding>()->weight.dtype());
}

Tensor Llama::run_body(const Tensor& ids_in, KVCache* cache) {
  MOXING_CHECK(ids_in.defined() && ids_in.dim() == 2, "Llama: ids must be 2-D (B,T), got shape {}",
               ids_in.defined() ? shape_str(ids_in.shape()) : std::string("undefined"));
  MOXING_CHECK(ids_in.dtype() == DType::i64 || ids_in.dtype() == DType::i32,
               "Llama: ids must be i64 or i32, got {}", dtype_name(ids_in.dtype()));
  Tensor ids = ids_in.to(DType::i64);
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  MOXING_CHECK(T > 0, "Llama: ids hold no positions (shape {})", shape_str(ids.shape()));
  MOXING_CHECK(past + T <= config_.max_position_embeddings,
               "Llama: {} positions exceed the model's context of max_position_embeddings = {} "
               "tokens",
               past + T, config_.max_position_embeddings);
  if (cache) {
    MOXING_CHECK(static_cast<int64_t>(cache->k.size()) == config_.num_hidden_layers &&
                     cache->k[0].size(0) == B && cache->k[0].size(1) == config_.kv_heads() &&
                     cache->k[0].size(3) == config_.head_size(),
                 "Llama: the KV cache was made for another model or batch size (ids {})",
                 shape_str(ids.shape()));
    MOXING_CHECK(past + T <= cache->capacity(),
                 "Llama: {} positions exceed the KV cache capacity of {}", past + T,
                 cache->capacity());
  }
  Tensor x = model->embed_tokens->forward(ids);
  auto [cos, sin] = rotary_tables(past, T, config_.head_size(), config_.rope_theta, x.dtype());
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    auto layer = model->layers->at<LlamaDecoderLayer>(l);
    if (cache) {
      x = layer->forward(x, cos, sin, &cache->k[static_cast<size_t>(l)],
                         &cache->v[static_cast<size_t>(l)], past);
    } else {
      x = layer->forward(x, cos, sin);
    }
  }
  if (cache) cache->length += T;
  return model->norm->forward(x);
}

Tensor Llama::lm_head(const Tensor& h) const { return head->forward(h); }

Tensor Llama::forward(const Tensor& ids) { return lm_head(hidden_states(ids)); }

Tensor Llama::forward(const Tensor& ids, KVCache* cache) {
  NoGradGuard no_grad;
  return lm_head(hidden_states(ids, cache));
}

// ---- the family

namespace {

Family make_llama_family() {
  Family f = make_family<LlamaConfig>(
      "llama", {}, {{"LlamaForCausalLM", "causal-lm"}},
      [](const LlamaConfig& c, const std::string&, Generator* gen) -> std::shared_ptr<nn::Module> {
        return std::make_shared<Llama>(c, gen);
      },
      [](const LlamaConfig& c) {
        return fmt::format("Llama with {} layers, {} heads ({} key/value), width {}, context {}",
                           c.num_hidden_layers, c.num_attention_heads, c.kv_heads(), c.hidden_size,
                           c.max_position_embeddings);
      });
  f.data_keys = {"vocab_size", "bos_token_id", "eos_token_id"};
  f.shorthands = {{"dropout", {"attention_dropout"}}};
  // the rotary frequencies some checkpoints saved: computed, not weights
  f.rules.ignored_suffixes = {".rotary_emb.inv_freq"};
  // transformers 5 keeps the RoPE settings in rope_parameters (rope_type, rope_theta), older
  // versions in rope_theta and rope_scaling. Scaled RoPE (Llama 3.1's "llama3", "linear",
  // "dynamic", YaRN) changes the positions' math: refused by name rather than run wrong.
  auto resolve = f.resolve;
  f.resolve = [resolve](const json& fields, const std::string& where, bool keep_unknown) {
    json out = fields;
    auto scaling = fields.find("rope_scaling");
    if (scaling != fields.end() && !scaling->is_null()) {
      fail(
          "{}: rope_scaling {} is not supported yet (moxing runs Llama models without RoPE "
          "scaling)",
          where, scaling->dump());
    }
    auto params = fields.find("rope_parameters");
    if (params != fields.end() && !params->is_null()) {
      MOXING_CHECK(params->is_object(), "{}: rope_parameters must be an object, got {}", where,
                   params->dump());
      const json type = params->value("rope_type", json("default"));
      MOXING_CHECK(type == "default",
                   "{}: rope_parameters rope_type {} is not supported yet (moxing runs RoPE "
                   "without scaling: \"default\")",
                   where, type.dump());
      if (params->contains("rope_theta")) out["rope_theta"] = (*params)["rope_theta"];
    }
    return resolve(out, where, keep_unknown);
  };
  return f;
}

}  // namespace

MOXING_REGISTER_FAMILY(make_llama_family);

}  // namespace moxing::models
