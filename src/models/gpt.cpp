// GPT-2 (transformers' GPT2LMHeadModel): config.json, the layers, the cached forward, and
// loading / saving a model directory. The transformers names are the module and parameter
// names themselves, so the name mapping is the constructor below plus kIgnoredKeys.
#include "moxing/models/gpt.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/file_util.h"
#include "moxing/autograd/node.h"
#include "moxing/io/file.h"
#include "moxing/io/safetensors.h"
#include "moxing/nn/init.h"
#include "moxing/ops/attention.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- config

namespace {

const char* kKnownActivations[] = {"gelu_new", "gelu_pytorch_tanh", "gelu", "relu"};

void read_int(const json& j, const char* key, int64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  MOXING_CHECK(it->is_number_integer(), "config.json: \"{}\" must be an integer, got {}", key,
               it->dump());
  out = it->get<int64_t>();
}

void read_double(const json& j, const char* key, double& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  MOXING_CHECK(it->is_number(), "config.json: \"{}\" must be a number, got {}", key, it->dump());
  out = it->get<double>();
}

void read_bool(const json& j, const char* key, bool& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  MOXING_CHECK(it->is_boolean(), "config.json: \"{}\" must be true or false, got {}", key,
               it->dump());
  out = it->get<bool>();
}

void read_string(const json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  MOXING_CHECK(it->is_string(), "config.json: \"{}\" must be a string, got {}", key, it->dump());
  out = it->get<std::string>();
}

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
}

GPTConfig GPTConfig::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("config.json: invalid JSON: {}", e.what());
  }
  MOXING_CHECK(j.is_object(), "config.json: not a JSON object");
  std::string model_type = "gpt2";
  read_string(j, "model_type", model_type);
  MOXING_CHECK(model_type == "gpt2",
               "config.json: model_type \"{}\" is not supported (moxing knows: gpt2)", model_type);
  GPTConfig c;
  read_int(j, "vocab_size", c.vocab_size);
  read_int(j, "n_positions", c.n_positions);
  read_int(j, "n_embd", c.n_embd);
  read_int(j, "n_layer", c.n_layer);
  read_int(j, "n_head", c.n_head);
  if (j.contains("n_inner") && !j["n_inner"].is_null()) {
    int64_t n = 0;
    read_int(j, "n_inner", n);
    c.n_inner = n;
  }
  read_string(j, "activation_function", c.activation_function);
  read_double(j, "resid_pdrop", c.resid_pdrop);
  read_double(j, "embd_pdrop", c.embd_pdrop);
  read_double(j, "attn_pdrop", c.attn_pdrop);
  read_double(j, "layer_norm_epsilon", c.layer_norm_epsilon);
  read_double(j, "initializer_range", c.initializer_range);
  read_int(j, "bos_token_id", c.bos_token_id);
  read_int(j, "eos_token_id", c.eos_token_id);
  read_bool(j, "tie_word_embeddings", c.tie_word_embeddings);
  read_bool(j, "scale_attn_weights", c.scale_attn_weights);
  // variants of the attention math that moxing does not implement
  for (const char* key :
       {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"}) {
    bool on = false;
    read_bool(j, key, on);
    MOXING_CHECK(!on, "config.json: \"{}\": true is not supported", key);
  }
  c.validate();
  return c;
}

std::string GPTConfig::to_json() const {
  json j;
  j["model_type"] = "gpt2";
  j["architectures"] = json::array({"GPT2LMHeadModel"});
  j["vocab_size"] = vocab_size;
  j["n_positions"] = n_positions;
  j["n_embd"] = n_embd;
  j["n_layer"] = n_layer;
  j["n_head"] = n_head;
  j["n_inner"] = n_inner ? json(*n_inner) : json(nullptr);
  j["activation_function"] = activation_function;
  j["resid_pdrop"] = resid_pdrop;
  j["embd_pdrop"] = embd_pdrop;
  j["attn_pdrop"] = attn_pdrop;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["initializer_range"] = initializer_range;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["scale_attn_weights"] = scale_attn_weights;
  return j.dump(2) + "\n";
}

// ---- layers

Conv1D::Conv1D(int64_t in_features, int64_t out_features, double std, Generator* gen,
               bool init_weights)
    : in_features(in_features), out_features(out_features) {
  weight = register_parameter("weight", empty({in_features, out_features}));
  bias = register_parameter("bias", zeros({out_features}));
  if (init_weights) nn::init::normal_(weight, 0.0, std, gen);
}

// x (..., in) -> x W + b (..., out); a contiguous x (B,T,in) is one GEMM over B*T rows
Tensor Conv1D::forward(const Tensor& x) {
  Tensor y = matmul(x, weight);
  if (autograd::grad_enabled()) return add(y, bias);
  y.add_(bias);  // inference: no second (B,T,out) buffer
  return y;
}

std::string Conv1D::extra_repr() const {
  return fmt::format("nf={}, nx={}", out_features, in_features);
}

KVCache::KVCache(const GPTConfig& config, int64_t batch, int64_t capacity, DType dtype) {
  if (capacity == 0) capacity = config.n_positions;
  MOXING_CHECK(batch > 0 && capacity > 0, "KVCache: batch {} and capacity {} must be positive",
               batch, capacity);
  int64_t hs = config.n_embd / config.n_head;
  for (int64_t l = 0; l < config.n_layer; ++l) {
    k.push_back(zeros({batch, config.n_head, capacity, hs}, dtype));
    v.push_back(zeros({batch, config.n_head, capacity, hs}, dtype));
  }
}

GPTAttention::GPTAttention(const GPTConfig& config, Generator* gen, bool init_weights)
    : n_head(config.n_head),
      attn_pdrop(config.attn_pdrop),
      scale_attn_weights(config.scale_attn_weights),
      gen(gen) {
  double std = config.initializer_range;
  double proj_std = std / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  c_attn = register_module(
      "c_attn", std::make_shared<Conv1D>(config.n_embd, 3 * config.n_embd, std, gen, init_weights));
  c_proj = register_module("c_proj", std::make_shared<Conv1D>(config.n_embd, config.n_embd,
                                                              proj_std, gen, init_weights));
  resid_dropout =
      register_module("resid_dropout", std::make_shared<nn::Dropout>(config.resid_pdrop, gen));
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
  double p = is_training() ? attn_pdrop : 0.0;
  Tensor y;
  if (k_cache == nullptr) {
    y = scaled_dot_product_attention(q, k, v, Tensor(), p, true, scale, gen);
  } else {
    // the new keys and values go straight into the preallocated cache; attention reads the
    // first past + T positions of it
    const int64_t L = past + T;
    k_cache->narrow(2, past, T).copy_(k);
    v_cache->narrow(2, past, T).copy_(v);
    Tensor k_all = k_cache->narrow(2, 0, L), v_all = v_cache->narrow(2, 0, L);
    if (past == 0) {
      y = scaled_dot_product_attention(q, k_all, v_all, Tensor(), p, true, scale, gen);
    } else if (T == 1) {
      y = scaled_dot_product_attention(q, k_all, v_all, Tensor(), p, false, scale, gen);
    } else {
      // query t sits at position past + t and attends keys s <= past + t (bottom-right aligned)
      Tensor s = arange(L).reshape({1, L});
      Tensor t = arange(static_cast<double>(past), static_cast<double>(L)).reshape({T, 1});
      y = scaled_dot_product_attention(q, k_all, v_all, le(s, t), p, false, scale, gen);
    }
  }
  y = y.transpose(1, 2).reshape({B, T, C});
  return resid_dropout->forward(c_proj->forward(y));
}

GPTMLP::GPTMLP(const GPTConfig& config, Generator* gen, bool init_weights)
    : activation(config.activation_function) {
  double std = config.initializer_range;
  double proj_std = std / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  c_fc = register_module(
      "c_fc", std::make_shared<Conv1D>(config.n_embd, config.inner_dim(), std, gen, init_weights));
  c_proj = register_module("c_proj", std::make_shared<Conv1D>(config.inner_dim(), config.n_embd,
                                                              proj_std, gen, init_weights));
  dropout = register_module("dropout", std::make_shared<nn::Dropout>(config.resid_pdrop, gen));
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

GPTBlock::GPTBlock(const GPTConfig& config, Generator* gen, bool init_weights) {
  ln_1 = register_module(
      "ln_1", std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.layer_norm_epsilon));
  attn = register_module("attn", std::make_shared<GPTAttention>(config, gen, init_weights));
  ln_2 = register_module(
      "ln_2", std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.layer_norm_epsilon));
  mlp = register_module("mlp", std::make_shared<GPTMLP>(config, gen, init_weights));
}

Tensor GPTBlock::forward(const Tensor& x, Tensor* k_cache, Tensor* v_cache, int64_t past) {
  Tensor h = add(x, attn->forward(ln_1->forward(x), k_cache, v_cache, past));
  return add(h, mlp->forward(ln_2->forward(h)));
}

GPTModel::GPTModel(const GPTConfig& config, Generator* gen, bool init_weights) {
  auto embedding = [&](const char* name, int64_t rows) {
    if (init_weights) {
      auto e = std::make_shared<nn::Embedding>(rows, config.n_embd, std::nullopt, gen);
      nn::init::normal_(e->weight, 0.0, config.initializer_range, gen);
      return register_module(name, e);
    }
    // a model about to be loaded: built with one row, then given its table unset, so that
    // no (V,C) N(0,1) draws are made only to be overwritten
    auto e = std::make_shared<nn::Embedding>(1, config.n_embd, std::nullopt, gen);
    e->weight = e->register_parameter("weight", empty({rows, config.n_embd}));
    e->num_embeddings = rows;
    return register_module(name, e);
  };
  wte = embedding("wte", config.vocab_size);
  wpe = embedding("wpe", config.n_positions);
  drop = register_module("drop", std::make_shared<nn::Dropout>(config.embd_pdrop, gen));
  h = register_module("h", std::make_shared<nn::ModuleList>());
  for (int64_t l = 0; l < config.n_layer; ++l)
    h->push_back(std::make_shared<GPTBlock>(config, gen, init_weights));
  ln_f = register_module(
      "ln_f", std::make_shared<nn::LayerNorm>(Shape{config.n_embd}, config.layer_norm_epsilon));
}

// ---- the language model

GPT::GPT(const GPTConfig& config, Generator* gen) : GPT(config, gen, true) {}

GPT::GPT(const GPTConfig& config, Generator* gen, bool init_weights) : config_(config) {
  config_.validate();
  transformer =
      register_module("transformer", std::make_shared<GPTModel>(config_, gen, init_weights));
  if (!config_.tie_word_embeddings) {
    lm_head_untied = register_module(
        "lm_head", std::make_shared<nn::Linear>(config_.n_embd, config_.vocab_size, false, gen));
    if (init_weights)
      nn::init::normal_(lm_head_untied->weight, 0.0, config_.initializer_range, gen);
  }
}

Tensor GPT::hidden_states(const Tensor& ids, KVCache* cache) {
  if (cache == nullptr) return run_body(ids, nullptr);
  NoGradGuard no_grad;  // the cache holds plain tensors: no graph through it
  return run_body(ids, cache);
}

Tensor GPT::run_body(const Tensor& ids_in, KVCache* cache) {
  MOXING_CHECK(ids_in.defined() && ids_in.dim() == 2, "GPT: ids must be 2-D (B,T), got shape {}",
               ids_in.defined() ? shape_str(ids_in.shape()) : std::string("undefined"));
  MOXING_CHECK(ids_in.dtype() == DType::i64 || ids_in.dtype() == DType::i32,
               "GPT: ids must be i64 or i32, got {}", dtype_name(ids_in.dtype()));
  Tensor ids = ids_in.to(DType::i64);
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  MOXING_CHECK(T > 0, "GPT: ids hold no positions (shape {})", shape_str(ids.shape()));
  MOXING_CHECK(past + T <= config_.n_positions,
               "GPT: {} positions exceed the model's context of n_positions = {} tokens", past + T,
               config_.n_positions);
  if (cache) {
    MOXING_CHECK(static_cast<int64_t>(cache->k.size()) == config_.n_layer &&
                     cache->k[0].size(0) == B && cache->k[0].size(1) == config_.n_head &&
                     cache->k[0].size(3) == config_.n_embd / config_.n_head,
                 "GPT: the KV cache was made for another model or batch size (ids {})",
                 shape_str(ids.shape()));
    MOXING_CHECK(past + T <= cache->capacity(),
                 "GPT: {} positions exceed the KV cache capacity of {}", past + T,
                 cache->capacity());
  }
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

Tensor GPT::lm_head(const Tensor& h) const {
  const Tensor& w = lm_head_untied ? lm_head_untied->weight : transformer->wte->weight;
  return matmul(h, w.t());  // (V,C) read transposed by the GEMM: no copy
}

Tensor GPT::forward(const Tensor& ids) { return lm_head(hidden_states(ids)); }

Tensor GPT::forward(const Tensor& ids, KVCache* cache) {
  NoGradGuard no_grad;
  return lm_head(hidden_states(ids, cache));
}

// ---- model directories

namespace {

// transformers' causal-mask buffers of older checkpoints; not weights
bool is_ignored_key(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias");
}

}  // namespace

std::shared_ptr<GPT> GPT::from_pretrained(const std::string& dir) {
  MOXING_CHECK(fs::is_directory(dir), "model directory {} does not exist", dir);
  fs::path config_path = fs::path(dir) / "config.json";
  fs::path weights_path = fs::path(dir) / "model.safetensors";
  MOXING_CHECK(fs::exists(config_path), "model directory {} has no config.json", dir);
  // the architecture first: a folder of another model fails on that, not on its files
  GPTConfig config;
  try {
    config = GPTConfig::from_json(read_text_file(config_path.string()));
  } catch (const Error& e) {
    // "config.json: ..." from from_json, with the file's full path
    std::string msg = e.what();
    const std::string prefix = "config.json:";
    if (msg.compare(0, prefix.size(), prefix) == 0) msg = msg.substr(prefix.size());
    fail("{}:{}", config_path.string(), msg);
  }
  if (!fs::exists(weights_path) && fs::exists(fs::path(dir) / "model.safetensors.index.json")) {
    fail(
        "model directory {} holds a sharded checkpoint (model.safetensors.index.json); moxing "
        "reads one model.safetensors",
        dir);
  }
  MOXING_CHECK(fs::exists(weights_path), "model directory {} has no model.safetensors", dir);
  SafetensorsFile file = load_safetensors(weights_path.string());
  std::shared_ptr<GPT> model(new GPT(config, nullptr, false));

  // a GPT2Model checkpoint (as openai-community/gpt2) names the body's tensors without the
  // "transformer." prefix
  auto find = [&](const std::string& name) -> const Tensor* {
    for (const auto& [n, t] : file.tensors) {
      if (n == name) return &t;
    }
    const std::string prefix = "transformer.";
    if (name.compare(0, prefix.size(), prefix) == 0) {
      std::string bare = name.substr(prefix.size());
      for (const auto& [n, t] : file.tensors) {
        if (n == bare) return &t;
      }
    }
    return nullptr;
  };
  nn::TensorList state;
  std::vector<std::string> missing, bad_shapes;
  std::set<std::string> known;
  for (const auto& [name, param] : model->state_dict()) {
    known.insert(name);
    const Tensor* t = find(name);
    if (t == nullptr) {
      missing.push_back(name);
    } else if (t->shape() != param.shape()) {
      bad_shapes.push_back(fmt::format("{}: expected {}, file has {}", name,
                                       shape_str(param.shape()), shape_str(t->shape())));
    } else {
      state.emplace_back(name, *t);
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : file.tensors) {
    bool ours = known.count(name) || known.count("transformer." + name);
    bool tied_head = name == "lm_head.weight" && config.tie_word_embeddings;
    if (!ours && !tied_head && !is_ignored_key(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !bad_shapes.empty() || !unexpected.empty()) {
    std::string msg =
        fmt::format("{} does not match {}:", weights_path.string(), config_path.string());
    if (!missing.empty()) msg += fmt::format("\nmissing tensors: {}", fmt::join(missing, ", "));
    for (const auto& line : bad_shapes) msg += "\n" + line;
    if (!unexpected.empty()) {
      msg += fmt::format("\nunexpected tensors: {}", fmt::join(unexpected, ", "));
    }
    throw Error(msg);
  }
  model->load_state_dict(state, {.strict = true, .convert_dtype = true});
  return model;
}

void GPT::save_pretrained(const std::string& dir) const {
  fs::create_directories(dir);
  std::string config_path = (fs::path(dir) / "config.json").string();
  std::string text = config_.to_json();
  detail::write_file_atomic(config_path, config_path + ".tmp", [&](int fd) {
    detail::write_all(fd, text.data(), text.size(), config_path);
  });
  NamedTensors tensors;
  for (const auto& [name, t] : state_dict()) tensors.emplace_back(name, t);
  save_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
}

}  // namespace moxing::models
