// The "lstm" family (see moxing/models/lstm.h): config, the shared body, the language model
// with its recurrent-state cache, the classifier with its pooling, and the registration.
#include "moxing/models/lstm.h"

#include <fmt/format.h>

#include "moxing/autograd/node.h"
#include "moxing/core/error.h"
#include "moxing/models/family.h"
#include "moxing/models/labels.h"
#include "moxing/nn/init.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/reduction.h"

namespace moxing::models {

namespace {

const char* kCells[] = {"lstm", "gru", "rnn_tanh", "rnn_relu"};
const char* kPoolings[] = {"max", "mean", "last"};

template <size_t N>
bool one_of(const std::string& v, const char* (&set)[N]) {
  for (const char* s : set) {
    if (v == s) return true;
  }
  return false;
}

}  // namespace

void LSTMConfig::after_read(const nlohmann::json& source) {
  resolve_labels(source, num_labels, id2label, label2id, "LSTMConfig");
}

void LSTMConfig::validate() const {
  for (auto [key, v] : {std::pair<const char*, int64_t>{"vocab_size", vocab_size},
                        {"embedding_size", embedding_size},
                        {"hidden_size", hidden_size},
                        {"num_layers", num_layers}}) {
    MOXING_CHECK(v > 0, "LSTMConfig: {} must be positive, got {}", key, v);
  }
  MOXING_CHECK(one_of(cell, kCells),
               "LSTMConfig: cell \"{}\" is not known (valid: lstm, gru, rnn_tanh, rnn_relu)", cell);
  MOXING_CHECK(one_of(pooling, kPoolings),
               "LSTMConfig: pooling \"{}\" is not known (valid: max, mean, last)", pooling);
  MOXING_CHECK(dropout >= 0.0 && dropout < 1.0, "LSTMConfig: dropout must be in [0, 1), got {}",
               dropout);
  MOXING_CHECK(init_range > 0.0, "LSTMConfig: init_range must be positive, got {}", init_range);
  MOXING_CHECK(!tie_word_embeddings || embedding_size == hidden_size,
               "LSTMConfig: tie_word_embeddings needs embedding_size ({}) == hidden_size ({})",
               embedding_size, hidden_size);
  for (auto [key, v] : {std::pair<const char*, int64_t>{"pad_token_id", pad_token_id},
                        {"bos_token_id", bos_token_id},
                        {"eos_token_id", eos_token_id}}) {
    MOXING_CHECK(v >= 0 && v < vocab_size, "LSTMConfig: {} {} is not an id of the vocabulary of {}",
                 key, v, vocab_size);
  }
  check_labels(num_labels, id2label, problem_type, "LSTMConfig");
}

// ---- body

LSTMBody::LSTMBody(const LSTMConfig& c, bool bidirectional, Generator* gen) {
  auto emb = std::make_shared<nn::Embedding>(c.vocab_size, c.embedding_size, std::nullopt, gen);
  nn::init::uniform_(emb->weight, -c.init_range, c.init_range, gen);
  embedding = register_slot<nn::UnaryModule>("embedding", emb);
  dropout = register_slot<nn::UnaryModule>("dropout", std::make_shared<nn::Dropout>(c.dropout));
  nn::RNNOptions o;
  o.input_size = c.embedding_size;
  o.hidden_size = c.hidden_size;
  o.num_layers = c.num_layers;
  o.batch_first = true;
  o.dropout = c.num_layers > 1 ? c.dropout : 0.0;
  o.bidirectional = bidirectional;
  if (c.cell == "lstm") {
    rnn = std::make_shared<nn::LSTM>(o, gen);
  } else if (c.cell == "gru") {
    rnn = std::make_shared<nn::GRU>(o, gen);
  } else {
    o.nonlinearity = c.cell == "rnn_relu" ? "relu" : "tanh";
    rnn = std::make_shared<nn::RNN>(o, gen);
  }
  register_module("rnn", rnn);
}

nn::RNNOutput LSTMBody::forward(const Tensor& ids, const Tensor& lengths, const Tensor& h0,
                                const Tensor& c0) {
  Tensor x = dropout->forward(embedding->forward(ids));  // (B,T,E)
  nn::RNNOutput out;
  if (auto* lstm = dynamic_cast<nn::LSTM*>(rnn.get())) {
    out = lstm->forward(x, h0, c0, lengths);
  } else if (auto* gru = dynamic_cast<nn::GRU*>(rnn.get())) {
    out = gru->forward(x, h0, lengths);
  } else {
    out = dynamic_cast<nn::RNN&>(*rnn).forward(x, h0, lengths);
  }
  out.output = dropout->forward(out.output);
  return out;
}

// ---- language model

LSTMForCausalLM::LSTMForCausalLM(const LSTMConfig& c, Generator* gen) : config_(c) {
  MOXING_CHECK(!c.bidirectional,
               "LSTMForCausalLM: a language model reads left to right; set bidirectional = false");
  body = register_module("body", std::make_shared<LSTMBody>(c, false, gen));
  std::shared_ptr<nn::Linear> linear;
  if (c.tie_word_embeddings) {
    {
      DeviceGuard meta(kMeta);  // no (V,H) table drawn only to be replaced by the embeddings'
      linear = std::make_shared<nn::Linear>(c.hidden_size, c.vocab_size, true, gen);
    }
    linear->weight =
        linear->register_parameter("weight", body->embedding.as<nn::Embedding>()->weight);
    linear->bias = linear->register_parameter("bias", zeros({c.vocab_size}));
  } else {
    linear = std::make_shared<nn::Linear>(c.hidden_size, c.vocab_size, true, gen);
    nn::init::uniform_(linear->weight, -c.init_range, c.init_range, gen);
    nn::init::zeros_(linear->bias);
  }
  head = register_slot<nn::UnaryModule>("head", linear);
}

Tensor LSTMForCausalLM::hidden_states(const Tensor& ids, KVCache* cache) {
  MOXING_CHECK(ids.dim() == 2, "LSTMForCausalLM: ids must be (B,T), got {} dims", ids.dim());
  if (cache == nullptr) return body->forward(ids, Tensor()).output;
  NoGradGuard no_grad;
  Tensor h0 = cache->state.size() > 0 ? cache->state[0] : Tensor();
  Tensor c0 = cache->state.size() > 1 ? cache->state[1] : Tensor();
  nn::RNNOutput out = body->forward(ids, Tensor(), h0, c0);
  cache->state = {out.h_n};
  if (out.c_n.defined()) cache->state.push_back(out.c_n);
  cache->length += ids.size(1);
  return out.output;
}

Tensor LSTMForCausalLM::lm_head(const Tensor& h) const { return head->forward(h); }

KVCache LSTMForCausalLM::make_cache(int64_t batch, int64_t capacity) const {
  (void)capacity;  // a recurrent state has the same size at any length
  MOXING_CHECK(batch > 0, "LSTMForCausalLM: the cache's batch must be positive, got {}", batch);
  return KVCache();
}

// ---- classifier

LSTMForSequenceClassification::LSTMForSequenceClassification(const LSTMConfig& c, Generator* gen)
    : config_(c) {
  body = register_module("body", std::make_shared<LSTMBody>(c, c.bidirectional, gen));
  const int64_t D = c.bidirectional ? 2 : 1;
  auto linear = std::make_shared<nn::Linear>(D * c.hidden_size, c.num_labels, true, gen);
  classifier = register_slot<nn::UnaryModule>("classifier", linear);
}

std::vector<std::string> LSTMForSequenceClassification::labels() const {
  return label_names(config_.num_labels, config_.id2label);
}

Tensor LSTMForSequenceClassification::classify(const EncoderInputs& inputs) {
  const Tensor& ids = inputs.input_ids;
  MOXING_CHECK(ids.dim() == 2 && ids.size(1) > 0,
               "LSTMForSequenceClassification: input_ids must be (B,T) with T > 0");
  Tensor mask, lengths;  // mask (B,T,1) f32 of the real tokens
  if (inputs.attention_mask.defined()) {
    lengths = sum(inputs.attention_mask.to(DType::i64), {1});
    for (int64_t n : lengths.to_vector<int64_t>()) {
      MOXING_CHECK(n >= 1, "LSTMForSequenceClassification: a text of the batch has no tokens");
    }
  }
  nn::RNNOutput out = body->forward(ids, lengths);
  const DType dtype = out.output.dtype();
  if (lengths.defined()) mask = inputs.attention_mask.to(dtype).unsqueeze(2);
  Tensor pooled;
  if (config_.pooling == "last") {
    // the last layer's final state of each direction, at each text's own last token
    const int64_t D = body->rnn->num_directions(), L = config_.num_layers;
    std::vector<Tensor> parts;
    for (int64_t d = 0; d < D; ++d) parts.push_back(out.h_n.select(0, (L - 1) * D + d));
    pooled = D == 1 ? parts[0] : cat(parts, 1);
  } else if (config_.pooling == "mean") {
    pooled = mask.defined() ? div(sum(mul(out.output, mask), {1}), lengths.to(dtype).unsqueeze(1))
                            : mean(out.output, {1});
  } else {  // max
    Tensor o = mask.defined() ? masked_fill(out.output, eq(mask, 0.0), -1e30) : out.output;
    pooled = amax(o, {1});
  }
  return classifier->forward(body->dropout->forward(pooled));
}

// ---- the family

namespace {

Family make_lstm_family() {
  Family f = make_family<LSTMConfig>(
      "lstm", {},
      {{"LSTMForCausalLM", "causal-lm"},
       {"LSTMForSequenceClassification", "sequence-classification"}},
      [](const LSTMConfig& c, const std::string& arch,
         Generator* gen) -> std::shared_ptr<nn::Module> {
        if (arch == "LSTMForSequenceClassification") {
          return std::make_shared<LSTMForSequenceClassification>(c, gen);
        }
        return std::make_shared<LSTMForCausalLM>(c, gen);
      },
      [](const LSTMConfig& c) {
        std::string cell = c.cell == "lstm" ? "LSTM" : c.cell == "gru" ? "GRU" : "RNN";
        return fmt::format("{}{} with {} layers, width {}, embeddings {}",
                           c.bidirectional ? "bidirectional " : "", cell, c.num_layers,
                           c.hidden_size, c.embedding_size);
      });
  f.data_keys = {"vocab_size", "pad_token_id", "bos_token_id", "eos_token_id",
                 "num_labels", "id2label",     "label2id"};
  return f;
}

}  // namespace

MOXING_REGISTER_FAMILY(make_lstm_family);

}  // namespace moxing::models
