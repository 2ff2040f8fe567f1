// GPT-2 (transformers' GPT2LMHeadModel): config.json, the layers, the cached forward, and
// loading / saving a model directory. The transformers names are the module and parameter
// names themselves, so the name mapping is the constructor below plus kIgnoredKeys.
#include "moxing/models/gpt.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "moxing/autograd/node.h"
#include "moxing/models/family.h"
#include "moxing/models/gguf_layout.h"
#include "moxing/models/lm_attention.h"
#include "moxing/nn/init.h"
#include "moxing/ops/attention.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

using nlohmann::json;

// ---- config

namespace {

const char* kKnownActivations[] = {"gelu_new", "gelu_pytorch_tanh", "gelu", "relu"};

}  // namespace

void GPTConfig::validate() const {
  MOXING_CHECK(vocab_size > 0, "GPTConfig: vocab_size must be positive, got {}", vocab_size);
  MOXING_CHECK(n_positions > 0, "GPTConfig: n_positions must be positive, got {}", n_positions);
  MOXING_CHECK(n_layer > 0, "GPTConfig: n_layer must be positive, got {}", n_layer);
  MOXING_CHECK(n_head > 0 && n_embd > 0 && n_embd % n_head == 0,
               "GPTConfig: n_embd {} must be a positive multiple of n_head {}", n_embd, n_head);
  MOXING_CHECK(inner_dim() > 0, "GPTConfig: n_inner must be positive, got {}", inner_dim());
  bool known = false;
  for (const char* a : kKnownActivations) known = known || activation_function == a;
  MOXING_CHECK(known,
               "GPTConfig: activation_function \"{}\" is not supported (moxing knows: gelu_new, "
               "gelu_pytorch_tanh, gelu, relu)",
               activation_function);
  for (double p : {resid_pdrop, embd_pdrop, attn_pdrop}) {
    MOXING_CHECK(p >= 0.0 && p < 1.0, "GPTConfig: dropout probabilities must be in [0, 1), got {}",
                 p);
  }
  MOXING_CHECK(layer_norm_epsilon > 0.0, "GPTConfig: layer_norm_epsilon must be positive, got {}",
               layer_norm_epsilon);
  MOXING_CHECK(!scale_attn_by_inverse_layer_idx,
               "GPTConfig: \"scale_attn_by_inverse_layer_idx\": true is not supported");
  MOXING_CHECK(!reorder_and_upcast_attn,
               "GPTConfig: \"reorder_and_upcast_attn\": true is not supported");
  MOXING_CHECK(!add_cross_attention, "GPTConfig: \"add_cross_attention\": true is not supported");
}

GPTConfig GPTConfig::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("config.json: invalid JSON: {}", e.what());
  }
  MOXING_CHECK(j.is_object(), "config.json: not a JSON object");
  std::string model_type = j.value("model_type", std::string("gpt2"));
  MOXING_CHECK(model_type == "gpt2",
               "config.json: model_type \"{}\" is not supported (moxing knows: gpt2)", model_type);
  json unknown;
  GPTConfig c = config_from_json<GPTConfig>(j, "config.json", &unknown);
  c.validate();
  return c;
}

std::string GPTConfig::to_json() const {
  json j = config_to_json(*this);
  j["model_type"] = "gpt2";
  j["architectures"] = json::array({"GPT2LMHeadModel"});
  return j.dump(2) + "\n";
}

// ---- layers

namespace {

// A linear layer initialized as transformers initializes GPT-2's: W ~ N(0, std^2), b = 0.
std::shared_ptr<nn::Linear> gpt_linear(int64_t in, int64_t out, double std, Generator* gen) {
  auto l = std::make_shared<nn::Linear>(in, out, true, gen);
  nn::init::normal_(l->weight, 0.0, std, gen);
  nn::init::zeros_(l->bias);
  return l;
}

}  // namespace

KVCache::KVCache(int64_t n_layer, int64_t batch, int64_t n_head, int64_t capacity,
                 int64_t head_size, DType dtype) {
  MOXING_CHECK(n_layer > 0 && batch > 0 && n_head > 0 && capacity > 0 && head_size > 0,
               "KVCache: layers {}, batch {}, heads {}, capacity {} and head size {} must be "
               "positive",
               n_layer, batch, n_head, capacity, head_size);
  for (int64_t l = 0; l < n_layer; ++l) {
    k.push_back(zeros({batch, n_head, capacity, head_size}, dtype));
    v.push_back(zeros({batch, n_head, capacity, head_size}, dtype));
  }
}

GPTAttention::GPTAttention(const GPTConfig& config, Generator* gen)
    : n_head(config.n_head),
      attn_pdrop(config.attn_pdrop),
      scale_attn_weights(config.scale_attn_weights) {
  double std = config.initializer_range;
  double proj_std = std / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  c_attn = register_slot<nn::UnaryModule>("c_attn",
                                          gpt_linear(config.n_embd, 3 * config.n_embd, std, gen));
  c_proj = register_slot<nn::UnaryModule>("c_proj",
                                          gpt_linear(config.n_embd, config.n_embd, proj_std, gen));
  resid_dropout = register_slot<nn::UnaryModule>("resid_dropout",
                                                 std::make_shared<nn::Dropout>(config.resid_pdrop));
}

// x (B,T,C) -> q, k, v (B,NH,T,HS) -> softmax(q k^T / sqrt(HS) + causal mask) v -> (B,T,C)
Tensor GPTAttention::forward(const Tensor& x, Tensor* k_cache, Tensor* v_cache, int64_t past) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), NH = n_head, HS = C / NH;
  Tensor qkv = c_attn->forward(x);  // (B,T,3C)
  auto heads = [&](int64_t i) {
    return qkv.narrow(2, i * C, C).view({B, T, NH, HS}).transpose(1, 2);
  };
  Tensor q = heads(0), k = heads(1), v = heads(2);
  std::optional<double> scale;
  if (!scale_attn_weights) scale = 1.0;
  Tensor y = causal_self_attention(q, k, v, k_cache, v_cache, past,
                                   is_training() ? attn_pdrop : 0.0, scale);
  y = y.transpose(1, 2).reshape({B, T, C});
  return resid_dropout->forward(c_proj->forward(y));
}

GPTMLP::GPTMLP(const GPTConfig& config, Generator* gen) : activation(config.activation_function) {
  double std = config.initializer_range;
  double proj_std = std / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  c_fc = register_slot<nn::UnaryModule>("c_fc",
                                        gpt_linear(config.n_embd, config.inner_dim(), std, gen));
  c_proj = register_slot<nn::UnaryModule>(
      "c_proj", gpt_linear(config.inner_dim(), config.n_embd, proj_std, gen));
  dropout =
      register_slot<nn::UnaryModule>("dropout", std::make_shared<nn::Dropout>(config.resid_pdrop));
}

Tensor GPTMLP::forward(const Tensor& x) {
  Tensor h = c_fc->forward(x);
  if (activation == "relu") {
    h = relu(h);
  } else if (activation == "gelu") {
    h = gelu(h);
  } else {
    h = gelu(h, "tanh");  // gelu_new, gelu_pytorch_tanh
  }
  return dropout->forward(c_proj->forward(h));
}

GPTBlock::GPTBlock(const GPTConfig& config, Generator* gen) {
  ln_1 = register_slot<nn::UnaryModule>(
      "ln_1", std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.layer_norm_epsilon));
  attn = register_slot<GPTAttention>("attn", std::make_shared<GPTAttention>(config, gen));
  ln_2 = register_slot<nn::UnaryModule>(
      "ln_2", std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.layer_norm_epsilon));
  mlp = register_slot<nn::UnaryModule>("mlp", std::make_shared<GPTMLP>(config, gen));
}

Tensor GPTBlock::forward(const Tensor& x, Tensor* k_cache, Tensor* v_cache, int64_t past) {
  Tensor h = add(x, attn->forward(ln_1->forward(x), k_cache, v_cache, past));
  return add(h, mlp->forward(ln_2->forward(h)));
}

GPTModel::GPTModel(const GPTConfig& config, Generator* gen) {
  auto embedding = [&](const char* name, int64_t rows) {
    auto e = std::make_shared<nn::Embedding>(rows, config.n_embd, std::nullopt, gen);
    nn::init::normal_(e->weight, 0.0, config.initializer_range, gen);
    return register_slot<nn::UnaryModule>(name, e);
  };
  wte = embedding("wte", config.vocab_size);
  wpe = embedding("wpe", config.n_positions);
  drop = register_slot<nn::UnaryModule>("drop", std::make_shared<nn::Dropout>(config.embd_pdrop));
  h = register_module("h", std::make_shared<nn::ModuleList>());
  for (int64_t l = 0; l < config.n_layer; ++l)
    h->push_back(std::make_shared<GPTBlock>(config, gen));
  ln_f = register_slot<nn::UnaryModule>(
      "ln_f", std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.layer_norm_epsilon));
}

// ---- the language model

GPT::GPT(const GPTConfig& config, Generator* gen) : config_(config) {
  config_.validate();
  transformer = register_module("transformer", std::make_shared<GPTModel>(config_, gen));
  const Tensor& wte = transformer->wte.as<nn::Embedding>()->weight;
  std::shared_ptr<nn::Linear> linear;
  if (config_.tie_word_embeddings) {
    {
      DeviceGuard meta(kMeta);  // no (V,C) table drawn only to be replaced by wte's
      linear = std::make_shared<nn::Linear>(config_.n_embd, config_.vocab_size, false, gen);
    }
    linear->weight = linear->register_parameter("weight", wte);
  } else {
    linear = std::make_shared<nn::Linear>(config_.n_embd, config_.vocab_size, false, gen);
    nn::init::normal_(linear->weight, 0.0, config_.initializer_range, gen);
  }
  head = register_slot<nn::UnaryModule>("lm_head", linear);
}

Tensor GPT::hidden_states(const Tensor& ids, KVCache* cache) {
  if (cache == nullptr) return run_body(ids, nullptr);
  NoGradGuard no_grad;  // the cache holds plain tensors: no graph through it
  return run_body(ids, cache);
}

KVCache GPT::make_cache(int64_t batch, int64_t capacity) const {
  return KVCache(config_.n_layer, batch, config_.n_head,
                 capacity > 0 ? capacity : config_.n_positions, config_.n_embd / config_.n_head,
                 transformer->ln_f.as<nn::LayerNorm>()->weight.dtype());
}

Tensor GPT::run_body(const Tensor& ids_in, KVCache* cache) {
  const int64_t HS = config_.n_embd / config_.n_head;
  Tensor ids = check_lm_input(
      ids_in, cache,
      {"GPT", "n_positions", config_.n_positions, config_.n_layer, config_.n_head, HS});
  const int64_t T = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  Tensor pos = arange(static_cast<double>(past), static_cast<double>(past + T));   // (T)
  Tensor x = add(transformer->wte->forward(ids), transformer->wpe->forward(pos));  // (B,T,C)
  x = transformer->drop->forward(x);
  for (int64_t l = 0; l < config_.n_layer; ++l) {
    auto block = transformer->h->at<GPTBlock>(l);
    if (cache) {
      x = block->forward(x, &cache->k[static_cast<size_t>(l)], &cache->v[static_cast<size_t>(l)],
                         past);
    } else {
      x = block->forward(x);
    }
  }
  if (cache) cache->length += T;
  return transformer->ln_f->forward(x);
}

Tensor GPT::lm_head(const Tensor& h) const { return head->forward(h); }

Tensor GPT::forward(const Tensor& ids) { return lm_head(hidden_states(ids)); }

Tensor GPT::forward(const Tensor& ids, KVCache* cache) {
  NoGradGuard no_grad;
  return lm_head(hidden_states(ids, cache));
}

// ---- the family

namespace {

Family make_gpt2_family() {
  Family f = make_family<GPTConfig>(
      "gpt2", {"gpt"}, {{"GPT2LMHeadModel", "causal-lm"}},
      [](const GPTConfig& c, const std::string&, Generator* gen) -> std::shared_ptr<nn::Module> {
        return std::make_shared<GPT>(c, gen);
      },
      [](const GPTConfig& c) {
        return fmt::format("GPT-2 with {} layers, {} heads, width {}, context {}", c.n_layer,
                           c.n_head, c.n_embd, c.n_positions);
      });
  f.data_keys = {"vocab_size", "bos_token_id", "eos_token_id"};
  f.shorthands = {{"dropout", {"resid_pdrop", "embd_pdrop", "attn_pdrop"}}};
  // transformers' Conv1D keeps these weights as (in, out)
  f.rules.transposed_suffixes = {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight",
                                 ".mlp.c_proj.weight"};
  // GPT2Model checkpoints (openai-community/gpt2) name the body without "transformer."
  f.rules.optional_prefixes = {"transformer."};
  // the causal-mask buffers of older checkpoints: not weights
  f.rules.ignored_suffixes = {".attn.bias", ".attn.masked_bias"};
  return f;
}

// llama.cpp's names for GPT-2 (its converter writes the Conv1D weights as (out, in): the
// module's own layout)
const std::vector<std::pair<std::string, std::string>> kGpt2Top = {
    {"token_embd.weight", "transformer.wte.weight"},
    {"position_embd.weight", "transformer.wpe.weight"},
    {"output_norm.weight", "transformer.ln_f.weight"},
    {"output_norm.bias", "transformer.ln_f.bias"},
    {"output.weight", "lm_head.weight"}};
const std::vector<std::pair<std::string, std::string>> kGpt2Block = {
    {"attn_norm", "ln_1"}, {"attn_qkv", "attn.c_attn"}, {"attn_output", "attn.c_proj"},
    {"ffn_norm", "ln_2"},  {"ffn_up", "mlp.c_fc"},      {"ffn_down", "mlp.c_proj"}};

// "blk.3.ffn_up.bias" <-> "transformer.h.3.mlp.c_fc.bias", through the tables above
std::optional<std::string> gpt2_rename(const std::string& n, bool to_hf) {
  for (const auto& [g, hf] : kGpt2Top) {
    if (n == (to_hf ? g : hf)) return to_hf ? hf : g;
  }
  const std::string prefix = to_hf ? "blk." : "transformer.h.";
  if (n.rfind(prefix, 0) == 0) {
    const size_t dot = n.find('.', prefix.size());
    const size_t last = n.rfind('.');
    if (dot != std::string::npos && last > dot) {
      const std::string layer = n.substr(prefix.size(), dot - prefix.size());
      const std::string mid = n.substr(dot + 1, last - dot - 1), kind = n.substr(last);
      for (const auto& [g, hf] : kGpt2Block) {
        if (mid == (to_hf ? g : hf)) {
          return (to_hf ? "transformer.h." : "blk.") + layer + "." + (to_hf ? hf : g) + kind;
        }
      }
    }
  }
  if (to_hf) return n;  // unknown: load_state_dict reports it as unexpected
  fail("GGUF: the gpt2 layout has no name for tensor '{}'", n);
}

GgufLayout make_gpt2_gguf_layout() {
  GgufLayout l;
  l.architecture = "gpt2";
  l.model_type = "gpt2";
  l.config = [](const GgufFile& f) {
    const std::string p = "gpt2.";
    json c;
    c["model_type"] = "gpt2";
    c["architectures"] = json::array({"GPT2LMHeadModel"});
    c["n_embd"] = gguf_int(f, p + "embedding_length");
    c["n_layer"] = gguf_int(f, p + "block_count");
    c["n_head"] = gguf_int(f, p + "attention.head_count");
    c["n_positions"] = gguf_int(f, p + "context_length");
    c["n_inner"] = gguf_int(f, p + "feed_forward_length");
    c["layer_norm_epsilon"] = gguf_number(f, p + "attention.layer_norm_epsilon", 1e-5);
    if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens")) {
      c["vocab_size"] = static_cast<int64_t>(tokens->items.size());
    } else {
      c["vocab_size"] = f.tensor("token_embd.weight").dims.at(1);
    }
    c["tie_word_embeddings"] = !f.has_tensor("output.weight");
    if (const GgufValue* v = f.find("tokenizer.ggml.bos_token_id"))
      c["bos_token_id"] = v->as_int("bos");
    if (const GgufValue* v = f.find("tokenizer.ggml.eos_token_id"))
      c["eos_token_id"] = v->as_int("eos");
    return c;
  };
  l.name = [](const std::string& g) { return gpt2_rename(g, true); };
  // the loader takes float Conv1D weights as transformers stores them, (in, out): hand over the
  // file's (out, in) as that view (quantized rows are loaded as they are)
  l.transform = [](const std::string& name, const Tensor& t, const json&) {
    for (const char* s :
         {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"}) {
      const std::string suffix(s);
      if (t.dim() == 2 && !is_quantized(t.dtype()) && name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return t.t();
      }
    }
    return t;
  };
  l.gguf_name = [](const std::string& n) { return gpt2_rename(n, false); };
  l.metadata = [](const json& c) {
    const auto u32 = [](int64_t v) {
      return GgufValue::of_uint(GgufValueType::U32, static_cast<uint64_t>(v));
    };
    const int64_t width = c.at("n_embd").get<int64_t>();
    const json& inner = c.contains("n_inner") ? c["n_inner"] : json();
    GgufMetadata m;
    m.emplace_back("gpt2.context_length", u32(c.at("n_positions").get<int64_t>()));
    m.emplace_back("gpt2.embedding_length", u32(width));
    m.emplace_back("gpt2.feed_forward_length",
                   u32(inner.is_number_integer() ? inner.get<int64_t>() : 4 * width));
    m.emplace_back("gpt2.block_count", u32(c.at("n_layer").get<int64_t>()));
    m.emplace_back("gpt2.attention.head_count", u32(c.at("n_head").get<int64_t>()));
    m.emplace_back("gpt2.attention.layer_norm_epsilon",
                   GgufValue::of_float(GgufValueType::F32, c.value("layer_norm_epsilon", 1e-5)));
    return m;
  };
  return l;
}

}  // namespace

MOXING_REGISTER_FAMILY(make_gpt2_family);
MOXING_REGISTER_GGUF_LAYOUT(make_gpt2_gguf_layout);

// ---- model directories

std::shared_ptr<GPT> GPT::from_pretrained(const std::string& dir) {
  Model m = models::from_pretrained(dir);
  auto gpt = std::dynamic_pointer_cast<GPT>(m.module);
  MOXING_CHECK(gpt != nullptr, "{} holds a {} model, not a GPT-2", dir, m.family->name);
  return gpt;
}

void GPT::save_pretrained(const std::string& dir) const {
  Model m;
  m.family = &find_family("gpt2");
  m.architecture = "GPT2LMHeadModel";
  m.config = config_to_json(config_);
  m.config["model_type"] = "gpt2";
  m.config["architectures"] = json::array({m.architecture});
  // a non-owning handle: the Model lives only for this call
  m.module = std::shared_ptr<nn::Module>(std::shared_ptr<nn::Module>(), const_cast<GPT*>(this));
  m.save_pretrained(dir);
}

}  // namespace moxing::models
