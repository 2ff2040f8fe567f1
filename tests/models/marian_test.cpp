// Marian against transformers: the reference numbers (encoder states, logits, losses plain and
// label-smoothed, gradients, and the tokens of generate() greedy and with beams) come from
// tests/fixtures/models/make_marian_fixture.py, which also wrote marian_tiny/ (one shared
// vocabulary) and marian_tiny_sep/ (separate source and target vocabularies). Also saving,
// decoding with and without the cache, errors and an f64 gradcheck.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "expect_error.h"
#include "model_checks.h"
#include "moxing/autograd/gradcheck.h"
#include "moxing/autograd/node.h"
#include "moxing/io/safetensors.h"
#include "moxing/models/family.h"
#include "moxing/models/marian.h"
#include "moxing/models/seq2seq_generation.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/random.h"

namespace moxing::models {
namespace {

namespace fs = std::filesystem;
using moxing::testing::expect_error;
using moxing::testing::max_abs_diff;
using moxing::testing::parameters_named;
using moxing::testing::TempDir;

const std::string kFixtures = std::string(MOXING_FIXTURE_DIR) + "/models";

const SafetensorsFile& reference() {
  static const SafetensorsFile file =
      load_safetensors(kFixtures + "/marian_tiny_reference.safetensors");
  return file;
}

struct Case {
  const char* dir;
  const char* prefix;
};
const Case kCases[] = {{"marian_tiny", "shared."}, {"marian_tiny_sep", "sep."}};

Tensor ref(const Case& c, const std::string& name) {
  return reference().get(std::string(c.prefix) + name);
}

// the real tokens of each padded source row
std::vector<std::vector<int32_t>> sources(const Case& c) {
  Tensor ids = ref(c, "input_ids"), mask = ref(c, "attention_mask");
  std::vector<int64_t> i = ids.to_vector<int64_t>(), m = mask.to_vector<int64_t>();
  const int64_t B = ids.size(0), S = ids.size(1);
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      if (m[static_cast<size_t>(b * S + s)])
        out[static_cast<size_t>(b)].push_back(
            static_cast<int32_t>(i[static_cast<size_t>(b * S + s)]));
  return out;
}

// generate()'s rows [start, tokens..., eos, pad...] -> the tokens
std::vector<std::vector<int32_t>> generated(const Case& c, const std::string& name, int64_t eos) {
  Tensor t = ref(c, name);
  std::vector<int64_t> v = t.to_vector<int64_t>();
  const int64_t B = t.size(0), L = t.size(1);
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 1; j < L; ++j) {
      const int64_t id = v[static_cast<size_t>(b * L + j)];
      if (id == eos) break;
      out[static_cast<size_t>(b)].push_back(static_cast<int32_t>(id));
    }
  }
  return out;
}

TEST(Marian, LogitsMatchTransformers) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.dir);
    Model m = from_pretrained(kFixtures + "/" + c.dir);
    EXPECT_EQ(m.family->name, "marian");
    EXPECT_EQ(m.architecture, "MarianMTModel");
    auto& s2s = m.expect<Seq2SeqLM>("an encoder-decoder model");
    Tensor memory = s2s.encode(ref(c, "input_ids"), ref(c, "attention_mask"));
    EXPECT_LT(max_abs_diff(memory, ref(c, "encoder_hidden")), 1e-4);
    Tensor logits = s2s.decode(ref(c, "decoder_input_ids"), memory, ref(c, "attention_mask"));
    EXPECT_LT(max_abs_diff(logits, ref(c, "logits")), 1e-4);
  }
}

TEST(Marian, SharedAndSeparateVocabulariesTieAsTransformersDoes) {
  Model shared = from_pretrained(kFixtures + "/marian_tiny");
  auto* a = shared.as<MarianMTModel>();
  ASSERT_NE(a, nullptr);
  const auto* table = a->model->encoder->embed_tokens.as<nn::Embedding>()->weight.impl();
  EXPECT_EQ(a->model->decoder->embed_tokens.as<nn::Embedding>()->weight.impl(), table);
  EXPECT_EQ(a->head.as<nn::Linear>()->weight.impl(), table);
  EXPECT_EQ(a->source_vocab_size(), 40);
  EXPECT_EQ(a->target_vocab_size(), 40);

  Model sep = from_pretrained(kFixtures + "/marian_tiny_sep");
  auto* b = sep.as<MarianMTModel>();
  ASSERT_NE(b, nullptr);
  const Tensor& enc = b->model->encoder->embed_tokens.as<nn::Embedding>()->weight;
  const Tensor& dec = b->model->decoder->embed_tokens.as<nn::Embedding>()->weight;
  EXPECT_NE(enc.impl(), dec.impl());
  EXPECT_EQ(enc.size(0), 30);
  EXPECT_EQ(dec.size(0), 36);
  EXPECT_EQ(b->head.as<nn::Linear>()->weight.impl(), dec.impl());
}

TEST(Marian, LossesAndGradientsMatchTransformers) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.dir);
    Model m = from_pretrained(kFixtures + "/" + c.dir);
    auto* model = m.as<MarianMTModel>();
    ASSERT_NE(model, nullptr);
    Tensor logits =
        model->forward(ref(c, "input_ids"), ref(c, "attention_mask"), ref(c, "decoder_input_ids"));
    const int64_t V = logits.size(2);
    Tensor flat = logits.reshape({-1, V}), labels = ref(c, "labels").reshape({-1});
    Tensor smoothed = cross_entropy(flat, labels, Reduction::mean, -100, 0.1);
    EXPECT_NEAR(smoothed.item<double>(), ref(c, "loss_smoothed").item<double>(), 1e-5);
    Tensor loss = cross_entropy(flat, labels, Reduction::mean, -100);
    EXPECT_NEAR(loss.item<double>(), ref(c, "loss").item<double>(), 1e-5);
    loss.backward();
    int checked = 0;
    const std::string input_table = model->config().share_encoder_decoder_embeddings
                                        ? "model.shared.weight"
                                        : "model.encoder.embed_tokens.weight";
    for (const auto& [name, p] : model->named_parameters()) {
      std::string key = std::string(c.prefix) + "grad." + name;
      if (name == input_table) key = std::string(c.prefix) + "grad.input_embeddings";
      if (!reference().contains(key)) continue;
      ASSERT_TRUE(p.grad().defined()) << name;
      EXPECT_LT(max_abs_diff(p.grad(), reference().get(key)), 1e-5) << name;
      ++checked;
    }
    EXPECT_EQ(checked, 6);
  }
}

TEST(Marian, GreedyAndBeamSearchMatchTransformersGenerate) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.dir);
    Model m = from_pretrained(kFixtures + "/" + c.dir);
    auto& s2s = m.expect<Seq2SeqLM>("an encoder-decoder model");
    const int64_t eos = s2s.eos_token_id();
    Seq2SeqDecoding o;
    o.max_new_tokens = 9;  // the script's MAX_NEW
    EXPECT_EQ(decode_sequences(s2s, sources(c), o), generated(c, "greedy", eos));
    o.num_beams = 4;
    EXPECT_EQ(decode_sequences(s2s, sources(c), o), generated(c, "beam4", eos));
    o.num_beams = 3;
    o.length_penalty = 0.6;
    o.early_stopping = true;
    EXPECT_EQ(decode_sequences(s2s, sources(c), o), generated(c, "beam3_lp06_early", eos));
  }
}

TEST(Marian, BeamOneIsGreedyAndTheCacheChangesNoToken) {
  Model m = from_pretrained(kFixtures + "/marian_tiny_sep");
  auto& s2s = m.expect<Seq2SeqLM>("an encoder-decoder model");
  // more sentences than a batch, of different lengths, so that rows leave the batch
  std::vector<std::vector<int32_t>> src = sources(kCases[1]);
  src.push_back({5, 9, 0});
  src.push_back({7, 7, 7, 7, 7, 7, 7, 7, 0});
  Seq2SeqDecoding o;
  o.max_new_tokens = 12;
  o.batch_size = 2;
  std::vector<std::vector<int32_t>> greedy = decode_sequences(s2s, src, o);
  o.use_cache = false;
  EXPECT_EQ(decode_sequences(s2s, src, o), greedy);
  o.num_beams = 1;
  o.use_cache = true;
  o.batch_size = 5;
  EXPECT_EQ(decode_sequences(s2s, src, o), greedy);
  o.num_beams = 4;
  std::vector<std::vector<int32_t>> beams = decode_sequences(s2s, src, o);
  o.use_cache = false;
  o.batch_size = 3;
  EXPECT_EQ(decode_sequences(s2s, src, o), beams);
  EXPECT_FALSE(s2s.module().is_training());
}

TEST(Marian, SavePretrainedReloadsIdentically) {
  TempDir tmp("marian_save");
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.dir);
    Model m = from_pretrained(kFixtures + "/" + c.dir);
    const std::string dir = tmp.path + "/" + c.dir;
    m.save_pretrained(dir);
    SafetensorsFile saved = load_safetensors(dir + "/model.safetensors");
    SafetensorsFile theirs = load_safetensors(kFixtures + "/" + c.dir + "/model.safetensors");
    std::vector<std::string> a, b;
    for (const auto& [name, t] : saved.tensors) a.push_back(name);
    for (const auto& [name, t] : theirs.tensors) b.push_back(name);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b);  // the tied and sinusoidal tables are not written, as transformers 5
    Model back = from_pretrained(dir);
    auto* model = back.as<MarianMTModel>();
    ASSERT_NE(model, nullptr);
    Tensor logits =
        model->forward(ref(c, "input_ids"), ref(c, "attention_mask"), ref(c, "decoder_input_ids"));
    EXPECT_LT(max_abs_diff(logits, ref(c, "logits")), 1e-4);
    const char* keep = std::getenv("MOXING_MARIAN_SAVE_DIR");
    if (keep != nullptr) m.save_pretrained(std::string(keep) + "/" + c.dir);
  }
}

// position_embeddings = "learned" (a moxing extension): transformers' Marian with its position
// tables set to trained values and taking gradients is the reference
TEST(Marian, LearnedPositionsMatchTransformersWithTheTablesSet) {
  const SafetensorsFile r =
      load_safetensors(kFixtures + "/marian_tiny_learned_reference.safetensors");
  Model m = from_pretrained(kFixtures + "/marian_tiny_learned");
  auto* model = m.as<MarianMTModel>();
  ASSERT_NE(model, nullptr);
  ASSERT_NE(model->model->encoder->embed_positions, nullptr);
  EXPECT_NE(m.family->describe(m.config).find("learned positions"), std::string::npos);
  Tensor logits =
      model->forward(r.get("input_ids"), r.get("attention_mask"), r.get("decoder_input_ids"));
  EXPECT_LT(max_abs_diff(logits, r.get("logits")), 1e-4);
  Tensor loss = cross_entropy(logits.reshape({-1, logits.size(2)}), r.get("labels").reshape({-1}),
                              Reduction::mean, -100);
  EXPECT_NEAR(loss.item<float>(), r.get("loss").item<float>(), 1e-5);
  loss.backward();
  for (const char* name :
       {"model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight",
        "model.decoder.layers.1.fc1.weight"}) {
    SCOPED_TRACE(name);
    Tensor grad = parameters_named(*model, {name}).at(0).grad();
    ASSERT_TRUE(grad.defined());
    EXPECT_LT(max_abs_diff(grad, r.get(std::string("grad.") + name)), 1e-5);
  }
  // greedy decoding reads the tables at the cached positions
  auto& s2s = m.expect<Seq2SeqLM>("an encoder-decoder model");
  Tensor ids = r.get("input_ids"), mask = r.get("attention_mask");
  std::vector<std::vector<int32_t>> src;
  {
    std::vector<int64_t> i = ids.to_vector<int64_t>(), k = mask.to_vector<int64_t>();
    for (int64_t b = 0; b < ids.size(0); ++b) {
      src.emplace_back();
      for (int64_t t = 0; t < ids.size(1); ++t)
        if (k[static_cast<size_t>(b * ids.size(1) + t)])
          src.back().push_back(static_cast<int32_t>(i[static_cast<size_t>(b * ids.size(1) + t)]));
    }
  }
  std::vector<int64_t> g = r.get("greedy").to_vector<int64_t>();
  const int64_t L = r.get("greedy").size(1);
  std::vector<std::vector<int32_t>> want(src.size());
  for (size_t b = 0; b < src.size(); ++b) {
    for (int64_t j = 1; j < L; ++j) {
      const int64_t id = g[b * static_cast<size_t>(L) + static_cast<size_t>(j)];
      if (id == 0) break;
      want[b].push_back(static_cast<int32_t>(id));
    }
  }
  Seq2SeqDecoding o;
  o.max_new_tokens = 9;
  EXPECT_EQ(decode_sequences(s2s, src, o), want);
  // saved with the tables, which load back
  TempDir tmp("marian_learned");
  m.save_pretrained(tmp.path);
  SafetensorsFile saved = load_safetensors(tmp.path + "/model.safetensors");
  EXPECT_TRUE(std::any_of(saved.tensors.begin(), saved.tensors.end(), [](const auto& nt) {
    return nt.first == "model.encoder.embed_positions.weight";
  }));
  Model back = from_pretrained(tmp.path);
  Tensor again = back.as<MarianMTModel>()->forward(ids, mask, r.get("decoder_input_ids"));
  EXPECT_LT(max_abs_diff(again, r.get("logits")), 1e-4);
}

TEST(Marian, SinusoidalTableHasSinFirstAndCosSecond) {
  Tensor t = marian_sinusoidal_positions(3, 5);  // odd width: 3 sin columns, 2 cos columns
  std::vector<float> v = t.to_vector<float>();
  const double p = 2.0;
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(v[static_cast<size_t>(2 * 5 + c)], std::sin(p / std::pow(1e4, 2.0 * c / 5)), 1e-6);
  }
  for (int64_t c = 0; c < 2; ++c) {
    EXPECT_NEAR(v[static_cast<size_t>(2 * 5 + 3 + c)], std::cos(p / std::pow(1e4, 2.0 * c / 5)),
                1e-6);
  }
  EXPECT_EQ(v[0], 0.0f);  // sin(0)
  EXPECT_EQ(v[3], 1.0f);  // cos(0)
}

TEST(Marian, BadInputIsAClearError) {
  Model m = from_pretrained(kFixtures + "/marian_tiny");
  auto& s2s = m.expect<Seq2SeqLM>("an encoder-decoder model");
  Seq2SeqDecoding o;
  o.num_beams = 41;
  expect_error(
      [&] {
        decode_sequences(s2s, {{3, 0}}, o);
      },
      "41 beams are more than the target vocabulary of 40 tokens");
  o.num_beams = 1;
  expect_error([&] { decode_sequences(s2s, {{}}, o); }, "source 0 is empty");
  expect_error([&] { decode_sequences(s2s, {std::vector<int32_t>(33, 3)}, o); },
               "more than the model's 32 positions");
  expect_error(
      [&] {
        s2s.encode(zeros({1, 33}, DType::i64));
      },
      "33 positions of the source exceed the model's max_position_embeddings = 32");
  nlohmann::json bad = m.config;
  bad["d_model"] = 18;
  expect_error([&] { build_model(*m.family, bad, "", nullptr, true); },
               "d_model 18 must be a positive multiple of the attention heads 4");
  bad = m.config;
  bad["position_embeddings"] = "rotary";
  expect_error([&] { build_model(*m.family, bad, "", nullptr, true); },
               "position_embeddings must be \"sinusoidal\" or \"learned\", got \"rotary\"");
}

TEST(Marian, GradcheckMicroModelF64) {
  for (bool shared : {true, false}) {
    SCOPED_TRACE(shared ? "shared, learned positions" : "separate, sinusoidal positions");
    MarianConfig c;
    c.position_embeddings = shared ? "learned" : "sinusoidal";
    c.vocab_size = 9;
    c.decoder_vocab_size = shared ? 9 : 7;
    c.share_encoder_decoder_embeddings = shared;
    c.d_model = 8;
    c.encoder_layers = c.decoder_layers = 1;
    c.encoder_attention_heads = c.decoder_attention_heads = 2;
    c.encoder_ffn_dim = c.decoder_ffn_dim = 12;
    c.max_position_embeddings = 8;
    // the start token is not the pad token here: torch (and moxing) give the pad row of an
    // embedding no gradient, which a finite difference would see
    c.pad_token_id = 1;
    c.decoder_start_token_id = 2;
    c.eos_token_id = 0;
    c.scale_embedding = shared;
    c.activation_function = shared ? "gelu" : "swish";
    c.init_std = 0.3;
    Generator gen(3);
    MarianMTModel model(c, &gen);
    model.to(DType::f64);
    model.eval();
    for (auto& [name, t] : model.named_parameters()) {
      if (t.dim() == 1) {
        NoGradGuard no_grad;
        t.add_(randn(t.shape(), DType::f64, &gen) * 0.3);
      }
    }
    Tensor src = from_vector<int64_t>({4, 7, 3, 0, 5, 2, 0, 1}, {2, 4});
    Tensor mask = from_vector<int64_t>({1, 1, 1, 1, 1, 1, 1, 0}, {2, 4});
    Tensor tgt = from_vector<int64_t>({2, 3, 5, 2, 6, 4}, {2, 3});
    Tensor labels = from_vector<int64_t>({3, 5, 0, 6, 4, -100}, {6});
    auto f = [&](const std::vector<Tensor>&) {
      Tensor logits = model.forward(src, mask, tgt);
      return cross_entropy(logits.reshape({6, logits.size(2)}), labels, Reduction::mean, -100, 0.1);
    };
    std::set<std::string> names = {"model.encoder.layers.0.self_attn.q_proj.weight",
                                   "model.encoder.layers.0.final_layer_norm.bias",
                                   "model.decoder.layers.0.encoder_attn.k_proj.weight",
                                   "model.decoder.layers.0.self_attn_layer_norm.weight",
                                   "model.decoder.layers.0.fc2.bias"};
    names.insert(shared ? "model.shared.weight" : "model.decoder.embed_tokens.weight");
    if (shared) names.insert("model.decoder.embed_positions.weight");
    std::vector<Tensor> inputs = parameters_named(model, names);
    ASSERT_EQ(inputs.size(), shared ? 7u : 6u);
    autograd::GradcheckResult r = autograd::gradcheck(f, inputs);
    EXPECT_TRUE(r.ok) << r.message;
  }
}

}  // namespace
}  // namespace moxing::models
