// Llama (transformers' LlamaForCausalLM): the config, RMSNorm, rotary embeddings, grouped-query
// attention with the cached forward, the SwiGLU MLP and the family registration. The
// transformers names are the module and parameter names themselves.
#include "moxing/models/llama.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "moxing/autograd/node.h"
#include "moxing/models/family.h"
#include "moxing/models/gguf_layout.h"
#include "moxing/models/lm_attention.h"
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
  Tensor y = causal_self_attention(q, k, v, k_cache, v_cache, past,
                                   is_training() ? attention_dropout : 0.0);
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
                 model->norm.as<LlamaRMSNorm>()->weight.dtype());
}

Tensor Llama::run_body(const Tensor& ids_in, KVCache* cache) {
  Tensor ids = check_lm_input(ids_in, cache,
                              {"Llama", "max_position_embeddings", config_.max_position_embeddings,
                               config_.num_hidden_layers, config_.kv_heads(), config_.head_size()});
  const int64_t T = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
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

// ---- GGUF files (llama.cpp's names)

namespace {

// llama.cpp's converter stores q_proj and k_proj with each head's rotary halves interleaved
// (rows h*HD + 2i and h*HD + 2i + 1 hold HF's rows h*HD + i and h*HD + HD/2 + i); this undoes it.
Tensor unpermute_heads(const Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1), HD = rows / heads;
  return w.reshape({heads, HD / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

// The inverse: HF's rows back to llama.cpp's interleaved order.
Tensor permute_heads(const Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1), HD = rows / heads;
  return w.reshape({heads, 2, HD / 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

const std::vector<std::pair<std::string, std::string>> kLlamaTop = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"}};
const std::vector<std::pair<std::string, std::string>> kLlamaBlock = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"}};

std::optional<std::string> llama_gguf_name(const std::string& g) {
  for (const auto& [from, to] : kLlamaTop) {
    if (g == from) return to;
  }
  if (g.rfind("blk.", 0) == 0) {
    const size_t dot = g.find('.', 4);
    if (dot != std::string::npos) {
      const std::string layer = g.substr(4, dot - 4), rest = g.substr(dot + 1);
      for (const auto& [from, to] : kLlamaBlock) {
        if (rest == from) return "model.layers." + layer + "." + to;
      }
    }
  }
  if (g == "rope_freqs.weight") return std::nullopt;  // Llama 3.1's scaling factors
  return g;  // unknown: load_state_dict reports it as unexpected
}

std::optional<std::string> llama_hf_to_gguf(const std::string& n) {
  for (const auto& [to, from] : kLlamaTop) {
    if (n == from) return to;
  }
  const std::string prefix = "model.layers.";
  if (n.rfind(prefix, 0) == 0) {
    const size_t dot = n.find('.', prefix.size());
    if (dot != std::string::npos) {
      const std::string layer = n.substr(prefix.size(), dot - prefix.size()),
                        rest = n.substr(dot + 1);
      for (const auto& [to, from] : kLlamaBlock) {
        if (rest == from) return "blk." + layer + "." + to;
      }
    }
  }
  fail("GGUF: the llama layout has no name for tensor '{}'", n);
}

bool ends_with_name(const std::string& name, const char* s) {
  const std::string suffix(s);
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int64_t kv_heads_of(const json& config) {
  const json& kv = config.at("num_key_value_heads");
  return kv.is_null() ? config.at("num_attention_heads").get<int64_t>() : kv.get<int64_t>();
}

GgufLayout make_llama_gguf_layout() {
  GgufLayout l;
  l.architecture = "llama";
  l.config = [](const GgufFile& f) {
    const std::string p = "llama.";
    json c;
    c["model_type"] = "llama";
    c["architectures"] = json::array({"LlamaForCausalLM"});
    const int64_t heads = gguf_int(f, p + "attention.head_count");
    const int64_t width = gguf_int(f, p + "embedding_length");
    c["hidden_size"] = width;
    c["intermediate_size"] = gguf_int(f, p + "feed_forward_length");
    c["num_hidden_layers"] = gguf_int(f, p + "block_count");
    c["num_attention_heads"] = heads;
    c["num_key_value_heads"] = gguf_int(f, p + "attention.head_count_kv", heads);
    c["head_dim"] = gguf_int(f, p + "rope.dimension_count", width / heads);
    c["max_position_embeddings"] = gguf_int(f, p + "context_length");
    c["rms_norm_eps"] = gguf_number(f, p + "attention.layer_norm_rms_epsilon", 1e-5);
    c["rope_theta"] = gguf_number(f, p + "rope.freq_base", 10000.0);
    // the vocabulary: llama.vocab_size, else the tokenizer's token list, else the embedding
    int64_t vocab = 0;
    if (f.find(p + "vocab_size") != nullptr) {
      vocab = gguf_int(f, p + "vocab_size");
    } else if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens")) {
      vocab = static_cast<int64_t>(tokens->items.size());
    } else {
      vocab = f.tensor("token_embd.weight").dims.at(1);
    }
    c["vocab_size"] = vocab;
    c["tie_word_embeddings"] = !f.has_tensor("output.weight");
    if (const GgufValue* v = f.find("tokenizer.ggml.bos_token_id"))
      c["bos_token_id"] = v->as_int("bos");
    if (const GgufValue* v = f.find("tokenizer.ggml.eos_token_id"))
      c["eos_token_id"] = v->as_int("eos");
    if (f.find(p + "rope.scaling.type") != nullptr &&
        f.get(p + "rope.scaling.type").as_string("rope.scaling.type") != "none") {
      c["rope_scaling"] = f.get(p + "rope.scaling.type").as_string("rope.scaling.type");
    }
    return c;
  };
  l.name = llama_gguf_name;
  l.transform = [](const std::string& name, const Tensor& t, const json& config) {
    if (ends_with_name(name, "self_attn.q_proj.weight")) {
      return unpermute_heads(t, config.at("num_attention_heads").get<int64_t>());
    }
    if (ends_with_name(name, "self_attn.k_proj.weight")) {
      return unpermute_heads(t, kv_heads_of(config));
    }
    return t;
  };
  l.model_type = "llama";
  l.metadata = [](const json& c) {
    const auto u32 = [&](const char* key) {
      return GgufValue::of_uint(GgufValueType::U32, c.at(key).get<uint64_t>());
    };
    const int64_t heads = c.at("num_attention_heads").get<int64_t>();
    const int64_t head_dim = c.contains("head_dim") && c["head_dim"].is_number_integer()
                                 ? c["head_dim"].get<int64_t>()
                                 : c.at("hidden_size").get<int64_t>() / heads;
    GgufMetadata m;
    m.emplace_back("llama.context_length", u32("max_position_embeddings"));
    m.emplace_back("llama.embedding_length", u32("hidden_size"));
    m.emplace_back("llama.block_count", u32("num_hidden_layers"));
    m.emplace_back("llama.feed_forward_length", u32("intermediate_size"));
    m.emplace_back("llama.attention.head_count", u32("num_attention_heads"));
    m.emplace_back("llama.attention.head_count_kv",
                   GgufValue::of_uint(GgufValueType::U32, static_cast<uint64_t>(kv_heads_of(c))));
    m.emplace_back("llama.rope.dimension_count",
                   GgufValue::of_uint(GgufValueType::U32, static_cast<uint64_t>(head_dim)));
    m.emplace_back("llama.attention.layer_norm_rms_epsilon",
                   GgufValue::of_float(GgufValueType::F32, c.value("rms_norm_eps", 1e-6)));
    double theta = c.value("rope_theta", 10000.0);
    if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) {
      theta = c["rope_parameters"].value("rope_theta", theta);
    }
    m.emplace_back("llama.rope.freq_base", GgufValue::of_float(GgufValueType::F32, theta));
    m.emplace_back("llama.vocab_size", u32("vocab_size"));
    return m;
  };
  l.gguf_name = llama_hf_to_gguf;
  l.to_file = [](const std::string& name, const Tensor& t, const json& config) {
    if (ends_with_name(name, "self_attn.q_proj.weight")) {
      return permute_heads(t, config.at("num_attention_heads").get<int64_t>());
    }
    if (ends_with_name(name, "self_attn.k_proj.weight"))
      return permute_heads(t, kv_heads_of(config));
    return t;
  };
  return l;
}

}  // namespace

MOXING_REGISTER_GGUF_LAYOUT(make_llama_gguf_layout);

}  // namespace moxing::models
