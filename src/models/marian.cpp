// Marian (transformers' MarianMTModel): the config, the layers, teacher forcing and cached
// decoding, and the family. The transformers names are the module and parameter names
// themselves; the family's rules skip the sinusoidal tables older files hold.
#include "moxing/models/marian.h"

#include <cmath>

#include "moxing/autograd/node.h"
#include "moxing/models/family.h"
#include "moxing/nn/init.h"
#include "moxing/ops/attention.h"
#include "moxing/ops/dropout.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

// ---- config

namespace {

const char* kKnownActivations[] = {"gelu", "gelu_new", "relu", "swish", "silu"};

}  // namespace

int64_t MarianConfig::target_vocab_size() const {
  if (share_encoder_decoder_embeddings || !decoder_vocab_size) return vocab_size;
  return *decoder_vocab_size;
}

void MarianConfig::validate() const {
  MOXING_CHECK(vocab_size > 0 && target_vocab_size() > 0,
               "MarianConfig: vocab_size ({}) and decoder_vocab_size ({}) must be positive",
               vocab_size, target_vocab_size());
  MOXING_CHECK(
      !share_encoder_decoder_embeddings || !decoder_vocab_size || *decoder_vocab_size == vocab_size,
      "MarianConfig: shared embeddings need decoder_vocab_size = vocab_size ({}), got {}",
      vocab_size, decoder_vocab_size.value_or(0));
  MOXING_CHECK(max_position_embeddings > 0,
               "MarianConfig: max_position_embeddings must be positive, got {}",
               max_position_embeddings);
  MOXING_CHECK(encoder_layers > 0 && decoder_layers > 0,
               "MarianConfig: encoder_layers ({}) and decoder_layers ({}) must be positive",
               encoder_layers, decoder_layers);
  for (int64_t heads : {encoder_attention_heads, decoder_attention_heads}) {
    MOXING_CHECK(heads > 0 && d_model > 0 && d_model % heads == 0,
                 "MarianConfig: d_model {} must be a positive multiple of the attention heads {}",
                 d_model, heads);
  }
  MOXING_CHECK(encoder_ffn_dim > 0 && decoder_ffn_dim > 0,
               "MarianConfig: encoder_ffn_dim ({}) and decoder_ffn_dim ({}) must be positive",
               encoder_ffn_dim, decoder_ffn_dim);
  bool known = false;
  for (const char* a : kKnownActivations) known = known || activation_function == a;
  MOXING_CHECK(known,
               "MarianConfig: activation_function \"{}\" is not supported (moxing knows: gelu, "
               "gelu_new, relu, swish, silu)",
               activation_function);
  for (double p : {dropout, attention_dropout, activation_dropout}) {
    MOXING_CHECK(p >= 0.0 && p < 1.0,
                 "MarianConfig: dropout probabilities must be in [0, 1), got {}", p);
  }
  MOXING_CHECK(encoder_layerdrop == 0.0 && decoder_layerdrop == 0.0,
               "MarianConfig: layerdrop is not supported (encoder_layerdrop {}, "
               "decoder_layerdrop {})",
               encoder_layerdrop, decoder_layerdrop);
  MOXING_CHECK(is_encoder_decoder, "MarianConfig: is_encoder_decoder must be true");
  MOXING_CHECK(position_embeddings == "sinusoidal" || position_embeddings == "learned",
               "MarianConfig: position_embeddings must be \"sinusoidal\" or \"learned\", got "
               "\"{}\"",
               position_embeddings);
  const int64_t V = target_vocab_size();
  for (auto [name, id, vocab] :
       {std::tuple<const char*, int64_t, int64_t>{"pad_token_id", pad_token_id, V},
        {"eos_token_id", eos_token_id, V},
        {"decoder_start_token_id", decoder_start_token_id, V}}) {
    MOXING_CHECK(id >= 0 && id < vocab, "MarianConfig: {} {} is outside the vocabulary of {}", name,
                 id, vocab);
  }
  MOXING_CHECK(pad_token_id < vocab_size,
               "MarianConfig: pad_token_id {} is outside the source vocabulary of {}", pad_token_id,
               vocab_size);
}

Tensor marian_sinusoidal_positions(int64_t n_pos, int64_t dim) {
  const int64_t half = (dim + 1) / 2;  // sin columns; dim - half cos columns
  std::vector<float> out(static_cast<size_t>(n_pos * dim));
  for (int64_t p = 0; p < n_pos; ++p) {
    for (int64_t c = 0; c < dim; ++c) {
      const int64_t j = c < half ? c : c - half;
      const double angle = static_cast<double>(p) / std::pow(10000.0, 2.0 * static_cast<double>(j) /
                                                                          static_cast<double>(dim));
      out[static_cast<size_t>(p * dim + c)] =
          static_cast<float>(c < half ? std::sin(angle) : std::cos(angle));
    }
  }
  return from_vector(out, {n_pos, dim});
}

// ---- layers

namespace {

// W ~ N(0, std^2), b = 0, as transformers' _init_weights
std::shared_ptr<nn::Linear> marian_linear(int64_t in, int64_t out, double std, Generator* gen,
                                          bool bias = true) {
  auto l = std::make_shared<nn::Linear>(in, out, bias, gen);
  nn::init::normal_(l->weight, 0.0, std, gen);
  if (bias) nn::init::zeros_(l->bias);
  return l;
}

std::shared_ptr<nn::Embedding> marian_embedding(int64_t rows, const MarianConfig& c,
                                                Generator* gen) {
  auto e = std::make_shared<nn::Embedding>(rows, c.d_model, c.pad_token_id, gen);
  nn::init::normal_(e->weight, 0.0, c.init_std, gen);
  NoGradGuard no_grad;
  e->weight.select(0, c.pad_token_id).zero_();
  return e;
}

// An embedding whose table is `weight` (tied): built on meta so no table is drawn for nothing.
std::shared_ptr<nn::Embedding> tied_embedding(const Tensor& weight, int64_t padding_idx) {
  std::shared_ptr<nn::Embedding> e;
  {
    DeviceGuard meta(kMeta);
    e = std::make_shared<nn::Embedding>(weight.size(0), weight.size(1), padding_idx);
  }
  e->weight = e->register_parameter("weight", weight);
  return e;
}

std::shared_ptr<nn::LayerNorm> layer_norm(int64_t C) {
  return std::make_shared<nn::LayerNorm>(Shape{C}, 1e-5);
}

Tensor activate(const Tensor& x, const std::string& activation) {
  if (activation == "relu") return relu(x);
  if (activation == "swish" || activation == "silu") return silu(x);
  if (activation == "gelu_new") return gelu(x, "tanh");
  return gelu(x);
}

// (B,S) nonzero at real tokens -> (B,1,1,S) bool; undefined stays undefined
Tensor key_padding_mask(const Tensor& mask, const Tensor& ids) {
  if (!mask.defined()) return mask;
  MOXING_CHECK(mask.dim() == 2 && mask.size(0) == ids.size(0) && mask.size(1) == ids.size(1),
               "Marian: the source mask {} must have the source ids' shape {}",
               shape_str(mask.shape()), shape_str(ids.shape()));
  return ne(mask, zeros_like(mask)).view({mask.size(0), 1, 1, mask.size(1)});
}

}  // namespace

MarianAttention::MarianAttention(int64_t d_model, int64_t n_head, double dropout, double init_std,
                                 Generator* gen)
    : n_head(n_head), dropout_p(dropout) {
  k_proj = register_slot<nn::UnaryModule>("k_proj", marian_linear(d_model, d_model, init_std, gen));
  v_proj = register_slot<nn::UnaryModule>("v_proj", marian_linear(d_model, d_model, init_std, gen));
  q_proj = register_slot<nn::UnaryModule>("q_proj", marian_linear(d_model, d_model, init_std, gen));
  out_proj =
      register_slot<nn::UnaryModule>("out_proj", marian_linear(d_model, d_model, init_std, gen));
}

Tensor MarianAttention::heads(const Tensor& x) const {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  return x.view({B, T, n_head, C / n_head}).transpose(1, 2);
}

std::pair<Tensor, Tensor> MarianAttention::keys_values(const Tensor& kv) {
  return {heads(k_proj->forward(kv)), heads(v_proj->forward(kv))};
}

// softmax(q k^T / sqrt(HS) + mask) v, as transformers' eager attention (q scaled first)
Tensor MarianAttention::attend(const Tensor& x, const Tensor& k, const Tensor& v,
                               const Tensor& mask, bool causal) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  Tensor q = heads(q_proj->forward(x));
  Tensor y = scaled_dot_product_attention(q, k, v, mask, is_training() ? dropout_p : 0.0, causal);
  return out_proj->forward(y.transpose(1, 2).reshape({B, T, C}));
}

Tensor MarianAttention::forward(const Tensor& x, const Tensor& kv, const Tensor& mask,
                                bool causal) {
  auto [k, v] = keys_values(kv);
  return attend(x, k, v, mask, causal);
}

Tensor MarianAttention::forward_cached(const Tensor& x, Tensor& k_cache, Tensor& v_cache,
                                       int64_t past) {
  const int64_t T = x.size(1), L = past + T;
  auto [k, v] = keys_values(x);
  k_cache.narrow(2, past, T).copy_(k);
  v_cache.narrow(2, past, T).copy_(v);
  Tensor k_all = k_cache.narrow(2, 0, L), v_all = v_cache.narrow(2, 0, L);
  if (past == 0) return attend(x, k_all, v_all, Tensor(), true);
  if (T == 1) return attend(x, k_all, v_all, Tensor(), false);
  // query t sits at position past + t and attends keys s <= past + t
  Tensor s = arange(L).reshape({1, L});
  Tensor t = arange(static_cast<double>(past), static_cast<double>(L)).reshape({T, 1});
  return attend(x, k_all, v_all, le(s, t), false);
}

MarianEncoderLayer::MarianEncoderLayer(const MarianConfig& c, Generator* gen)
    : activation(c.activation_function),
      dropout(c.dropout),
      activation_dropout(c.activation_dropout) {
  self_attn = register_slot<MarianAttention>(
      "self_attn", std::make_shared<MarianAttention>(c.d_model, c.encoder_attention_heads,
                                                     c.attention_dropout, c.init_std, gen));
  self_attn_layer_norm =
      register_slot<nn::UnaryModule>("self_attn_layer_norm", layer_norm(c.d_model));
  fc1 = register_slot<nn::UnaryModule>(
      "fc1", marian_linear(c.d_model, c.encoder_ffn_dim, c.init_std, gen));
  fc2 = register_slot<nn::UnaryModule>(
      "fc2", marian_linear(c.encoder_ffn_dim, c.d_model, c.init_std, gen));
  final_layer_norm = register_slot<nn::UnaryModule>("final_layer_norm", layer_norm(c.d_model));
}

// h = LN(x + drop(attn(x))); y = LN(h + drop(fc2(drop(act(fc1(h))))))
Tensor MarianEncoderLayer::forward(const Tensor& x, const Tensor& mask) {
  const bool train = is_training();
  Tensor h = add(x, moxing::dropout(self_attn->forward(x, x, mask, false), dropout, train));
  h = self_attn_layer_norm->forward(h);
  Tensor f = activate(fc1->forward(h), activation);
  f = fc2->forward(moxing::dropout(f, activation_dropout, train));
  return final_layer_norm->forward(add(h, moxing::dropout(f, dropout, train)));
}

MarianDecoderLayer::MarianDecoderLayer(const MarianConfig& c, Generator* gen)
    : activation(c.activation_function),
      dropout(c.dropout),
      activation_dropout(c.activation_dropout) {
  auto attention = [&] {
    return std::make_shared<MarianAttention>(c.d_model, c.decoder_attention_heads,
                                             c.attention_dropout, c.init_std, gen);
  };
  self_attn = register_slot<MarianAttention>("self_attn", attention());
  self_attn_layer_norm =
      register_slot<nn::UnaryModule>("self_attn_layer_norm", layer_norm(c.d_model));
  encoder_attn = register_slot<MarianAttention>("encoder_attn", attention());
  encoder_attn_layer_norm =
      register_slot<nn::UnaryModule>("encoder_attn_layer_norm", layer_norm(c.d_model));
  fc1 = register_slot<nn::UnaryModule>(
      "fc1", marian_linear(c.d_model, c.decoder_ffn_dim, c.init_std, gen));
  fc2 = register_slot<nn::UnaryModule>(
      "fc2", marian_linear(c.decoder_ffn_dim, c.d_model, c.init_std, gen));
  final_layer_norm = register_slot<nn::UnaryModule>("final_layer_norm", layer_norm(c.d_model));
}

Tensor MarianDecoderLayer::feed_forward(const Tensor& h) {
  const bool train = is_training();
  Tensor f = activate(fc1->forward(h), activation);
  f = fc2->forward(moxing::dropout(f, activation_dropout, train));
  return final_layer_norm->forward(add(h, moxing::dropout(f, dropout, train)));
}

Tensor MarianDecoderLayer::forward(const Tensor& x, const Tensor& memory,
                                   const Tensor& memory_mask) {
  const bool train = is_training();
  Tensor h = add(x, moxing::dropout(self_attn->forward(x, x, Tensor(), true), dropout, train));
  h = self_attn_layer_norm->forward(h);
  h = add(h, moxing::dropout(encoder_attn->forward(h, memory, memory_mask, false), dropout, train));
  return feed_forward(encoder_attn_layer_norm->forward(h));
}

Tensor MarianDecoderLayer::forward_cached(const Tensor& x, Seq2SeqCache& cache, size_t l,
                                          int64_t past) {
  Tensor h = add(x, self_attn->forward_cached(x, cache.self.k[l], cache.self.v[l], past));
  h = self_attn_layer_norm->forward(h);
  h = add(h, encoder_attn->attend(h, cache.cross_k[l], cache.cross_v[l], cache.memory_mask, false));
  return feed_forward(encoder_attn_layer_norm->forward(h));
}

MarianStack::MarianStack(const MarianConfig& c, bool decoder, std::shared_ptr<nn::Embedding> embed,
                         Generator* gen)
    : decoder_(decoder),
      scale_(c.scale_embedding ? std::sqrt(static_cast<double>(c.d_model)) : 1.0),
      dropout_(c.dropout),
      max_positions_(c.max_position_embeddings) {
  embed_tokens = register_slot<nn::UnaryModule>("embed_tokens", std::move(embed));
  if (c.position_embeddings == "learned") {
    embed_positions = register_module(
        "embed_positions",
        std::make_shared<nn::Embedding>(c.max_position_embeddings, c.d_model, std::nullopt, gen));
    nn::init::normal_(embed_positions->weight, 0.0, c.init_std, gen);
  }
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  const int64_t L = decoder ? c.decoder_layers : c.encoder_layers;
  for (int64_t l = 0; l < L; ++l) {
    if (decoder) {
      layers->push_back(std::make_shared<MarianDecoderLayer>(c, gen));
    } else {
      layers->push_back(std::make_shared<MarianEncoderLayer>(c, gen));
    }
  }
}

Tensor MarianStack::embed(const Tensor& ids, int64_t past) {
  const int64_t T = ids.size(1);
  Tensor x = embed_tokens->forward(ids);  // (B,T,C)
  if (scale_ != 1.0) x = mul(x, scale_);
  if (embed_positions != nullptr) {
    x = add(x, embed_positions->weight.narrow(0, past, T));
  } else {
    if (!positions_.defined() || positions_.device() != x.device() ||
        positions_.dtype() != x.dtype()) {
      positions_ = marian_sinusoidal_positions(max_positions_, x.size(2)).to(x.device(), x.dtype());
    }
    x = add(x, positions_.narrow(0, past, T));
  }
  return moxing::dropout(x, dropout_, is_training());
}

MarianModel::MarianModel(const MarianConfig& c, Generator* gen) {
  std::shared_ptr<nn::Embedding> enc_embed, dec_embed;
  if (c.share_encoder_decoder_embeddings) {
    auto shared = register_module("shared", marian_embedding(c.vocab_size, c, gen));
    enc_embed = tied_embedding(shared->weight, c.pad_token_id);
    dec_embed = tied_embedding(shared->weight, c.pad_token_id);
  } else {
    enc_embed = marian_embedding(c.vocab_size, c, gen);
    dec_embed = marian_embedding(c.target_vocab_size(), c, gen);
  }
  encoder = register_module("encoder", std::make_shared<MarianStack>(c, false, enc_embed, gen));
  decoder = register_module("decoder", std::make_shared<MarianStack>(c, true, dec_embed, gen));
}

// ---- the translation model

MarianMTModel::MarianMTModel(const MarianConfig& config, Generator* gen) : config_(config) {
  config_.validate();
  model = register_module("model", std::make_shared<MarianModel>(config_, gen));
  const int64_t V = config_.target_vocab_size();
  std::shared_ptr<nn::Linear> linear;
  if (config_.tie_word_embeddings) {
    const Tensor& table = model->decoder->embed_tokens.as<nn::Embedding>()->weight;
    {
      DeviceGuard meta(kMeta);  // no (V,C) table drawn only to be replaced by the embedding's
      linear = std::make_shared<nn::Linear>(config_.d_model, V, false, gen);
    }
    linear->weight = linear->register_parameter("weight", table);
  } else {
    linear = marian_linear(config_.d_model, V, config_.init_std, gen, false);
  }
  head = register_slot<nn::UnaryModule>("lm_head", linear);
  final_logits_bias = register_buffer("final_logits_bias", zeros({1, V}));
}

Tensor MarianMTModel::ids_checked(const Tensor& ids, const char* what, int64_t past) const {
  MOXING_CHECK(ids.defined() && ids.dim() == 2, "Marian: {} ids must be 2-D (B,T), got shape {}",
               what, ids.defined() ? shape_str(ids.shape()) : std::string("undefined"));
  MOXING_CHECK(ids.dtype() == DType::i64 || ids.dtype() == DType::i32,
               "Marian: {} ids must be i64 or i32, got {}", what, dtype_name(ids.dtype()));
  MOXING_CHECK(ids.size(1) > 0, "Marian: {} ids hold no positions (shape {})", what,
               shape_str(ids.shape()));
  MOXING_CHECK(past + ids.size(1) <= config_.max_position_embeddings,
               "Marian: {} positions of the {} exceed the model's max_position_embeddings = {}",
               past + ids.size(1), what, config_.max_position_embeddings);
  return ids.to(DType::i64);
}

Tensor MarianMTModel::lm_head(const Tensor& h) {
  return add(head->forward(h), final_logits_bias.view({final_logits_bias.size(1)}));
}

Tensor MarianMTModel::encode(const Tensor& src_ids, const Tensor& src_mask) {
  Tensor ids = ids_checked(src_ids, "source", 0);
  Tensor mask = key_padding_mask(src_mask, ids);
  Tensor x = model->encoder->embed(ids, 0);
  for (size_t l = 0; l < model->encoder->layers->size(); ++l) {
    x = model->encoder->layers->at<MarianEncoderLayer>(static_cast<int64_t>(l))->forward(x, mask);
  }
  return x;
}

Tensor MarianMTModel::decoder_states(const Tensor& tgt_ids, const Tensor& memory,
                                     const Tensor& src_mask) {
  Tensor ids = ids_checked(tgt_ids, "target", 0);
  MOXING_CHECK(memory.dim() == 3 && memory.size(0) == ids.size(0),
               "Marian: memory {} does not match the target batch {}", shape_str(memory.shape()),
               shape_str(ids.shape()));
  Tensor mask;
  if (src_mask.defined()) {
    MOXING_CHECK(src_mask.dim() == 2 && src_mask.size(0) == memory.size(0) &&
                     src_mask.size(1) == memory.size(1),
                 "Marian: the source mask {} does not match the memory {}",
                 shape_str(src_mask.shape()), shape_str(memory.shape()));
    mask = ne(src_mask, zeros_like(src_mask)).view({src_mask.size(0), 1, 1, src_mask.size(1)});
  }
  Tensor x = model->decoder->embed(ids, 0);
  for (size_t l = 0; l < model->decoder->layers->size(); ++l) {
    x = model->decoder->layers->at<MarianDecoderLayer>(static_cast<int64_t>(l))
            ->forward(x, memory, mask);
  }
  return x;
}

Tensor MarianMTModel::forward(const Tensor& src_ids, const Tensor& src_mask,
                              const Tensor& tgt_ids) {
  return decode(tgt_ids, encode(src_ids, src_mask), src_mask);
}

Seq2SeqCache MarianMTModel::make_cache(const Tensor& memory, const Tensor& src_mask,
                                       int64_t capacity) {
  NoGradGuard no_grad;
  MOXING_CHECK(memory.dim() == 3 && memory.size(2) == config_.d_model,
               "Marian: memory must be (B,S,{}), got {}", config_.d_model,
               shape_str(memory.shape()));
  const int64_t B = memory.size(0);
  Seq2SeqCache cache;
  if (src_mask.defined()) {
    MOXING_CHECK(src_mask.dim() == 2 && src_mask.size(0) == B && src_mask.size(1) == memory.size(1),
                 "Marian: the source mask {} does not match the memory {}",
                 shape_str(src_mask.shape()), shape_str(memory.shape()));
    cache.memory_mask = ne(src_mask, zeros_like(src_mask)).view({B, 1, 1, src_mask.size(1)});
  }
  for (size_t l = 0; l < model->decoder->layers->size(); ++l) {
    auto layer = model->decoder->layers->at<MarianDecoderLayer>(static_cast<int64_t>(l));
    auto [k, v] = layer->encoder_attn->keys_values(memory);
    cache.cross_k.push_back(k.contiguous());
    cache.cross_v.push_back(v.contiguous());
  }
  const int64_t NH = config_.decoder_attention_heads;
  cache.self = KVCache(config_.decoder_layers, B, NH,
                       capacity > 0 ? std::min(capacity, config_.max_position_embeddings)
                                    : config_.max_position_embeddings,
                       config_.d_model / NH, memory.dtype());
  return cache;
}

Tensor MarianMTModel::decode_step(const Tensor& tgt_ids, Seq2SeqCache& cache) {
  NoGradGuard no_grad;
  const int64_t past = cache.self.length;
  Tensor ids = ids_checked(tgt_ids, "target", past);
  MOXING_CHECK(!cache.cross_k.empty() && cache.cross_k[0].size(0) == ids.size(0),
               "Marian: the decoding cache was made for another batch (ids {})",
               shape_str(ids.shape()));
  MOXING_CHECK(past + ids.size(1) <= cache.self.capacity(),
               "Marian: {} target positions exceed the decoding cache's capacity of {}",
               past + ids.size(1), cache.self.capacity());
  Tensor x = model->decoder->embed(ids, past);
  for (size_t l = 0; l < model->decoder->layers->size(); ++l) {
    x = model->decoder->layers->at<MarianDecoderLayer>(static_cast<int64_t>(l))
            ->forward_cached(x, cache, l, past);
  }
  cache.self.length += ids.size(1);
  return lm_head(x);
}

void Seq2SeqCache::select_rows(const Tensor& index) {
  NoGradGuard no_grad;
  for (auto* list : {&cross_k, &cross_v, &self.k, &self.v}) {
    for (Tensor& t : *list) t = index_select(t, 0, index).contiguous();
  }
  if (memory_mask.defined()) memory_mask = index_select(memory_mask, 0, index).contiguous();
}

// ---- the family

namespace {

Family make_marian_family() {
  Family f = make_family<MarianConfig>(
      "marian", {"seq2seq"}, {{"MarianMTModel", "translate"}},
      [](const MarianConfig& c, const std::string&, Generator* gen) -> std::shared_ptr<nn::Module> {
        return std::make_shared<MarianMTModel>(c, gen);
      },
      [](const MarianConfig& c) {
        return fmt::format(
            "Marian encoder-decoder with {}+{} layers, {} heads, width {}, feed-forward {}, {} "
            "vocabulary of {}{}{}",
            c.encoder_layers, c.decoder_layers, c.encoder_attention_heads, c.d_model,
            c.encoder_ffn_dim, c.share_encoder_decoder_embeddings ? "a shared" : "a source",
            c.vocab_size,
            c.share_encoder_decoder_embeddings
                ? std::string()
                : fmt::format(" and a target vocabulary of {}", c.target_vocab_size()),
            c.position_embeddings == "learned"
                ? ", learned positions (a moxing extension: transformers would use sinusoidal "
                  "ones)"
                : "");
      });
  f.data_keys = {"vocab_size",   "decoder_vocab_size", "share_encoder_decoder_embeddings",
                 "pad_token_id", "eos_token_id",       "decoder_start_token_id"};
  // the sinusoidal tables are computed, not weights (transformers 5 no longer saves them);
  // learned tables are parameters of the model and load as such
  f.rules.ignored_suffixes = {".embed_positions.weight"};
  return f;
}

}  // namespace

MOXING_REGISTER_FAMILY(make_marian_family);

}  // namespace moxing::models
