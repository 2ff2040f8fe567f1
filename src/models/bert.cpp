// BERT (transformers' BertModel, BertForSequenceClassification, BertForMaskedLM): config, the
// layers and the family. The transformers names are the module and parameter names
// themselves: the constructors below are the whole name mapping.
#include "moxing/models/bert.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/models/family.h"
#include "moxing/models/labels.h"
#include "moxing/nn/init.h"
#include "moxing/nn/layers.h"
#include "moxing/ops/attention.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

// ---- config

void BertConfig::after_read(const nlohmann::json& source) {
  resolve_labels(source, num_labels, id2label, label2id, "BertConfig");
}

void BertConfig::validate() const {
  for (auto [key, v] : {std::pair<const char*, int64_t>{"vocab_size", vocab_size},
                        {"hidden_size", hidden_size},
                        {"num_hidden_layers", num_hidden_layers},
                        {"num_attention_heads", num_attention_heads},
                        {"intermediate_size", intermediate_size},
                        {"max_position_embeddings", max_position_embeddings},
                        {"type_vocab_size", type_vocab_size}}) {
    MOXING_CHECK(v > 0, "BertConfig: {} must be positive, got {}", key, v);
  }
  MOXING_CHECK(hidden_size % num_attention_heads == 0,
               "BertConfig: hidden_size {} must be a multiple of num_attention_heads {}",
               hidden_size, num_attention_heads);
  MOXING_CHECK(hidden_act == "gelu" || hidden_act == "gelu_new" ||
                   hidden_act == "gelu_pytorch_tanh" || hidden_act == "relu",
               "BertConfig: hidden_act \"{}\" is not supported (moxing knows: gelu, gelu_new, "
               "gelu_pytorch_tanh, relu)",
               hidden_act);
  for (double p :
       {hidden_dropout_prob, attention_probs_dropout_prob, classifier_dropout.value_or(0.0)}) {
    MOXING_CHECK(p >= 0.0 && p < 1.0, "BertConfig: dropout probabilities must be in [0, 1), got {}",
                 p);
  }
  MOXING_CHECK(layer_norm_eps > 0, "BertConfig: layer_norm_eps must be positive, got {}",
               layer_norm_eps);
  MOXING_CHECK(pad_token_id >= 0 && pad_token_id < vocab_size,
               "BertConfig: pad_token_id {} is not an id of the vocabulary of {}", pad_token_id,
               vocab_size);
  MOXING_CHECK(position_embedding_type == "absolute",
               "BertConfig: position_embedding_type \"{}\" is not supported (moxing knows: "
               "absolute)",
               position_embedding_type);
  check_labels(num_labels, id2label, problem_type, "BertConfig");
}

std::vector<std::string> BertConfig::label_names() const {
  return models::label_names(num_labels, id2label);
}

// ---- layers

namespace {

// A plain module that only names a level of the parameter paths ("attention", "encoder").
class Folder : public nn::Module {
 public:
  explicit Folder(std::string type) : type_(std::move(type)) {}
  std::string type_name() const override { return type_; }

 private:
  std::string type_;
};

// Linear initialized as transformers initializes BERT's: W ~ N(0, std^2), b = 0.
std::shared_ptr<nn::Linear> bert_linear(int64_t in, int64_t out, const BertConfig& c,
                                        Generator* gen, bool bias = true) {
  auto l = std::make_shared<nn::Linear>(in, out, bias, gen);
  nn::init::normal_(l->weight, 0.0, c.initializer_range, gen);
  if (bias) nn::init::zeros_(l->bias);
  return l;
}

std::shared_ptr<nn::LayerNorm> bert_layer_norm(const BertConfig& c) {
  return std::make_shared<nn::LayerNorm>(Shape{c.hidden_size}, c.layer_norm_eps);
}

Tensor activate(const Tensor& x, const std::string& act) {
  if (act == "relu") return relu(x);
  if (act == "gelu") return gelu(x);
  return gelu(x, "tanh");  // gelu_new, gelu_pytorch_tanh
}

// ids-like i64 (B,T) checked against the input ids; undefined stays undefined
Tensor check_like_ids(const Tensor& t, const Tensor& ids, const char* what) {
  if (!t.defined()) return t;
  MOXING_CHECK(t.shape() == ids.shape(), "BERT: {} has shape {}, the input ids {}", what,
               shape_str(t.shape()), shape_str(ids.shape()));
  MOXING_CHECK(t.dtype() == DType::i64 || t.dtype() == DType::i32 || t.dtype() == DType::boolean,
               "BERT: {} must be integer or bool, got {}", what, dtype_name(t.dtype()));
  return t.dtype() == DType::i64 ? t : t.to(DType::i64);
}

}  // namespace

BertEmbeddings::BertEmbeddings(const BertConfig& c, Generator* gen) {
  auto embedding = [&](const char* name, int64_t rows, std::optional<int64_t> pad) {
    auto e = std::make_shared<nn::Embedding>(rows, c.hidden_size, pad, gen);
    nn::init::normal_(e->weight, 0.0, c.initializer_range, gen);
    if (pad && !e->weight.is_meta()) {
      NoGradGuard no_grad;
      e->weight.select(0, *pad).zero_();
    }
    return register_slot<nn::UnaryModule>(name, e);
  };
  word_embeddings = embedding("word_embeddings", c.vocab_size, c.pad_token_id);
  position_embeddings = embedding("position_embeddings", c.max_position_embeddings, std::nullopt);
  token_type_embeddings = embedding("token_type_embeddings", c.type_vocab_size, std::nullopt);
  LayerNorm = register_slot<nn::UnaryModule>("LayerNorm", bert_layer_norm(c));
  dropout = register_slot<nn::UnaryModule>("dropout",
                                           std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
}

Tensor BertEmbeddings::forward(const Tensor& ids, const Tensor& token_type_ids) {
  const int64_t T = ids.size(1);
  Tensor x = add(word_embeddings->forward(ids), position_embeddings->forward(arange(T)));
  Tensor types = token_type_ids.defined() ? token_type_ids : zeros(ids.shape(), DType::i64);
  x = add(x, token_type_embeddings->forward(types));
  return dropout->forward(LayerNorm->forward(x));
}

BertSelfAttention::BertSelfAttention(const BertConfig& c, Generator* gen)
    : num_heads(c.num_attention_heads), dropout_p(c.attention_probs_dropout_prob) {
  query =
      register_slot<nn::UnaryModule>("query", bert_linear(c.hidden_size, c.hidden_size, c, gen));
  key = register_slot<nn::UnaryModule>("key", bert_linear(c.hidden_size, c.hidden_size, c, gen));
  value =
      register_slot<nn::UnaryModule>("value", bert_linear(c.hidden_size, c.hidden_size, c, gen));
}

Tensor BertSelfAttention::forward(const Tensor& x, const Tensor& mask, const PackedTokens* packed) {
  const int64_t C = x.size(-1), NH = num_heads, HS = C / NH;
  const int64_t B = packed ? packed->B : x.size(0), T = packed ? packed->T : x.size(1);
  auto heads = [&](nn::Slot<nn::UnaryModule>& proj) {
    Tensor p = proj->forward(x);
    if (packed) p = index_add(zeros({B * T, C}, p.options()), 0, packed->index, p);
    return p.view({B, T, NH, HS}).transpose(1, 2);  // (B,NH,T,HS)
  };
  Tensor q = heads(query), k = heads(key), v = heads(value);
  Tensor y = scaled_dot_product_attention(q, k, v, mask, is_training() ? dropout_p : 0.0);
  if (packed) return index_select(y.transpose(1, 2).reshape({B * T, C}), 0, packed->index);
  return y.transpose(1, 2).reshape({B, T, C});
}

BertSublayerOutput::BertSublayerOutput(int64_t in, const BertConfig& c, Generator* gen,
                                       std::string type)
    : type_(std::move(type)) {
  dense = register_slot<nn::UnaryModule>("dense", bert_linear(in, c.hidden_size, c, gen));
  LayerNorm = register_slot<nn::UnaryModule>("LayerNorm", bert_layer_norm(c));
  dropout = register_slot<nn::UnaryModule>("dropout",
                                           std::make_shared<nn::Dropout>(c.hidden_dropout_prob));
}

Tensor BertSublayerOutput::forward(const Tensor& x, const Tensor& residual) {
  return LayerNorm->forward(add(dropout->forward(dense->forward(x)), residual));
}

BertLayer::BertLayer(const BertConfig& c, Generator* gen) : activation(c.hidden_act) {
  attention = register_module("attention", std::make_shared<Folder>("BertAttention"));
  self = attention->register_slot<BertSelfAttention>("self",
                                                     std::make_shared<BertSelfAttention>(c, gen));
  attention_output = attention->register_slot<BertSublayerOutput>(
      "output", std::make_shared<BertSublayerOutput>(c.hidden_size, c, gen));
  intermediate = register_module("intermediate", std::make_shared<Folder>("BertIntermediate"));
  intermediate_dense = intermediate->register_slot<nn::UnaryModule>(
      "dense", bert_linear(c.hidden_size, c.intermediate_size, c, gen));
  output = register_slot<BertSublayerOutput>(
      "output", std::make_shared<BertSublayerOutput>(c.intermediate_size, c, gen, "BertOutput"));
}

Tensor BertLayer::forward(const Tensor& x, const Tensor& mask, const PackedTokens* packed) {
  Tensor a = attention_output->forward(self->forward(x, mask, packed), x);
  Tensor h = activate(intermediate_dense->forward(a), activation);
  return output->forward(h, a);
}

BertModel::BertModel(const BertConfig& c, Generator* gen, bool with_pooler) : config_(c) {
  config_.validate();
  embeddings = register_module("embeddings", std::make_shared<BertEmbeddings>(c, gen));
  encoder = register_module("encoder", std::make_shared<Folder>("BertEncoder"));
  layer = encoder->register_module("layer", std::make_shared<nn::ModuleList>());
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    layer->push_back(std::make_shared<BertLayer>(c, gen));
  if (with_pooler) {
    pooler = register_module("pooler", std::make_shared<Folder>("BertPooler"));
    pooler_dense = pooler->register_slot<nn::UnaryModule>(
        "dense", bert_linear(c.hidden_size, c.hidden_size, c, gen));
  }
}

namespace {

// The real tokens of an attention mask (B,T), when some positions are padding: worth packing.
std::optional<PackedTokens> real_tokens(const Tensor& attention_mask) {
  const int64_t B = attention_mask.size(0), T = attention_mask.size(1);
  Tensor m = contiguous(attention_mask.to(DType::i64));
  const int64_t* p = m.data<int64_t>();
  std::vector<int64_t> index;
  index.reserve(static_cast<size_t>(B * T));
  for (int64_t i = 0; i < B * T; ++i) {
    if (p[i] != 0) index.push_back(i);
  }
  if (static_cast<int64_t>(index.size()) == B * T || index.empty()) return std::nullopt;
  const auto N = static_cast<int64_t>(index.size());
  return PackedTokens{from_vector(index, {N}), B, T};
}

}  // namespace

Tensor BertModel::encode(const EncoderInputs& in) {
  const Tensor& ids_in = in.input_ids;
  MOXING_CHECK(ids_in.defined() && ids_in.dim() == 2,
               "BERT: input ids must be 2-D (B,T), got shape {}",
               ids_in.defined() ? shape_str(ids_in.shape()) : std::string("undefined"));
  MOXING_CHECK(ids_in.dtype() == DType::i64 || ids_in.dtype() == DType::i32,
               "BERT: input ids must be i64 or i32, got {}", dtype_name(ids_in.dtype()));
  Tensor ids = ids_in.to(DType::i64);
  const int64_t B = ids.size(0), T = ids.size(1);
  MOXING_CHECK(T > 0, "BERT: the input ids hold no positions (shape {})", shape_str(ids.shape()));
  MOXING_CHECK(T <= config_.max_position_embeddings,
               "BERT: {} positions exceed the model's max_position_embeddings = {} (truncate the "
               "text)",
               T, config_.max_position_embeddings);
  Tensor types = check_like_ids(in.token_type_ids, ids, "token_type_ids");
  Tensor mask = check_like_ids(in.attention_mask, ids, "attention_mask");
  // keys a query may attend: (B,1,1,T), true for real tokens
  std::optional<PackedTokens> packed;
  if (in.skip_padding && mask.defined() && mask.device().type == DeviceType::cpu)
    packed = real_tokens(mask);
  if (mask.defined()) mask = ne(mask, zeros_like(mask)).view({B, 1, 1, T});
  Tensor x = embeddings->forward(ids, types);
  if (packed) x = index_select(x.reshape({B * T, x.size(2)}), 0, packed->index);
  for (size_t l = 0; l < layer->size(); ++l) {
    x = layer->at<BertLayer>(static_cast<int64_t>(l))
            ->forward(x, mask, packed ? &*packed : nullptr);
  }
  if (packed) {  // zeros at the padded positions
    const int64_t C = x.size(1);
    x = index_add(zeros({B * T, C}, x.options()), 0, packed->index, x).view({B, T, C});
  }
  return x;
}

Tensor BertModel::pool(const Tensor& hidden) const {
  MOXING_CHECK(pooler != nullptr, "BERT: this model was built without its pooler");
  return tanh(pooler_dense->forward(hidden.select(1, 0)));
}

// ---- heads

BertForSequenceClassification::BertForSequenceClassification(const BertConfig& c, Generator* gen)
    : config_(c) {
  bert = register_module("bert", std::make_shared<BertModel>(c, gen, true));
  dropout = register_slot<nn::UnaryModule>(
      "dropout",
      std::make_shared<nn::Dropout>(c.classifier_dropout.value_or(c.hidden_dropout_prob)));
  classifier = register_slot<nn::UnaryModule>("classifier",
                                              bert_linear(c.hidden_size, c.num_labels, c, gen));
}

Tensor BertForSequenceClassification::classify(const EncoderInputs& inputs) {
  return classifier->forward(dropout->forward(bert->pool(bert->encode(inputs))));
}

BertForMaskedLM::BertForMaskedLM(const BertConfig& c, Generator* gen)
    : activation_(c.hidden_act), config_(c) {
  bert = register_module("bert", std::make_shared<BertModel>(c, gen, false));
  cls = register_module("cls", std::make_shared<Folder>("BertOnlyMLMHead"));
  predictions =
      cls->register_module("predictions", std::make_shared<Folder>("BertLMPredictionHead"));
  // cls.predictions.bias first: the name a saved file keeps for the decoder's tied bias
  Tensor bias = predictions->register_parameter("bias", zeros({c.vocab_size}));
  transform = predictions->register_module("transform",
                                           std::make_shared<Folder>("BertPredictionHeadTransform"));
  transform_dense = transform->register_slot<nn::UnaryModule>(
      "dense", bert_linear(c.hidden_size, c.hidden_size, c, gen));
  transform_LayerNorm = transform->register_slot<nn::UnaryModule>("LayerNorm", bert_layer_norm(c));
  std::shared_ptr<nn::Linear> linear;
  if (c.tie_word_embeddings) {
    {
      DeviceGuard meta(kMeta);  // no (V,C) table drawn only to be replaced by the embeddings'
      linear = std::make_shared<nn::Linear>(c.hidden_size, c.vocab_size, false, gen);
    }
    linear->weight = linear->register_parameter(
        "weight", bert->embeddings->word_embeddings.as<nn::Embedding>()->weight);
  } else {
    linear = bert_linear(c.hidden_size, c.vocab_size, c, gen, false);
  }
  linear->bias = linear->register_parameter("bias", bias);
  decoder = predictions->register_slot<nn::UnaryModule>("decoder", linear);
}

Tensor BertForMaskedLM::predict(const Tensor& hidden) {
  Tensor h = activate(transform_dense->forward(hidden), activation_);
  return decoder->forward(transform_LayerNorm->forward(h));
}

Tensor BertForMaskedLM::mlm_logits(const EncoderInputs& inputs) {
  return predict(bert->encode(inputs));
}

Tensor BertForMaskedLM::mlm_logits_at(const EncoderInputs& inputs, const Tensor& positions) {
  Tensor h = bert->encode(inputs);  // (B,T,C)
  return predict(index_select(h.reshape({h.size(0) * h.size(1), h.size(2)}), 0, positions));
}

// ---- the family

namespace {

Family make_bert_family() {
  Family f = make_family<BertConfig>(
      "bert", {},
      {{"BertModel", "feature-extraction"},
       {"BertForSequenceClassification", "sequence-classification"},
       {"BertForMaskedLM", "masked-lm"}},
      [](const BertConfig& c, const std::string& arch,
         Generator* gen) -> std::shared_ptr<nn::Module> {
        if (arch == "BertForSequenceClassification") {
          return std::make_shared<BertForSequenceClassification>(c, gen);
        }
        if (arch == "BertForMaskedLM") return std::make_shared<BertForMaskedLM>(c, gen);
        return std::make_shared<BertModel>(c, gen, true);
      },
      [](const BertConfig& c) {
        return fmt::format("BERT with {} layers, {} heads, width {}, {} positions",
                           c.num_hidden_layers, c.num_attention_heads, c.hidden_size,
                           c.max_position_embeddings);
      });
  f.data_keys = {"vocab_size", "pad_token_id", "num_labels", "id2label", "label2id"};
  f.shorthands = {{"dropout", {"hidden_dropout_prob", "attention_probs_dropout_prob"}}};
  // a BertModel folder (sentence encoders) names the body without "bert.": it loads into a
  // head's model (fine-tuning), which is also a TextEncoder
  f.rules.optional_prefixes = {"bert."};
  // buffers of older checkpoints: not weights
  f.rules.ignored_suffixes = {"embeddings.position_ids"};
  return f;
}

}  // namespace

MOXING_REGISTER_FAMILY(make_bert_family);

}  // namespace moxing::models
