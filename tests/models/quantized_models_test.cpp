// Quantized models end to end: a Llama and a GPT quantized by module surgery, written as model
// folders (config.json's quantization_config, u8 block rows in model.safetensors) and as GGUF
// files, read back with the same quantized layers and the same logits; the f32 GGUF round trip
// (llama.cpp's q/k row order written and undone); dequantize_modules and f32 compute.
#include <gtest/gtest.h>

#include <filesystem>

#include "model_checks.h"
#include "moxing/io/checkpoint.h"
#include "moxing/io/gguf.h"
#include "moxing/io/safetensors.h"
#include "moxing/models/family.h"
#include "moxing/models/gguf_layout.h"
#include "moxing/models/gpt.h"
#include "moxing/models/llama.h"
#include "moxing/nn/quantized.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"
#include "moxing/tokenizers/bpe.h"
#include "op_harness.h"

namespace moxing::models {
namespace {

using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::max_abs_diff;
using moxing::testing::TempDir;

const tokenizers::ByteLevelBPE& tokenizer() {
  static const tokenizers::ByteLevelBPE tok = [] {
    const std::string fox = "the quick brown fox jumps over the lazy dog ";
    const std::string bytes = "a model that is quantized reads fewer bytes per token";
    std::vector<std::string> texts;
    for (int i = 0; i < 40; ++i) {
      texts.push_back(fox + std::to_string(i * 7));
      texts.push_back(bytes);
    }
    tokenizers::BpeTrainOptions o;
    o.vocab_size = 300;
    return tokenizers::ByteLevelBPE::train(texts, o);
  }();
  return tok;
}

Model tiny_llama() {
  LlamaConfig c;
  c.vocab_size = tokenizer().vocab_size();
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  c.initializer_range = 0.2;
  c.rope_theta = 1000.0;
  c.tie_word_embeddings = true;
  return build_model(find_family("llama"), config_to_json(c));
}

Model tiny_gpt() {
  GPTConfig c;
  c.vocab_size = tokenizer().vocab_size();
  c.n_positions = 32;
  c.n_embd = 64;
  c.n_layer = 2;
  c.n_head = 4;
  return build_model(find_family("gpt2"), config_to_json(c));
}

Tensor ids() {
  Generator gen(3);
  return randint(0, tokenizer().vocab_size(), {2, 9}, DType::i64, &gen);
}

Tensor logits(const Model& m) {
  CausalLM& lm = m.expect<CausalLM>("a language model");
  return lm.lm_head(lm.hidden_states(ids()));
}

DType weight_type(const Model& m, const std::string& path) {
  auto l = std::dynamic_pointer_cast<nn::QuantizedLinear>(m.module->get_submodule(path));
  return l ? l->type : DType::f32;
}

TEST(QuantizedModels, LlamaGgufRoundTripKeepsTheQuantizedLayersAndTheLogits) {
  Model m = tiny_llama();
  m.module->eval();
  nn::QuantizeOptions o;
  o.type = DType::q4_0;
  nn::quantize_modules(*m.module, o);
  const Tensor before = logits(m);
  TempDir tmp("quantized_llama_gguf");
  const std::string path = tmp.path + "/tiny.gguf";
  save_gguf_model(path, m, tokenizer(), "tiny");
  GgufFile f = load_gguf(path);
  EXPECT_EQ(f.get("general.architecture").s, "llama");
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").type, GgmlType::Q4_0);
  EXPECT_EQ(f.tensor("token_embd.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(f.tensor("blk.1.ffn_norm.weight").type, GgmlType::F32);
  EXPECT_FALSE(f.has_tensor("output.weight"));  // tied: llama.cpp reads token_embd
  Model back = from_pretrained(path);
  EXPECT_EQ(weight_type(back, "model.layers.0.self_attn.q_proj"), DType::q4_0);
  EXPECT_EQ(weight_type(back, "lm_head"), DType::q8_0);
  EXPECT_EQ(max_abs_diff(logits(back), before), 0.0);
  // the tokenizer comes back from the metadata
  auto tok = tokenizers::load_tokenizer(path);
  const std::string text = "the lazy fox reads 42 bytes";
  EXPECT_EQ(tok->encode(text), tokenizer().encode(text));
}

TEST(QuantizedModels, F32GgufRoundTripWritesAndUndoesLlamaCppsRowOrder) {
  Model m = tiny_llama();
  m.module->eval();
  const Tensor before = logits(m);
  TempDir tmp("f32_llama_gguf");
  const std::string path = tmp.path + "/tiny.gguf";
  save_gguf_model(path, m, tokenizer());
  GgufFile f = load_gguf(path);
  // q is stored with each head's rotary halves interleaved, as llama.cpp's converter does
  Tensor q_file = f.to_tensor("blk.0.attn_q.weight");
  Tensor q_model =
      m.module->get_submodule("model.layers.0.self_attn.q_proj")->named_parameters()[0].second;
  EXPECT_GT(max_abs_diff(q_file, q_model), 0.0);
  EXPECT_EQ(max_abs_diff(q_file.narrow(0, 0, 1), q_model.narrow(0, 0, 1)), 0.0);
  EXPECT_EQ(max_abs_diff(q_file.narrow(0, 1, 1), q_model.narrow(0, 8, 1)), 0.0);
  Model back = from_pretrained(path);
  EXPECT_LT(max_abs_diff(logits(back), before), 1e-6);
}

TEST(QuantizedModels, GptFolderRoundTripKeepsQuantizationConfigAndLogits) {
  Model m = tiny_gpt();
  m.module->eval();
  const Tensor f32_logits = logits(m);
  nn::QuantizeOptions o;
  o.type = DType::q8_0;
  nn::QuantizeReport report = nn::quantize_modules(*m.module, o);
  EXPECT_EQ(report["transformer.h.0.attn.c_attn"], DType::q8_0);
  const Tensor before = logits(m);
  EXPECT_LT(max_abs_diff(before, f32_logits), 0.05);
  TempDir tmp("quantized_gpt");
  m.save_pretrained(tmp.path);
  const nlohmann::json config = read_config_json(tmp.path);
  ASSERT_TRUE(config.contains("quantization_config"));
  EXPECT_EQ(config["quantization_config"]["modules"]["transformer.h.1.mlp.c_proj"], "q8_0");
  SafetensorsFile file = load_safetensors(tmp.path + "/model.safetensors");
  EXPECT_EQ(file.get("transformer.h.0.attn.c_attn.weight").dtype(), DType::u8);
  EXPECT_EQ(file.get("transformer.h.0.attn.c_attn.weight").shape(), (Shape{192, 2 * 34}));
  Model back = from_pretrained(tmp.path);
  EXPECT_EQ(weight_type(back, "transformer.h.0.attn.c_attn"), DType::q8_0);
  EXPECT_EQ(max_abs_diff(logits(back), before), 0.0);
  // a broken quantization_config names the module and the type
  nlohmann::json bad = config;
  bad["quantization_config"]["modules"]["transformer.h.0.attn.c_attn"] = "q3_x";
  write_text_file_atomic(tmp.path + "/config.json", bad.dump());
  EXPECT_TRUE(contains(error_of([&] { from_pretrained(tmp.path); }),
                       "gives module transformer.h.0.attn.c_attn the type \"q3_x\""));
}

TEST(QuantizedModels, GptGgufRoundTripInQuantizedAndF32Weights) {
  for (bool quantized : {true, false}) {
    Model m = tiny_gpt();
    m.module->eval();
    if (quantized) nn::quantize_modules(*m.module, nn::QuantizeOptions{});
    const Tensor before = logits(m);
    TempDir tmp("gpt_gguf");
    const std::string path = tmp.path + "/tiny.gguf";
    save_gguf_model(path, m, tokenizer());
    GgufFile f = load_gguf(path);
    EXPECT_EQ(f.get("general.architecture").s, "gpt2");
    EXPECT_EQ(f.get("tokenizer.ggml.pre").s, "gpt-2");
    EXPECT_EQ(f.tensor("blk.1.attn_qkv.weight").dims, (std::vector<int64_t>{64, 192}));
    EXPECT_EQ(f.tensor("blk.1.attn_qkv.weight").type, quantized ? GgmlType::Q8_0 : GgmlType::F32);
    Model back = from_pretrained(path);
    EXPECT_EQ(weight_type(back, "transformer.h.1.mlp.c_fc"), quantized ? DType::q8_0 : DType::f32);
    EXPECT_LT(max_abs_diff(logits(back), before), 1e-6) << quantized;
  }
}

TEST(QuantizedModels, F32ComputeAndDequantizeModulesGiveTheDequantizedModel) {
  Model m = tiny_llama();
  m.module->eval();
  nn::QuantizeOptions o;
  o.type = DType::q4_k;  // rows of 64 and 96: q8_0 fallback everywhere, as llama.cpp's rule
  nn::QuantizeReport report = nn::quantize_modules(*m.module, o);
  EXPECT_EQ(report["model.layers.0.mlp.down_proj"], DType::q8_0);
  nn::set_f32_compute(*m.module, true);
  const Tensor exact = logits(m);
  nn::set_f32_compute(*m.module, false);
  const Tensor integer = logits(m);
  EXPECT_GT(max_abs_diff(integer, exact), 0.0);
  // 8-bit activations: within a few percent of the logits' range
  EXPECT_LT(max_abs_diff(integer, exact), 0.05 * max(abs(exact)).item<double>());
  // 14 linears, the tied head and the embedding
  EXPECT_EQ(nn::dequantize_modules(*m.module), 16);
  EXPECT_LT(max_abs_diff(logits(m), exact), 1e-5);
}

TEST(QuantizedModels, Int8FolderStoresWeightAndScaleAsSafetensorsTensors) {
  Model m = tiny_gpt();
  m.module->eval();
  const Tensor f32_logits = logits(m);
  nn::QuantizeOptions o;
  o.type = DType::i8;
  nn::quantize_modules(*m.module, o);
  const Tensor before = logits(m);
  EXPECT_LT(max_abs_diff(before, f32_logits), 0.05);
  TempDir tmp("int8_gpt");
  m.save_pretrained(tmp.path);
  SafetensorsFile file = load_safetensors(tmp.path + "/model.safetensors");
  EXPECT_EQ(file.get("transformer.h.0.mlp.c_fc.weight").dtype(), DType::i8);
  EXPECT_EQ(file.get("transformer.h.0.mlp.c_fc.weight").shape(), (Shape{256, 64}));
  EXPECT_EQ(file.get("transformer.h.0.mlp.c_fc.weight_scale").shape(), (Shape{256}));
  EXPECT_EQ(
      read_config_json(tmp.path)["quantization_config"]["modules"]["transformer.h.0.mlp.c_fc"],
      "i8");
  Model back = from_pretrained(tmp.path);
  EXPECT_EQ(weight_type(back, "transformer.h.0.mlp.c_fc"), DType::i8);
  EXPECT_EQ(max_abs_diff(logits(back), before), 0.0);
  EXPECT_TRUE(contains(error_of([&] { save_gguf_model(tmp.path + "/x.gguf", m, tokenizer()); }),
                       "per-channel int8, which GGUF has no layout for"));
}

TEST(QuantizedModels, GgufWriterNamesWhatItCannotWrite) {
  Model m = build_model(find_family("bert"), {{"vocab_size", 30},
                                              {"hidden_size", 32},
                                              {"num_hidden_layers", 1},
                                              {"num_attention_heads", 2},
                                              {"intermediate_size", 64}});
  TempDir tmp("gguf_bert");
  EXPECT_TRUE(contains(error_of([&] { save_gguf_model(tmp.path + "/b.gguf", m, tokenizer()); }),
                       "not of model_type \"bert\""));
}

}  // namespace
}  // namespace moxing::models
