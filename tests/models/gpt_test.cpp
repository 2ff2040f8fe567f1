// GPT-2 against transformers: the reference numbers (logits, training loss and gradients,
// greedy tokens, perplexity) come from tests/fixtures/models/make_gpt2_fixture.py, which also
// wrote the model directory gpt2_tiny/. Also the KV cache, generation, saving and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model_checks.h"
#include "moxing/autograd/gradcheck.h"
#include "moxing/autograd/node.h"
#include "moxing/io/safetensors.h"
#include "moxing/models/family.h"
#include "moxing/models/generation.h"
#include "moxing/models/gpt.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/random.h"
#include "moxing/ops/shape.h"

namespace moxing::models {
namespace {

namespace fs = std::filesystem;
using moxing::testing::expect_gradients_match;
using moxing::testing::max_abs_diff;
using moxing::testing::parameters_named;
using moxing::testing::TempDir;

const std::string kModelDir = std::string(MOXING_FIXTURE_DIR) + "/models/gpt2_tiny";
const std::string kReference =
    std::string(MOXING_FIXTURE_DIR) + "/models/gpt2_tiny_reference.safetensors";

const SafetensorsFile& reference() {
  static const SafetensorsFile file = load_safetensors(kReference);
  return file;
}

std::vector<int32_t> ids_of(const Tensor& t) {
  std::vector<int32_t> out;
  for (int64_t v : t.to_vector<int64_t>()) out.push_back(static_cast<int32_t>(v));
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

GPTConfig tiny_config() {
  GPTConfig c;
  c.vocab_size = 37;
  c.n_positions = 64;
  c.n_embd = 16;
  c.n_layer = 2;
  c.n_head = 4;
  c.initializer_range = 0.2;
  return c;
}

TEST(GPT, LogitsMatchTransformers) {
  auto model = GPT::from_pretrained(kModelDir);
  model->eval();
  for (const char* key : {"a", "b", "c"}) {
    Tensor logits = model->forward(reference().get(std::string("ids_") + key));
    EXPECT_LT(max_abs_diff(logits, reference().get(std::string("logits_") + key)), 1e-4) << key;
  }
}

TEST(GPT, StateDictNamesAreTransformersNames) {
  auto model = GPT::from_pretrained(kModelDir);
  SafetensorsFile file = load_safetensors(kModelDir + "/model.safetensors");
  std::vector<std::string> ours, theirs;
  Model m{&find_family("gpt2"), "GPT2LMHeadModel", {}, model};
  for (const auto& [name, t] : weights_for_saving(m)) ours.push_back(name);  // lm_head is wte
  for (const auto& [name, t] : file.tensors) theirs.push_back(name);
  std::sort(ours.begin(), ours.end());
  std::sort(theirs.begin(), theirs.end());
  EXPECT_EQ(ours, theirs);
  EXPECT_EQ(model->config().vocab_size, 300);
  EXPECT_EQ(model->config().bos_token_id, 0);
  EXPECT_EQ(model->config().eos_token_id, 299);
  EXPECT_EQ(model->num_parameters(),
            300 * 64 + 64 * 64 +
                2 * (4 * 64 + 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64) +
                2 * 64);
}

TEST(GPT, TrainingLossAndGradientsMatchTransformers) {
  auto model = GPT::from_pretrained(kModelDir);
  model->eval();  // the fixture's batch ran without dropout
  Tensor ids = reference().get("train_ids");
  const int64_t B = ids.size(0), T = ids.size(1);
  Tensor logits = model->forward(ids);
  Tensor loss = cross_entropy(logits.narrow(1, 0, T - 1).reshape({B * (T - 1), -1}),
                              ids.narrow(1, 1, T - 1).reshape({B * (T - 1)}));
  EXPECT_NEAR(loss.item<double>(), reference().get("train_loss").item<double>(), 1e-5);
  loss.backward();
  // transformers' Conv1D gradients are (in, out); ours follow nn::Linear's (out, in)
  const int checked = expect_gradients_match(
      *model, reference(), 1e-5, [](const std::string& param, const Tensor& t) {
        return find_family("gpt2").rules.is_transposed(param) ? t.t() : t;
      });
  EXPECT_EQ(checked, 6);
}

TEST(GPT, GreedyGenerationMatchesTransformers) {
  auto model = GPT::from_pretrained(kModelDir);
  EXPECT_FALSE(model->is_training());  // as transformers' from_pretrained
  model->train();
  std::vector<int32_t> prompt = ids_of(reference().get("greedy_prompt"));
  std::vector<int32_t> expected = ids_of(reference().get("greedy_out"));
  SamplingConfig cfg;
  cfg.greedy = true;
  cfg.max_new_tokens = 20;
  for (bool use_cache : {true, false}) {
    cfg.use_cache = use_cache;
    EXPECT_EQ(generate(*model, prompt, cfg), expected) << "use_cache " << use_cache;
  }
  EXPECT_TRUE(model->is_training());  // generate restores the mode it found
}

TEST(GPT, PerplexityMatchesTransformers) {
  auto model = GPT::from_pretrained(kModelDir);
  std::vector<int32_t> short_ids = ids_of(reference().get("short_ids"));
  PerplexityResult r = perplexity(*model, short_ids);
  double hf_loss = reference().get("short_loss").item<double>();
  EXPECT_EQ(r.tokens, 39);
  EXPECT_NEAR(r.loss, hf_loss, 1e-5);
  EXPECT_NEAR(r.perplexity, std::exp(hf_loss), 1e-4 * std::exp(hf_loss));

  std::vector<double> strided = reference().get("ppl_stride32").to_vector<double>();
  PerplexityResult s = perplexity(*model, ids_of(reference().get("ppl_ids")), 32);
  EXPECT_EQ(s.tokens, static_cast<int64_t>(strided[1]));
  EXPECT_NEAR(s.loss, strided[0], 1e-5);
  PerplexityResult whole = perplexity(*model, ids_of(reference().get("ppl_ids")));
  EXPECT_EQ(whole.tokens, 63 + 63 + 21);  // windows [0,64), [64,128), [128,150) without overlap
  EXPECT_GT(whole.loss, 0.0);
}

TEST(GPT, SavePretrainedReloadsIdentically) {
  auto model = GPT::from_pretrained(kModelDir);
  model->eval();
  // MOXING_GPT_SAVE_DIR keeps the directory for check_roundtrip.py (see that script)
  const char* keep = std::getenv("MOXING_GPT_SAVE_DIR");
  TempDir tmp("gpt_saved");
  std::string dir = keep ? std::string(keep) : tmp.path;
  fs::create_directories(dir);
  write_text(dir + "/tokenizer.json", "{}");
  model->save_pretrained(dir);
  EXPECT_EQ(read_text(dir + "/tokenizer.json"), "{}");
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.tmp"));
  EXPECT_FALSE(fs::exists(dir + "/config.json.tmp"));
  SafetensorsFile file = load_safetensors(dir + "/model.safetensors");
  EXPECT_FALSE(file.contains("lm_head.weight"));
  EXPECT_EQ(file.metadata.at("format"), "pt");

  auto reloaded = GPT::from_pretrained(dir);
  reloaded->eval();
  EXPECT_EQ(reloaded->config().to_json(), model->config().to_json());
  Tensor ids = reference().get("ids_a");
  EXPECT_EQ(max_abs_diff(reloaded->forward(ids), model->forward(ids)), 0.0);
}

TEST(GPT, UntiedHeadIsSavedAndLoaded) {
  GPTConfig c = tiny_config();
  c.tie_word_embeddings = false;
  Generator gen(3);
  GPT model(c, &gen);
  model.eval();
  TempDir tmp("gpt_untied");
  model.save_pretrained(tmp.path);
  EXPECT_TRUE(load_safetensors(tmp.path + "/model.safetensors").contains("lm_head.weight"));
  auto reloaded = GPT::from_pretrained(tmp.path);
  reloaded->eval();
  auto saved = model.state_dict();
  auto loaded = reloaded->state_dict();
  ASSERT_EQ(loaded.size(), saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    EXPECT_EQ(loaded[i].first, saved[i].first);
    EXPECT_EQ(max_abs_diff(loaded[i].second, saved[i].second), 0.0) << saved[i].first;
  }
  // The weights are bit-identical; the logits only to rounding, since the reloaded weights are
  // memory-mapped at another alignment and the GEMM's summation order may follow it.
  Tensor ids = from_vector<int64_t>({1, 2, 3, 4}, {1, 4});
  EXPECT_LT(max_abs_diff(reloaded->forward(ids), model.forward(ids)), 1e-5);
}

TEST(GPT, ConfigJsonRoundTripAndErrors) {
  GPTConfig c = tiny_config();
  c.n_inner = 40;
  c.activation_function = "relu";
  GPTConfig back = GPTConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(back.inner_dim(), 40);
  EXPECT_EQ(GPTConfig::from_json("{\"model_type\": \"gpt2\", \"n_inner\": null}").inner_dim(),
            4 * 768);
  EXPECT_EQ(error_of([] { GPTConfig::from_json("{\"model_type\": \"llama\"}"); }),
            "config.json: model_type \"llama\" is not supported (moxing knows: gpt2)");
  EXPECT_NE(error_of([] { GPTConfig::from_json("{\"n_embd\": \"64\"}"); }).find("\"n_embd\""),
            std::string::npos);
  EXPECT_NE(
      error_of([] { GPTConfig::from_json("{\"activation_function\": \"swish\"}"); }).find("swish"),
      std::string::npos);
  EXPECT_NE(
      error_of([] { GPTConfig::from_json("{\"n_embd\": 10, \"n_head\": 4}"); }).find("n_embd 10"),
      std::string::npos);
}

TEST(GPT, LoadErrorsNameTheProblem) {
  TempDir tmp("gpt_errors");
  EXPECT_EQ(error_of([&] { GPT::from_pretrained(tmp.path); }),
            "model directory " + tmp.path + " has no config.json");
  write_text(tmp.path + "/config.json", read_text(kModelDir + "/config.json"));
  EXPECT_EQ(error_of([&] { GPT::from_pretrained(tmp.path); }),
            "model directory " + tmp.path +
                " has no model.safetensors (nor a sharded model.safetensors.index.json)");

  // a tensor missing
  SafetensorsFile file = load_safetensors(kModelDir + "/model.safetensors");
  NamedTensors fewer;
  for (const auto& [name, t] : file.tensors) {
    if (name != "transformer.h.1.ln_2.bias" && name != "transformer.wpe.weight") {
      fewer.emplace_back(name, t);
    }
  }
  save_safetensors(tmp.path + "/model.safetensors", fewer);
  std::string msg = error_of([&] { GPT::from_pretrained(tmp.path); });
  EXPECT_NE(msg.find("missing keys: transformer.wpe.weight, transformer.h.1.ln_2.bias"),
            std::string::npos)
      << msg;
  EXPECT_EQ(
      msg.rfind(tmp.path + "/model.safetensors does not match " + tmp.path + "/config.json", 0), 0u)
      << msg;

  // every tensor of the wrong shape is named
  fs::copy_file(kModelDir + "/model.safetensors", tmp.path + "/model.safetensors",
                fs::copy_options::overwrite_existing);
  std::string config = read_text(kModelDir + "/config.json");
  config.replace(config.find("\"n_inner\": null"), 15, "\"n_inner\": 128");
  write_text(tmp.path + "/config.json", config);
  msg = error_of([&] { GPT::from_pretrained(tmp.path); });
  // (in the model's layout: nn::Linear's (out, in))
  for (const char* line :
       {"transformer.h.0.mlp.c_fc.weight is [256, 64] in the checkpoint but [128, 64] in the model",
        "transformer.h.0.mlp.c_fc.bias is [256] in the checkpoint but [128] in the model",
        "transformer.h.1.mlp.c_proj.weight is [64, 256] in the checkpoint but [64, 128]"}) {
    EXPECT_NE(msg.find(line), std::string::npos) << msg;
  }

  // an unknown model type, with the file named
  write_text(tmp.path + "/config.json", "{\"model_type\": \"mamba\"}");
  msg = error_of([&] { GPT::from_pretrained(tmp.path); });
  EXPECT_EQ(
      msg.rfind(tmp.path + "/config.json: model_type \"mamba\" is not supported (moxing knows: ",
                0),
      0u)
      << msg;
  EXPECT_NE(msg.find(", gpt2 (alias gpt), "), std::string::npos) << msg;
  write_text(tmp.path + "/config.json", "{\"n_embd\": 64,");
  msg = error_of([&] { GPT::from_pretrained(tmp.path); });
  EXPECT_NE(msg.find(tmp.path + "/config.json: invalid JSON"), std::string::npos) << msg;
}

TEST(GPT, KVCacheStepRunsOnePosition) {
  Generator gen(7);
  GPT model(tiny_config(), &gen);
  model.eval();
  Tensor ids = from_vector<int64_t>({3, 1, 4, 1, 5, 9, 2, 6, 5}, {1, 9});
  Tensor full = model.forward(ids);  // (1,9,V)
  KVCache cache = model.make_cache();
  EXPECT_EQ(cache.capacity(), 64);
  Tensor prefill = model.forward(ids.narrow(1, 0, 5), &cache);
  EXPECT_EQ(prefill.shape(), (Shape{1, 5, 37}));
  EXPECT_EQ(cache.length, 5);
  EXPECT_LT(max_abs_diff(prefill, full.narrow(1, 0, 5)), 1e-5);
  Tensor step = model.forward(ids.narrow(1, 5, 1), &cache);
  EXPECT_EQ(step.shape(), (Shape{1, 1, 37}));
  EXPECT_EQ(cache.length, 6);
  EXPECT_LT(max_abs_diff(step, full.narrow(1, 5, 1)), 1e-5);
  // several new positions after a filled cache use the bottom-right aligned causal mask
  Tensor chunk = model.forward(ids.narrow(1, 6, 3), &cache);
  EXPECT_EQ(cache.length, 9);
  EXPECT_LT(max_abs_diff(chunk, full.narrow(1, 6, 3)), 1e-5);
  EXPECT_FALSE(chunk.requires_grad());

  KVCache small = model.make_cache(1, 4);
  EXPECT_NE(error_of([&] { model.forward(ids, &small); }).find("capacity of 4"), std::string::npos);
  KVCache batch2 = model.make_cache(2);
  EXPECT_NE(error_of([&] { model.forward(ids, &batch2); }).find("batch size"), std::string::npos);
}

TEST(GPT, GreedyAndSampledTokensAreTheSameWithAndWithoutCache) {
  Generator gen(11);
  GPT model(tiny_config(), &gen);
  std::vector<int32_t> prompt = {5, 17, 2};
  SamplingConfig cfg;
  cfg.max_new_tokens = 45;
  cfg.greedy = true;
  cfg.use_cache = true;
  std::vector<int32_t> cached = generate(model, prompt, cfg);
  cfg.use_cache = false;
  EXPECT_EQ(generate(model, prompt, cfg), cached);
  EXPECT_EQ(cached.size(), 45u);

  cfg.greedy = false;
  cfg.temperature = 0.8;
  cfg.top_k = 20;
  cfg.top_p = 0.9;
  cfg.repetition_penalty = 1.3;
  cfg.seed = 42;
  cfg.use_cache = false;
  std::vector<int32_t> sampled = generate(model, prompt, cfg);
  cfg.use_cache = true;
  EXPECT_EQ(generate(model, prompt, cfg), sampled);
  EXPECT_EQ(generate(model, prompt, cfg), sampled);  // same seed, same tokens
  cfg.seed = 43;
  EXPECT_NE(generate(model, prompt, cfg), sampled);
}

TEST(GPT, GenerationStopsAtStopTokenCallbackAndContextEnd) {
  Generator gen(5);
  GPT model(tiny_config(), &gen);
  SamplingConfig cfg;
  cfg.greedy = true;
  cfg.max_new_tokens = 10;
  std::vector<int32_t> all = generate(model, {1, 2}, cfg);
  ASSERT_EQ(all.size(), 10u);
  cfg.stop_token_ids = {all[3]};
  std::vector<int32_t> stopped = generate(model, {1, 2}, cfg);
  auto first = std::find(all.begin(), all.end(), all[3]);  // the stop token is emitted
  EXPECT_EQ(stopped, std::vector<int32_t>(all.begin(), first + 1));
  cfg.stop_token_ids.clear();

  std::vector<int32_t> streamed;
  std::vector<int32_t> got = generate(model, {1, 2}, cfg, [&](int32_t id) {
    streamed.push_back(id);
    return streamed.size() < 3;
  });
  EXPECT_EQ(streamed, got);
  EXPECT_EQ(got, std::vector<int32_t>(all.begin(), all.begin() + 3));

  // a prompt filling 60 of the 64 positions leaves room for 5 new tokens
  cfg.max_new_tokens = 100;
  std::vector<int32_t> long_prompt(60, 7);
  for (bool use_cache : {true, false}) {
    cfg.use_cache = use_cache;
    EXPECT_EQ(generate(model, long_prompt, cfg).size(), 5u);
  }
}

TEST(GPT, GenerationErrors) {
  Generator gen(5);
  GPT model(tiny_config(), &gen);
  SamplingConfig cfg;
  EXPECT_EQ(error_of([&] { generate(model, std::vector<int32_t>(65, 1), cfg); }),
            "generate: prompt is 65 tokens; this model's context is 64 tokens, so the prompt may "
            "be at most 64");
  EXPECT_NE(error_of([&] { generate(model, {}, cfg); }).find("BOS token"), std::string::npos);
  EXPECT_NE(error_of([&] {
              generate(model, {1, 37}, cfg);
            }).find("outside the vocabulary"),
            std::string::npos);
  cfg.top_p = 0.0;
  EXPECT_NE(error_of([&] { generate(model, {1}, cfg); }).find("top_p"), std::string::npos);
  EXPECT_NE(error_of([&] { perplexity(model, {1}); }).find("at least 2 tokens"), std::string::npos);
}

TEST(GPT, SamplingFollowsTransformersProcessors) {
  SamplingConfig greedy;
  greedy.greedy = true;
  std::vector<float> logits = {1.0f, 3.0f, 2.9f, -1.0f};
  EXPECT_EQ(sample_next_token(logits, {}, greedy, 0.5), 1);
  greedy.repetition_penalty = 1.2;  // 3.0 / 1.2 = 2.5 < 2.9
  EXPECT_EQ(sample_next_token(logits, {1, 1}, greedy, 0.5), 2);

  SamplingConfig cfg;
  cfg.top_k = 1;
  for (double u : {0.0, 0.5, 0.999}) EXPECT_EQ(sample_next_token(logits, {}, cfg, u), 1);
  cfg.top_k = 0;
  cfg.top_p = 0.01;  // only the most likely token
  for (double u : {0.0, 0.999}) EXPECT_EQ(sample_next_token(logits, {}, cfg, u), 1);
  cfg.top_p = 1.0;
  // plain sampling is the inverse CDF over the softmax: u near 0 gives token 0, near 1 token 3
  EXPECT_EQ(sample_next_token(logits, {}, cfg, 0.0), 0);
  EXPECT_EQ(sample_next_token(logits, {}, cfg, 0.9999), 3);
  // top_k 2 keeps tokens 1 and 2 only
  cfg.top_k = 2;
  EXPECT_EQ(sample_next_token(logits, {}, cfg, 0.0), 1);
  EXPECT_EQ(sample_next_token(logits, {}, cfg, 0.9999), 2);
}

TEST(GPT, GradcheckMicroModelF64) {
  GPTConfig c;
  c.vocab_size = 11;
  c.n_positions = 8;
  c.n_embd = 8;
  c.n_layer = 1;
  c.n_head = 2;
  c.initializer_range = 0.3;
  Generator gen(1);
  GPT model(c, &gen);
  model.to(DType::f64);
  model.eval();
  // non-zero LayerNorm parameters and biases so that their gradients are exercised too
  for (auto& [name, t] : model.named_parameters()) {
    if (t.dim() == 1) {
      NoGradGuard no_grad;
      t.add_(randn(t.shape(), DType::f64, &gen) * 0.3);
    }
  }
  Tensor ids = from_vector<int64_t>({1, 4, 10, 3, 3, 0, 9, 2, 7, 5}, {2, 5});
  Tensor targets = from_vector<int64_t>({4, 10, 3, 3, 8, 9, 2, 7, 5, 1}, {10});
  auto f = [&](const std::vector<Tensor>&) {
    return cross_entropy(model.forward(ids).reshape({10, 11}), targets);
  };
  std::vector<Tensor> inputs =
      parameters_named(model, {"transformer.wte.weight", "transformer.wpe.weight",
                               "transformer.h.0.attn.c_attn.weight", "transformer.h.0.ln_1.weight",
                               "transformer.h.0.mlp.c_fc.bias", "transformer.h.0.mlp.c_proj.weight",
                               "transformer.ln_f.bias"});
  ASSERT_EQ(inputs.size(), 7u);
  autograd::GradcheckResult r = autograd::gradcheck(f, inputs);
  EXPECT_TRUE(r.ok) << r.message;
}

}  // namespace
}  // namespace moxing::models
