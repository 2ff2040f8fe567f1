// Model families and the one loader: the registry, building on the meta device without memory,
// zero-copy loading, config.json keys kept, sharded folders, explicit dtypes, and module
// surgery reaching a family's forward.
#include <gtest/gtest.h>

#include <algorithm>

#include <filesystem>
#include <fstream>

#include "expect_error.h"
#include "moxing/core/allocator.h"
#include "moxing/io/checkpoint.h"
#include "moxing/io/safetensors.h"
#include "moxing/models/cnn.h"
#include "moxing/models/family.h"
#include "moxing/models/gpt.h"
#include "moxing/models/mlp.h"
#include "moxing/nn/layers.h"

namespace moxing::models {
namespace {

namespace fs = std::filesystem;
using moxing::testing::expect_error;

const std::string kGpt2Dir = std::string(MOXING_FIXTURE_DIR) + "/models/gpt2_tiny";

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("moxing_family_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = x.size() == y.size() ? 0.0 : 1e30;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

TEST(Family, RegistryFindsFamiliesByNameAliasAndConfig) {
  std::vector<std::string> names;
  for (const Family* f : families()) names.push_back(f->name);
  // sorted, each once (other families may join them)
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  for (const char* n : {"bert", "cnn", "gpt2", "lstm", "marian", "mlp"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
  EXPECT_EQ(find_family("gpt").name, "gpt2");
  EXPECT_EQ(find_family("gpt2").architecture().task, "causal-lm");
  EXPECT_EQ(family_of_config({{"architectures", {"GPT2LMHeadModel"}}}, "c").name, "gpt2");
  expect_error([] { find_family("resnet"); },
               "unknown model 'resnet' (moxing knows: bert, cnn, dcgan, gpt2");
  expect_error([] { find_family("gpt2").architecture("GPT2ForQuestionAnswering"); },
               "family gpt2 has no architecture GPT2ForQuestionAnswering (it builds: "
               "GPT2LMHeadModel)");
}

TEST(Family, MlpAndCnnShapes) {
  Generator g(0);
  auto m = make_mlp(MLPConfig{}, &g);
  EXPECT_EQ(m->num_parameters(), 784 * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(m->forward(zeros({2, 1, 28, 28})).shape(), (Shape{2, 10}));
  CNNConfig cnn;
  cnn.channels = {4, 8};
  cnn.hidden = {};
  auto c = make_cnn(cnn, &g);
  EXPECT_EQ(c->num_parameters(), (4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * 7 * 7 * 10 + 10));
  EXPECT_EQ(c->forward(zeros({3, 1, 28, 28})).shape(), (Shape{3, 10}));
  cnn.image_size = 3;
  expect_error([&] { make_cnn(cnn, &g); }, "cnn: a 3x3 input is too small for 2 conv blocks");
}

// GPT-2 small (124M parameters) built on meta: shapes only, not one byte of tensor memory.
TEST(Family, Gpt2SmallOnMetaAllocatesNothing) {
  const size_t before = allocator_bytes_in_use(DeviceType::cpu);
  Model m;
  {
    DeviceGuard meta(kMeta);
    m = build_model(find_family("gpt2"), nlohmann::json::object());
  }
  EXPECT_EQ(allocator_bytes_in_use(DeviceType::cpu), before);
  EXPECT_EQ(m.module->num_parameters(), 124439808);
  for (const Tensor& p : m.module->parameters()) EXPECT_EQ(p.device(), kMeta);
}

// from_pretrained builds on meta and the weights view the mapped file: no copy of them.
TEST(Family, FromPretrainedViewsTheFile) {
  const size_t before = allocator_bytes_in_use(DeviceType::cpu);
  Model m = from_pretrained(kGpt2Dir);
  int64_t bytes = 0;
  for (const Tensor& p : m.module->parameters()) bytes += p.numel() * 4;
  EXPECT_LT(allocator_bytes_in_use(DeviceType::cpu) - before, static_cast<size_t>(bytes / 10));
  auto* gpt = m.as<GPT>();
  ASSERT_NE(gpt, nullptr);
  auto c_attn = gpt->transformer->h->at<GPTBlock>(0)->attn->c_attn.as<nn::Linear>();
  EXPECT_FALSE(c_attn->weight.is_contiguous());  // the file's (in, out) read transposed
  EXPECT_EQ(c_attn->weight.shape(), (Shape{192, 64}));
}

TEST(Family, ConfigKeysAreKeptAndShardsLoad) {
  fs::path d = temp_dir("shards");
  nlohmann::json config = read_config_json(kGpt2Dir);
  config["my_note"] = "kept";
  std::ofstream(d / "config.json") << config.dump();
  // two shards and their index, as transformers writes large models
  SafetensorsFile file = load_safetensors(kGpt2Dir + "/model.safetensors");
  NamedTensors a, b;
  nlohmann::json map;
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const std::string shard =
        i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
    (i % 2 ? b : a).push_back(file.tensors[i]);
    map[file.tensors[i].first] = shard;
  }
  save_safetensors((d / "model-00001-of-00002.safetensors").string(), a);
  save_safetensors((d / "model-00002-of-00002.safetensors").string(), b);
  std::ofstream(d / "model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
  Model sharded = from_pretrained(d.string());
  Model single = from_pretrained(kGpt2Dir);
  Tensor ids = from_vector<int64_t>({1, 5, 9, 2}, {1, 4});
  EXPECT_EQ(max_abs_diff(sharded.as<GPT>()->forward(ids), single.as<GPT>()->forward(ids)), 0.0);
  EXPECT_EQ(sharded.config.at("my_note"), "kept");
  fs::path out = d / "saved";
  sharded.save_pretrained(out.string());
  nlohmann::json back = read_config_json(out.string());
  EXPECT_EQ(back.at("my_note"), "kept");
  EXPECT_EQ(back.at("dtype"), "float32");
  EXPECT_EQ(back.at("model_type"), "gpt2");
  // a shard the index names but the folder lacks
  fs::remove(d / "model-00002-of-00002.safetensors");
  expect_error([&] { from_pretrained(d.string()); }, "model-00002-of-00002.safetensors");
}

TEST(Family, DtypesAreExplicit) {
  fs::path d = temp_dir("dtype");
  nlohmann::json config = read_config_json(kGpt2Dir);
  config["dtype"] = "float64";  // the file holds f32
  std::ofstream(d / "config.json") << config.dump();
  fs::copy_file(kGpt2Dir + "/model.safetensors", d / "model.safetensors");
  expect_error([&] { from_pretrained(d.string()); }, "convert_dtype");
  PretrainedOptions f32;
  f32.dtype = DType::f32;
  EXPECT_EQ(from_pretrained(d.string(), f32).module->parameters()[0].dtype(), DType::f32);
  config["dtype"] = "int8";
  std::ofstream(d / "config.json") << config.dump();
  expect_error([&] { from_pretrained(d.string()); },
               "\"dtype\": int8 is not a floating dtype moxing has");
}

// Module surgery reaches GPT's forward: every Linear swapped for a wrapper that counts its
// calls and returns the same values.
class CountingLinear : public nn::UnaryModule {
 public:
  explicit CountingLinear(std::shared_ptr<nn::Linear> inner, int* calls)
      : inner_(register_module("inner", std::move(inner))), calls_(calls) {}
  Tensor forward(const Tensor& x) override {
    ++*calls_;
    return inner_->forward(x);
  }

 private:
  std::shared_ptr<nn::Linear> inner_;
  int* calls_;
};

TEST(Family, SurgeryReachesTheForward) {
  Model m = from_pretrained(kGpt2Dir);
  auto* gpt = m.as<GPT>();
  Tensor ids = from_vector<int64_t>({3, 1, 4, 1, 5}, {1, 5});
  Tensor before = gpt->forward(ids);
  int calls = 0;
  int replaced = m.module->replace_modules<nn::Linear>(
      [&](const std::string&, std::shared_ptr<nn::Linear> l) -> std::shared_ptr<nn::Module> {
        return std::make_shared<CountingLinear>(l, &calls);
      });
  EXPECT_EQ(replaced, 2 * 4 + 1);  // c_attn, c_proj, c_fc, c_proj per block, and lm_head
  EXPECT_EQ(max_abs_diff(gpt->forward(ids), before), 0.0);
  EXPECT_EQ(calls, replaced);
}

}  // namespace
}  // namespace moxing::models
