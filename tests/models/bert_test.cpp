// BERT against transformers: the reference numbers (hidden states, pooler output, classifier and
// MLM logits of a padded sentence-pair batch, a training loss and gradients) come from
// tests/fixtures/models/make_bert_fixture.py, which also wrote bert_tiny_mlm/ and
// bert_tiny_cls/. Also saving, config.json handling, errors and an f64 gradcheck.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "expect_error.h"
#include "model_checks.h"
#include "moxing/autograd/gradcheck.h"
#include "moxing/autograd/node.h"
#include "moxing/io/safetensors.h"
#include "moxing/models/bert.h"
#include "moxing/models/family.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/loss.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"

namespace moxing::models {
namespace {

namespace fs = std::filesystem;
using moxing::testing::expect_error;
using moxing::testing::expect_gradients_match;
using moxing::testing::max_abs_diff;
using moxing::testing::parameters_named;
using moxing::testing::TempDir;

const std::string kFixtures = std::string(MOXING_FIXTURE_DIR) + "/models";
const std::string kMlmDir = kFixtures + "/bert_tiny_mlm";
const std::string kClsDir = kFixtures + "/bert_tiny_cls";

const SafetensorsFile& reference() {
  static const SafetensorsFile file =
      load_safetensors(kFixtures + "/bert_tiny_reference.safetensors");
  return file;
}

EncoderInputs batch() {
  return {reference().get("input_ids"), reference().get("token_type_ids"),
          reference().get("attention_mask")};
}

// The rows of (B,T,C) hidden states at real tokens only: padded positions mean nothing.
double max_abs_diff_unpadded(const Tensor& a, const Tensor& b, const Tensor& mask) {
  std::vector<int64_t> m = mask.to_vector<int64_t>();
  const int64_t B = a.size(0), T = a.size(1);
  double worst = 0;
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t t = 0; t < T; ++t) {
      if (m[static_cast<size_t>(i * T + t)] == 0) continue;
      worst =
          std::max(worst, max_abs_diff(a.select(0, i).select(0, t), b.select(0, i).select(0, t)));
    }
  }
  return worst;
}

TEST(Bert, EncoderAndClassifierMatchTransformers) {
  Model m = from_pretrained(kClsDir);
  EXPECT_EQ(m.family->name, "bert");
  EXPECT_EQ(m.architecture, "BertForSequenceClassification");
  auto& cls = m.expect<SequenceClassifier>("a sequence classifier");
  EXPECT_EQ(cls.num_labels(), 3);  // from id2label: config.json has no num_labels
  EXPECT_EQ(cls.labels(), (std::vector<std::string>{"negative", "neutral", "positive"}));
  EXPECT_FALSE(cls.module().is_training());

  auto& enc = m.expect<TextEncoder>("a text encoder");
  Tensor hidden = enc.encode(batch());
  EXPECT_LT(max_abs_diff_unpadded(hidden, reference().get("last_hidden_state"),
                                  reference().get("attention_mask")),
            1e-4);
  // padded positions too: their queries attend to the real keys, as in transformers (not zeros)
  EXPECT_LT(max_abs_diff(hidden, reference().get("last_hidden_state")), 1e-4);
  auto* model = m.as<BertForSequenceClassification>();
  ASSERT_NE(model, nullptr);
  EXPECT_LT(max_abs_diff(model->bert->pool(hidden), reference().get("pooler_output")), 1e-4);
  EXPECT_LT(max_abs_diff(cls.classify(batch()), reference().get("cls_logits")), 1e-4);
  // no token types and no mask: zeros and all ones
  Tensor first = reference().get("input_ids").narrow(0, 0, 1);
  EXPECT_LT(
      max_abs_diff(cls.classify({first, Tensor(), Tensor()}), reference().get("cls_logits_plain")),
      1e-4);
}

TEST(Bert, MaskedLMMatchesTransformersAndTiesTheDecoder) {
  Model m = from_pretrained(kMlmDir);
  EXPECT_EQ(m.architecture, "BertForMaskedLM");
  auto& mlm = m.expect<MaskedLM>("a masked language model");
  EXPECT_EQ(mlm.vocab_size(), 120);
  Tensor logits = mlm.mlm_logits(batch());
  EXPECT_LT(max_abs_diff_unpadded(logits, reference().get("mlm_logits"),
                                  reference().get("attention_mask")),
            1e-4);
  auto* model = m.as<BertForMaskedLM>();
  ASSERT_NE(model, nullptr);
  auto decoder = model->decoder.as<nn::Linear>();
  EXPECT_EQ(decoder->weight.impl(),
            model->bert->embeddings->word_embeddings.as<nn::Embedding>()->weight.impl());
  EXPECT_EQ(model->num_parameters(), 120 * 32 + 40 * 32 + 2 * 32 + 2 * 32 +
                                         2 * (3 * (32 * 32 + 32) + 32 * 32 + 32 + 2 * 32 + 32 * 48 +
                                              48 + 48 * 32 + 32 + 2 * 32) +
                                         32 * 32 + 32 + 2 * 32 + 120);
}

TEST(Bert, StateDictNamesAreTransformersNames) {
  Model m = from_pretrained(kClsDir);
  SafetensorsFile file = load_safetensors(kClsDir + "/model.safetensors");
  std::vector<std::string> ours, theirs;
  for (const auto& [name, t] : m.module->state_dict()) ours.push_back(name);
  for (const auto& [name, t] : file.tensors) theirs.push_back(name);
  std::sort(ours.begin(), ours.end());
  std::sort(theirs.begin(), theirs.end());
  EXPECT_EQ(ours, theirs);
}

TEST(Bert, TrainingLossAndGradientsMatchTransformers) {
  Model m = from_pretrained(kClsDir);
  m.module->eval();  // the fixture's batch ran without dropout
  auto& cls = m.expect<SequenceClassifier>("a sequence classifier");
  Tensor loss = cross_entropy(cls.classify(batch()), reference().get("labels"));
  EXPECT_NEAR(loss.item<double>(), reference().get("train_loss").item<double>(), 1e-5);
  loss.backward();
  const int checked = expect_gradients_match(*m.module, reference(), 1e-5);
  EXPECT_EQ(checked, 6);
}

TEST(Bert, EncoderFolderLoadsIntoANewClassifierHead) {
  // a BertModel folder (the body without "bert.", as sentence encoders ship) fine-tuned with a
  // new head: the head is reported as newly initialized
  TempDir tmp("bert_encoder");
  Model cls = from_pretrained(kClsDir);
  Model body;
  body.family = cls.family;
  body.architecture = "BertModel";
  body.config = cls.config;
  body.config["architectures"] = nlohmann::json::array({"BertModel"});
  body.module = cls.as<BertForSequenceClassification>()->bert;
  body.save_pretrained(tmp.path);
  SafetensorsFile file = load_safetensors(tmp.path + "/model.safetensors");
  EXPECT_TRUE(file.contains("embeddings.word_embeddings.weight"));

  PretrainedOptions o;
  o.architecture = "BertForSequenceClassification";
  o.allow_missing = true;
  o.overrides = {{"num_labels", 2}};
  LoadReport report;
  Model tuned = from_pretrained(tmp.path, o, &report);
  EXPECT_EQ(report.newly_initialized,
            (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_EQ(tuned.expect<SequenceClassifier>("a classifier").num_labels(), 2);
  EXPECT_EQ(tuned.expect<SequenceClassifier>("a classifier").labels(),
            (std::vector<std::string>{"LABEL_0", "LABEL_1"}));
  Tensor hidden = tuned.expect<TextEncoder>("an encoder").encode(batch());
  EXPECT_LT(max_abs_diff_unpadded(hidden, reference().get("last_hidden_state"),
                                  reference().get("attention_mask")),
            1e-4);
}

TEST(Bert, SavePretrainedReloadsIdentically) {
  TempDir tmp("bert_saved");
  Model m = from_pretrained(kMlmDir);
  m.save_pretrained(tmp.path);
  // MOXING_BERT_SAVE_DIR keeps both folders for check_bert_roundtrip.py (see that script)
  if (const char* keep = std::getenv("MOXING_BERT_SAVE_DIR")) {
    m.save_pretrained(std::string(keep) + "/mlm");
    from_pretrained(kClsDir).save_pretrained(std::string(keep) + "/cls");
  }
  SafetensorsFile file = load_safetensors(tmp.path + "/model.safetensors");
  EXPECT_TRUE(file.contains("cls.predictions.bias"));  // the tied bias under transformers' name
  EXPECT_FALSE(file.contains("cls.predictions.decoder.weight"));
  EXPECT_FALSE(file.contains("cls.predictions.decoder.bias"));
  Model again = from_pretrained(tmp.path);
  EXPECT_EQ(max_abs_diff(again.expect<MaskedLM>("mlm").mlm_logits(batch()),
                         m.expect<MaskedLM>("mlm").mlm_logits(batch())),
            0.0);

  TempDir tmp2("bert_saved_cls");
  Model c = from_pretrained(kClsDir);
  c.save_pretrained(tmp2.path);
  nlohmann::json j = read_config_json(tmp2.path);
  EXPECT_EQ(j["id2label"]["2"], "positive");
  EXPECT_EQ(j["label2id"]["neutral"], 1);
  EXPECT_TRUE(j["problem_type"].is_null());
  EXPECT_TRUE(j.contains("is_decoder"));  // keys moxing does not use are kept
}

TEST(Bert, ConfigErrorsNameTheKey) {
  const Family& f = find_family("bert");
  nlohmann::json base = {{"hidden_size", 32}, {"num_attention_heads", 4}};
  auto resolve_with = [&](const nlohmann::json& extra) {
    nlohmann::json j = base;
    j.update(extra);
    return f.resolve(j, "config.json", true);
  };
  expect_error(
      [&] {
        resolve_with({{"num_attention_heads", 5}});
      },
      "hidden_size 32 must be a multiple of num_attention_heads 5");
  expect_error([&] { resolve_with({{"hidden_act", "swish"}}); }, "hidden_act \"swish\"");
  expect_error(
      [&] {
        resolve_with({{"position_embedding_type", "relative_key"}});
      },
      "position_embedding_type \"relative_key\"");
  expect_error([&] { resolve_with({{"problem_type", "ranking"}}); }, "problem_type \"ranking\"");
  expect_error(
      [&] {
        resolve_with({{"id2label", {{"0", 1}}}});
      },
      "\"id2label\" must be an object of strings");
  expect_error(
      [&] {
        f.resolve({{"hidden_sise", 8}}, "[model]", false);
      },
      "unknown key 'hidden_sise'");
  nlohmann::json r = resolve_with({{"num_labels", 4}});
  EXPECT_EQ(r["id2label"].size(), 4u);
  EXPECT_EQ(r["label2id"]["LABEL_3"], 3);
  r = resolve_with({{"id2label", {{"0", "no"}, {"1", "yes"}}}, {"problem_type", "regression"}});
  EXPECT_EQ(r["num_labels"], 2);
  EXPECT_EQ(r["label2id"]["yes"], 1);
  EXPECT_EQ(r["problem_type"], "regression");

  Model m = from_pretrained(kClsDir);
  auto& enc = m.expect<TextEncoder>("an encoder");
  Tensor ids = reference().get("input_ids");
  expect_error([&] { enc.encode({ids.reshape({-1}), Tensor(), Tensor()}); }, "must be 2-D");
  expect_error(
      [&] {
        enc.encode({zeros({1, 41}, DType::i64), Tensor(), Tensor()});
      },
      "41 positions exceed the model's max_position_embeddings = 40");
  expect_error(
      [&] {
        enc.encode({ids, zeros({1, 2}, DType::i64), Tensor()});
      },
      "token_type_ids has shape");
}

TEST(Bert, BuildsOnMetaWithoutMemory) {
  DeviceGuard meta(kMeta);
  Model m = build_model(find_family("bert"), nlohmann::json::object(), "BertForMaskedLM");
  for (const auto& [name, t] : m.module->state_dict()) EXPECT_TRUE(t.is_meta()) << name;
  // BERT-base with its MLM head: 109.5M parameters, as transformers counts them
  EXPECT_EQ(m.module->num_parameters(), 109514298);
}

TEST(Bert, GradcheckMicroModelF64) {
  BertConfig c;
  c.vocab_size = 13;
  c.hidden_size = 8;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.intermediate_size = 12;
  c.max_position_embeddings = 8;
  c.initializer_range = 0.3;
  c.layer_norm_eps = 1e-5;
  c.num_labels = 3;
  Generator gen(3);
  BertForSequenceClassification model(c, &gen);
  model.to(DType::f64);
  model.eval();
  for (auto& [name, t] : model.named_parameters()) {
    if (t.dim() == 1) {
      NoGradGuard no_grad;
      t.add_(randn(t.shape(), DType::f64, &gen) * 0.3);
    }
  }
  Tensor ids = from_vector<int64_t>({2, 5, 12, 3, 0, 0, 7, 1, 9, 4, 6, 11}, {2, 6});
  Tensor types = from_vector<int64_t>({0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1}, {2, 6});
  Tensor mask = from_vector<int64_t>({1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}, {2, 6});
  Tensor targets = from_vector<int64_t>({2, 0}, {2});
  std::vector<Tensor> inputs =
      parameters_named(model, {"bert.embeddings.word_embeddings.weight",
                               "bert.embeddings.token_type_embeddings.weight",
                               "bert.encoder.layer.0.attention.self.key.weight",
                               "bert.encoder.layer.0.attention.output.LayerNorm.weight",
                               "bert.encoder.layer.0.intermediate.dense.bias",
                               "bert.pooler.dense.weight", "classifier.weight"});
  ASSERT_EQ(inputs.size(), 7u);
  for (bool skip_padding : {false, true}) {
    auto f = [&](const std::vector<Tensor>&) {
      return cross_entropy(model.classify({ids, types, mask, skip_padding}), targets);
    };
    autograd::GradcheckResult r = autograd::gradcheck(f, inputs);
    EXPECT_TRUE(r.ok) << "skip_padding " << skip_padding << ": " << r.message;
  }
}

// Layers run on the real tokens alone: the same states at real tokens, zeros at padded ones,
// and transformers' loss and gradients.
TEST(Bert, SkippingPaddingKeepsStatesLossAndGradients) {
  Model m = from_pretrained(kClsDir);
  m.module->eval();
  EncoderInputs packed = batch();
  packed.skip_padding = true;
  auto& enc = m.expect<TextEncoder>("a text encoder");
  Tensor hidden = enc.encode(packed);
  const Tensor& mask = reference().get("attention_mask");
  ASSERT_LT(sum(mask).item<double>(), static_cast<double>(mask.numel()));  // some padding
  EXPECT_LT(max_abs_diff_unpadded(hidden, reference().get("last_hidden_state"), mask), 1e-4);
  EXPECT_EQ(max_abs_diff(mul(hidden, sub(ones_like(mask), mask).to(hidden.dtype()).unsqueeze(2)),
                         zeros_like(hidden)),
            0.0);
  auto& cls = m.expect<SequenceClassifier>("a sequence classifier");
  Tensor loss = cross_entropy(cls.classify(packed), reference().get("labels"));
  EXPECT_NEAR(loss.item<double>(), reference().get("train_loss").item<double>(), 1e-5);
  loss.backward();
  EXPECT_EQ(expect_gradients_match(*m.module, reference(), 1e-5), 6);
}

}  // namespace
}  // namespace moxing::models
