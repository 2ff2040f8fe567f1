// load_state_dict's options: a dtype mismatch is reported with the other key problems unless
// convert_dtype; assign takes the given tensors' storage (zero copies from a mapped
// safetensors file), keeps requires_grad, accepts strided views and keeps tied parameters tied.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "expect_error.h"
#include "moxing/autograd/node.h"
#include "moxing/io/safetensors.h"
#include "moxing/nn/layers.h"
#include "moxing/nn/serialize.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"

using namespace moxing;
using moxing::testing::expect_error;
namespace fs = std::filesystem;

namespace {

std::vector<float> values(const Tensor& t) { return t.contiguous().to_vector<float>(); }

// Two linears sharing one weight tensor ("a.weight" and "b.weight" are one TensorImpl).
struct Tied : nn::Module {
  std::shared_ptr<nn::Linear> a, b;
  Tied() {
    a = register_module("a", std::make_shared<nn::Linear>(3, 3, false));
    b = register_module("b", std::make_shared<nn::Linear>(3, 3, false));
    b->weight = b->register_parameter("weight", a->weight);
  }
};

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             fmt::format("moxing_load_test_{}_{}.safetensors", getpid(),
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
  }
  void TearDown() override { fs::remove(path_); }
  std::string path_;
};

}  // namespace

TEST(Load, DtypeMismatchIsReportedWithTheOtherProblems) {
  nn::Linear m(3, 2);
  nn::TensorList state = {{"weight", full({2, 3}, 0.25, DType::f64)}, {"extra", zeros({1})}};
  expect_error([&] { m.load_state_dict(state); },
               "load_state_dict: missing keys: bias; unexpected keys: extra; dtype mismatch: "
               "weight is f64 in the checkpoint but f32 in the model (pass convert_dtype to "
               "convert them to the model's dtypes)");
  expect_error([&] { m.load_state_dict(state, false); }, "dtype mismatch: weight is f64");
  auto r = m.load_state_dict(state, {.strict = false, .convert_dtype = true});
  EXPECT_EQ(r.missing_keys, std::vector<std::string>{"bias"});
  EXPECT_EQ(r.unexpected_keys, std::vector<std::string>{"extra"});
  EXPECT_EQ(m.weight.dtype(), DType::f32);
  EXPECT_EQ(values(m.weight), std::vector<float>(6, 0.25f));
}

TEST_F(LoadTest, AssignSharesTheMappedFileWithNoCopy) {
  Generator gen(5);
  nn::Linear source(4, 3, true, &gen);
  nn::save_module(source, path_);
  SafetensorsFile file = load_safetensors(path_);

  nn::Linear m(4, 3);
  m.load_state_dict(file.tensors, {.assign = true});
  const Tensor given = file.get("weight");
  EXPECT_EQ(m.weight.impl()->storage, given.impl()->storage);
  auto* p = static_cast<const uint8_t*>(m.weight.raw_data());
  EXPECT_GE(p, file.bytes);
  EXPECT_LT(p, file.bytes + file.size);
  EXPECT_EQ(m.named_parameters()[0].second.impl(), m.weight.impl());  // the member followed
  EXPECT_TRUE(m.weight.requires_grad());
  EXPECT_TRUE(m.bias.requires_grad());

  Tensor x = randn({2, 4}, DType::f32, &gen);
  EXPECT_EQ(values(m.forward(x)), values(source.forward(x)));
  sum(m.forward(x)).backward();
  EXPECT_EQ(m.weight.grad().shape(), (Shape{3, 4}));

  // an optimizer-like update changes the parameter, not the file
  {
    NoGradGuard no_grad;
    m.weight.add_(ones({3, 4}));
  }
  EXPECT_EQ(values(m.weight), values(add(source.weight, 1.0)));
  EXPECT_EQ(values(load_safetensors(path_).get("weight")), values(source.weight));

  nn::Linear via_load_module(4, 3);
  nn::load_module(via_load_module, path_, {.assign = true});
  EXPECT_EQ(values(via_load_module.weight), values(source.weight));
}

TEST(Load, AssignTakesAStridedViewAndConvertsWhenAsked) {
  nn::Linear m(3, 2, false);
  Tensor t = from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  m.load_state_dict({{"weight", t.transpose(0, 1)}}, {.assign = true});
  EXPECT_FALSE(m.weight.is_contiguous());
  EXPECT_EQ(m.weight.impl()->storage, t.impl()->storage);
  EXPECT_EQ(values(m.weight), (std::vector<float>{1, 3, 5, 2, 4, 6}));
  Tensor x = from_vector<float>({1, 0, 0}, {1, 3});
  EXPECT_EQ(values(m.forward(x)), (std::vector<float>{1, 2}));

  Tensor d = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  expect_error(
      [&] {
        m.load_state_dict({{"weight", d}}, {.assign = true});
      },
      "dtype mismatch: weight is f64 in the checkpoint but f32 in the model");
  m.load_state_dict({{"weight", d}}, {.assign = true, .convert_dtype = true});
  EXPECT_EQ(m.weight.dtype(), DType::f32);
  EXPECT_EQ(values(m.weight), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(m.weight.requires_grad());
}

TEST(Load, AssignKeepsTiedParametersTied) {
  Tied m;
  Tensor w = from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3});
  m.load_state_dict({{"a.weight", w}, {"b.weight", w}}, {.assign = true});
  EXPECT_EQ(m.a->weight.impl(), m.b->weight.impl());
  EXPECT_EQ(m.a->weight.impl()->storage, w.impl()->storage);
  EXPECT_EQ(m.b->weight.impl()->storage, w.impl()->storage);
  // two different tensors under the two names: the first name is the one loaded
  Tensor other = zeros({3, 3});
  m.load_state_dict({{"a.weight", w}, {"b.weight", other}}, {.assign = true});
  EXPECT_EQ(m.b->weight.impl()->storage, w.impl()->storage);
}
