// Llama against transformers: logits, training loss and gradients and greedy tokens come from
// tests/fixtures/models/make_llama_fixture.py, which also wrote llama_tiny/ (grouped-query
// attention, an untied head). Also the KV cache, saving, the tied head, config errors and an
// f64 gradcheck.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model_checks.h"
#include "moxing/autograd/gradcheck.h"
#include "moxing/autograd/node.h"
#include "moxing/io/safetensors.h"
#include "moxing/models/family.h"
#include "moxing/models/generation.h"
#include "moxing/models/llama.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/random.h"
#include "moxing/ops/shape.h"
#include "op_harness.h"

namespace moxing::models {
namespace {

using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::expect_gradients_match;
using moxing::testing::max_abs_diff;
using moxing::testing::parameters_named;
using moxing::testing::TempDir;

const std::string kModelDir = std::string(MOXING_FIXTURE_DIR) + "/models/llama_tiny";
const std::string kReference =
    std::string(MOXING_FIXTURE_DIR) + "/models/llama_tiny_reference.safetensors";

const SafetensorsFile& reference() {
  static const SafetensorsFile file = load_safetensors(kReference);
  return file;
}

std::shared_ptr<Llama> load_tiny() {
  Model m = from_pretrained(kModelDir);
  auto llama = std::dynamic_pointer_cast<Llama>(m.module);
  EXPECT_NE(llama, nullptr);
  return llama;
}

std::vector<int32_t> ids_of(const Tensor& t) {
  std::vector<int32_t> out;
  for (int64_t v : t.to_vector<int64_t>()) out.push_back(static_cast<int32_t>(v));
  return out;
}

LlamaConfig micro_config() {
  LlamaConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.max_position_embeddings = 8;
  c.initializer_range = 0.3;
  c.rope_theta = 100.0;
  return c;
}

TEST(Llama, LogitsMatchTransformers) {
  auto model = load_tiny();
  EXPECT_EQ(model->config().kv_heads(), 2);
  EXPECT_EQ(model->config().rope_theta, 500.0);  // from transformers 5's rope_parameters
  for (const char* key : {"a", "b", "c"}) {
    Tensor logits = model->forward(reference().get(std::string("ids_") + key));
    EXPECT_LT(max_abs_diff(logits, reference().get(std::string("logits_") + key)), 1e-4) << key;
  }
}

TEST(Llama, TrainingLossAndGradientsMatchTransformers) {
  auto model = load_tiny();
  Tensor ids = reference().get("train_ids");
  const int64_t B = ids.size(0), T = ids.size(1);
  Tensor logits = model->forward(ids);
  Tensor loss = cross_entropy(logits.narrow(1, 0, T - 1).reshape({B * (T - 1), -1}),
                              ids.narrow(1, 1, T - 1).reshape({B * (T - 1)}));
  EXPECT_NEAR(loss.item<double>(), reference().get("train_loss").item<double>(), 1e-5);
  loss.backward();
  EXPECT_EQ(expect_gradients_match(*model, reference(), 1e-5), 8);
}

TEST(Llama, GreedyTokensMatchTransformersWithAndWithoutTheCache) {
  auto model = load_tiny();
  std::vector<int32_t> prompt = ids_of(reference().get("greedy_prompt"));
  std::vector<int32_t> expected = ids_of(reference().get("greedy_out"));
  SamplingConfig cfg;
  cfg.greedy = true;
  cfg.max_new_tokens = 20;
  for (bool use_cache : {true, false}) {
    cfg.use_cache = use_cache;
    EXPECT_EQ(generate(*model, prompt, cfg), expected) << "use_cache " << use_cache;
  }
}

TEST(Llama, CachedChunksGiveTheLogitsOfOneForward) {
  auto model = load_tiny();
  Tensor ids = reference().get("ids_b").narrow(1, 0, 20);
  Tensor whole = model->forward(ids);
  KVCache cache = model->make_cache(1, 32);
  EXPECT_EQ(cache.k[0].size(1), 2);  // key/value heads only
  Tensor a = model->forward(ids.narrow(1, 0, 7), &cache);
  Tensor b = model->forward(ids.narrow(1, 7, 12), &cache);  // several positions after a past
  Tensor c = model->forward(ids.narrow(1, 19, 1), &cache);
  EXPECT_EQ(cache.length, 20);
  EXPECT_LT(max_abs_diff(a, whole.narrow(1, 0, 7)), 1e-5);
  EXPECT_LT(max_abs_diff(b, whole.narrow(1, 7, 12)), 1e-5);
  EXPECT_LT(max_abs_diff(c, whole.narrow(1, 19, 1)), 1e-5);
}

TEST(Llama, SavePretrainedReloadsWithTheSameNames) {
  auto model = load_tiny();
  TempDir tmp("llama_saved");
  Model m{&find_family("llama"), "LlamaForCausalLM", read_config_json(kModelDir), model};
  m.save_pretrained(tmp.path);
  SafetensorsFile theirs = load_safetensors(kModelDir + "/model.safetensors");
  SafetensorsFile ours = load_safetensors(tmp.path + "/model.safetensors");
  std::vector<std::string> a, b;
  for (const auto& [name, t] : theirs.tensors) a.push_back(name);
  for (const auto& [name, t] : ours.tensors) b.push_back(name);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
  Model back = from_pretrained(tmp.path);
  Tensor ids = reference().get("ids_a");
  EXPECT_LT(max_abs_diff(back.expect<Llama>("llama").forward(ids), model->forward(ids)), 1e-5);
}

TEST(Llama, TiedHeadSharesTheEmbedding) {
  LlamaConfig c = micro_config();
  c.tie_word_embeddings = true;
  Generator gen(2);
  Llama model(c, &gen);
  EXPECT_EQ(model.head.as<nn::Linear>()->weight.raw_data(),
            model.model->embed_tokens.as<nn::Embedding>()->weight.raw_data());
  TempDir tmp("llama_tied");
  Model m = build_model(find_family("llama"), config_to_json(c));
  m.save_pretrained(tmp.path);
  EXPECT_FALSE(load_safetensors(tmp.path + "/model.safetensors").contains("lm_head.weight"));
  EXPECT_NO_THROW(from_pretrained(tmp.path));
}

TEST(Llama, ConfigErrorsNameTheProblem) {
  const Family& f = find_family("llama");
  auto resolve_error = [&](const nlohmann::json& j) {
    return error_of([&] { f.resolve(j, "config.json", true); });
  };
  EXPECT_TRUE(contains(resolve_error({{"rope_scaling", {{"rope_type", "llama3"}}}}),
                       "rope_scaling {\"rope_type\":\"llama3\"} is not supported yet"));
  EXPECT_TRUE(contains(resolve_error({{"rope_parameters", {{"rope_type", "yarn"}}}}),
                       "rope_type \"yarn\" is not supported yet"));
  EXPECT_TRUE(contains(resolve_error({{"hidden_act", "gelu"}}), "hidden_act \"gelu\""));
  EXPECT_TRUE(contains(
      resolve_error({{"num_attention_heads", 6}, {"num_key_value_heads", 4}, {"hidden_size", 48}}),
      "num_attention_heads 6 must be a multiple of num_key_value_heads 4"));
  Generator gen(1);
  Llama model(micro_config(), &gen);
  EXPECT_TRUE(contains(error_of([&] {
                         model.forward(zeros({1, 9}, DType::i64));
                       }),
                       "9 positions exceed the model's context"));
}

// llama_tiny.gguf is llama_tiny/ as llama.cpp's converter lays it out (make_llama_gguf_fixture.py):
// loaded through the GGUF layout it gives transformers' logits
TEST(Llama, GgufFileGivesTransformersLogits) {
  LoadReport report;
  Model m =
      from_pretrained(std::string(MOXING_FIXTURE_DIR) + "/models/llama_tiny.gguf", {}, &report);
  EXPECT_TRUE(report.unused.empty());
  auto& llama = m.expect<Llama>("a Llama");
  EXPECT_EQ(llama.config().kv_heads(), 2);
  EXPECT_EQ(llama.config().rope_theta, 500.0);
  EXPECT_FALSE(llama.config().tie_word_embeddings);
  for (const char* key : {"a", "b"}) {
    Tensor logits = llama.forward(reference().get(std::string("ids_") + key));
    EXPECT_LT(max_abs_diff(logits, reference().get(std::string("logits_") + key)), 1e-4) << key;
  }
  const std::string e =
      error_of([] { from_pretrained(std::string(MOXING_FIXTURE_DIR) + "/gguf/tiny.gguf"); });
  EXPECT_TRUE(contains(e, "metadata 'llama.attention.head_count' is missing")) << e;
}

TEST(Llama, GradcheckMicroModelF64) {
  Generator gen(1);
  Llama model(micro_config(), &gen);
  model.to(DType::f64);
  for (auto& [name, t] : model.named_parameters()) {
    if (t.dim() == 1) {  // RMSNorm weights away from one
      NoGradGuard no_grad;
      t.add_(randn(t.shape(), DType::f64, &gen) * 0.3);
    }
  }
  Tensor ids = from_vector<int64_t>({1, 4, 10, 3, 3, 0, 9, 2, 7, 5}, {2, 5});
  Tensor targets = from_vector<int64_t>({4, 10, 3, 3, 8, 9, 2, 7, 5, 1}, {10});
  auto f = [&](const std::vector<Tensor>&) {
    return cross_entropy(model.forward(ids).reshape({10, 11}), targets);
  };
  std::vector<Tensor> inputs = parameters_named(
      model, {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
              "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight",
              "model.layers.0.input_layernorm.weight", "model.layers.0.mlp.up_proj.weight",
              "model.norm.weight", "lm_head.weight"});
  ASSERT_EQ(inputs.size(), 8u);
  autograd::GradcheckResult r = autograd::gradcheck(f, inputs);
  EXPECT_TRUE(r.ok) << r.message;
}

}  // namespace
}  // namespace moxing::models
