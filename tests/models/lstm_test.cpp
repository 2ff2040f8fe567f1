// The lstm family against torch modules with the same names (tests/fixtures/models_lstm.py):
// classifiers over padded batches with every pooling, language models; an f64 gradcheck of the
// classifier; the recurrent-state cache against whole sequences; padding invariance; saving and
// loading a folder; and the config errors.
#include "moxing/models/lstm.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "../nn/nn_transformer_fixture.h"
#include "model_checks.h"
#include "moxing/autograd/gradcheck.h"
#include "moxing/autograd/node.h"
#include "moxing/models/family.h"
#include "moxing/models/generation.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"

namespace moxing::models {
namespace {

using moxing::testing::check_layer_fixture;
using moxing::testing::max_abs_diff;
using moxing::testing::TempDir;
using V = std::vector<Tensor>;

nlohmann::json small(const std::string& cell, bool bidirectional, const std::string& pooling) {
  return {{"vocab_size", 11},   {"embedding_size", 6}, {"hidden_size", 5},
          {"num_layers", 2},    {"cell", cell},        {"bidirectional", bidirectional},
          {"pooling", pooling}, {"num_labels", 3}};
}

Model build(const nlohmann::json& fields, const std::string& arch, uint64_t seed = 1) {
  Generator gen(seed);
  return build_model(find_family("lstm"), fields, arch, &gen);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(LSTMFamily, ClassifiersMatchTorchOnPaddedBatches) {
  for (auto [cell, bidir, pooling] :
       {std::tuple{"lstm", true, "max"}, std::tuple{"lstm", true, "last"},
        std::tuple{"gru", false, "mean"}, std::tuple{"lstm", false, "last"}}) {
    const std::string name =
        fmt::format("lstm_family_cls_{}_{}{}", cell, bidir ? "bidir_" : "", pooling);
    Model m = build(small(cell, bidir, pooling), "LSTMForSequenceClassification");
    auto& cls = m.expect<SequenceClassifier>("a classifier");
    check_layer_fixture(name, *m.module, false, [&](const V& x) {
      EncoderInputs in;
      in.input_ids = x[0];
      in.attention_mask = x[1];
      return V{cls.classify(in)};
    });
  }
}

TEST(LSTMFamily, LanguageModelsMatchTorch) {
  for (const char* cell : {"lstm", "gru"}) {
    Model m = build(small(cell, false, "max"), "LSTMForCausalLM");
    auto& lm = m.expect<CausalLM>("a causal LM");
    check_layer_fixture(std::string("lstm_family_lm_") + cell, *m.module, false,
                        [&](const V& x) { return V{lm.lm_head(lm.hidden_states(x[0]))}; });
  }
}

TEST(LSTMFamily, GradcheckClassifierWithPaddingAndEveryPooling) {
  for (const char* pooling : {"max", "mean", "last"}) {
    Model m = build(small("lstm", true, pooling), "LSTMForSequenceClassification", 4);
    m.module->to(DType::f64);
    auto& cls = m.expect<SequenceClassifier>("a classifier");
    EncoderInputs in;
    in.input_ids = from_vector<int64_t>({1, 4, 7, 0, 2, 9, 3, 5}, {2, 4});
    in.attention_mask = from_vector<int64_t>({1, 1, 1, 0, 1, 1, 1, 1}, {2, 4});
    V params;
    for (const auto& [k, p] : m.module->named_parameters()) params.push_back(p);
    auto r = autograd::gradcheck([&](const V&) { return cls.classify(in); }, params);
    EXPECT_TRUE(r.ok) << pooling << ": " << r.message;
  }
}

// padded positions change nothing: a text alone and in a batch with a longer one
TEST(LSTMFamily, ClassifierIgnoresPadding) {
  for (const char* pooling : {"max", "mean", "last"}) {
    Model m = build(small("lstm", true, pooling), "LSTMForSequenceClassification");
    m.module->eval();
    auto& cls = m.expect<SequenceClassifier>("a classifier");
    EncoderInputs alone, batch;
    alone.input_ids = from_vector<int64_t>({3, 8, 2}, {1, 3});
    batch.input_ids = from_vector<int64_t>({3, 8, 2, 0, 0, 5, 1, 6, 9, 4}, {2, 5});
    batch.attention_mask = from_vector<int64_t>({1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, {2, 5});
    Tensor a = cls.classify(alone), b = cls.classify(batch).narrow(0, 0, 1);
    EXPECT_LT(max_abs_diff(a, b), 1e-6) << pooling;
  }
}

// the cache holds the recurrent state: token by token equals the whole sequence
TEST(LSTMFamily, CachedStepsEqualTheWholeSequence) {
  for (const char* cell : {"lstm", "gru", "rnn_tanh"}) {
    Model m = build(small(cell, false, "max"), "LSTMForCausalLM");
    m.module->eval();
    auto& lm = m.expect<CausalLM>("a causal LM");
    EXPECT_EQ(lm.context_length(), 0);
    Tensor ids = from_vector<int64_t>({1, 4, 7, 2, 9, 3}, {1, 6});
    Tensor whole = lm.hidden_states(ids);
    KVCache cache = lm.make_cache();
    std::vector<Tensor> steps;
    steps.push_back(lm.hidden_states(ids.narrow(1, 0, 2), &cache));
    for (int64_t t = 2; t < 6; ++t) steps.push_back(lm.hidden_states(ids.narrow(1, t, 1), &cache));
    EXPECT_EQ(cache.length, 6);
    Tensor joined = cat(steps, 1);
    EXPECT_LT(max_abs_diff(whole, joined), 1e-6) << cell;
    // generate: the same tokens with and without the cache, and past any window
    SamplingConfig s;
    s.max_new_tokens = 40;
    s.seed = 3;
    std::vector<int32_t> prompt = {1, 4};
    auto with = generate(lm, prompt, s);
    s.use_cache = false;
    EXPECT_EQ(with, generate(lm, prompt, s)) << cell;
    EXPECT_EQ(with.size(), 40u);
    PerplexityResult p = perplexity(lm, {1, 4, 7, 2, 9, 3});
    EXPECT_EQ(p.tokens, 5);
    EXPECT_GT(p.perplexity, 1.0);
  }
}

TEST(LSTMFamily, SavedFolderLoadsWithTheSameOutputs) {
  TempDir tmp("lstm_family_save");
  Model m = build(small("gru", true, "mean"), "LSTMForSequenceClassification");
  m.module->eval();
  m.save_pretrained(tmp.path);
  Model back = from_pretrained(tmp.path);
  EXPECT_EQ(back.family->name, "lstm");
  EXPECT_EQ(back.architecture, "LSTMForSequenceClassification");
  EncoderInputs in;
  in.input_ids = from_vector<int64_t>({3, 8, 2, 0, 5, 1, 6, 9}, {2, 4});
  in.attention_mask = from_vector<int64_t>({1, 1, 1, 0, 1, 1, 1, 1}, {2, 4});
  Tensor a = m.expect<SequenceClassifier>("c").classify(in);
  Tensor b = back.expect<SequenceClassifier>("c").classify(in);
  EXPECT_EQ(max_abs_diff(a, b), 0.0);
  EXPECT_EQ(back.expect<SequenceClassifier>("c").labels(),
            (std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"}));
}

TEST(LSTMFamily, TiedHeadSharesTheEmbeddingTable) {
  nlohmann::json f = small("lstm", false, "max");
  f["embedding_size"] = 5;
  f["tie_word_embeddings"] = true;
  Model m = build(f, "LSTMForCausalLM");
  auto& lm = dynamic_cast<LSTMForCausalLM&>(*m.module);
  EXPECT_EQ(lm.head.as<nn::Linear>()->weight.data<float>(),
            lm.body->embedding.as<nn::Embedding>()->weight.data<float>());
}

TEST(LSTMFamily, BadConfigsAreNamed) {
  nlohmann::json f = small("lstm", false, "max");
  f["cell"] = "transformer";
  EXPECT_NE(error_of([&] { build(f, ""); }).find("cell \"transformer\" is not known"),
            std::string::npos);
  f = small("lstm", false, "avg");
  EXPECT_NE(error_of([&] { build(f, ""); }).find("pooling \"avg\" is not known (valid: max"),
            std::string::npos);
  f = small("lstm", false, "max");
  f["tie_word_embeddings"] = true;
  EXPECT_NE(error_of([&] { build(f, ""); }).find("tie_word_embeddings needs embedding_size (6)"),
            std::string::npos);
  f = small("lstm", true, "max");
  EXPECT_NE(error_of([&] { build(f, "LSTMForCausalLM"); }).find("reads left to right"),
            std::string::npos);
  f = small("lstm", false, "max");
  f["hidden_sizes"] = 3;
  EXPECT_NE(error_of([&] { build(f, ""); }).find("hidden_sizes"), std::string::npos);
}

}  // namespace
}  // namespace moxing::models
