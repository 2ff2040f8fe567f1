// Shape family: values from tests/fixtures/shape.py (PyTorch), f64 gradchecks, non-contiguous
// inputs, and error cases. Storage sharing and strides are tested in tests/core/view_test.cpp.
#include <gtest/gtest.h>

#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES(
    "shape",
    std::vector<OpCase>{
        {"view",
         [](const V& x) {
           return x[0].view({4, 6});
         }},
        {"view_infer",
         [](const V& x) {
           return x[0].view({-1, 4});
         }},
        {"reshape",
         [](const V& x) {
           return x[0].reshape({3, 8});
         }},
        {"reshape_after_permute",
         [](const V& x) {
           return x[0].permute({1, 0, 2}).reshape({3, -1});
         }},
        {"permute",
         [](const V& x) {
           return x[0].permute({2, 0, 1});
         }},
        {"transpose", [](const V& x) { return x[0].transpose(0, 2); }},
        {"transpose_neg", [](const V& x) { return x[0].transpose(-1, -2); }},
        {"slice_step", [](const V& x) { return x[0].slice(1, 1, 7, 2); }},
        {"slice_neg", [](const V& x) { return x[0].slice(0, -3, -1); }},
        {"slice_dim2_step3", [](const V& x) { return x[0].slice(2, 0, 7, 3); }},
        {"select", [](const V& x) { return x[0].select(1, 2); }},
        {"select_neg", [](const V& x) { return x[0].select(-1, -1); }},
        {"narrow", [](const V& x) { return x[0].narrow(1, 1, 3); }},
        {"expand",
         [](const V& x) {
           return x[0].expand({4, 3});
         }},
        {"expand_new_dims",
         [](const V& x) {
           return x[0].expand({2, 3, 4});
         }},
        {"squeeze", [](const V& x) { return x[0].squeeze(); }},
        {"squeeze_dim", [](const V& x) { return x[0].squeeze(1); }},
        {"unsqueeze", [](const V& x) { return x[0].unsqueeze(1); }},
        {"unsqueeze_neg", [](const V& x) { return x[0].unsqueeze(-1); }},
        {"flatten", [](const V& x) { return x[0].flatten(); }},
        {"flatten_range", [](const V& x) { return x[0].flatten(1, 2); }},
        {"chunk", [](const V& x) { return x[0].chunk(3, 1)[1]; }},
        {"chunk_last", [](const V& x) { return x[0].chunk(3, 1)[2]; }},
        {"split", [](const V& x) { return x[0].split(2, 0)[1]; }},
        {"split_sizes",
         [](const V& x) {
           return split(x[0], std::vector<int64_t>{1, 3}, 1)[1];
         }},
        {"contiguous_of_transpose", [](const V& x) { return x[0].t().contiguous(); }},
        {"clone", [](const V& x) { return x[0].clone(); }},
        // f64 -> f32 has an f32 output, which the f64 gradcheck cannot difference; the
        // roundtrip row below checks the gradient of to().
        {"to_f32", [](const V& x) { return x[0].to(DType::f32); }, 0, 0, false},
        {"to_f64_roundtrip",
         [](const V& x) { return mul(x[0].to(DType::f64), 2.0).to(x[0].dtype()); }},
        {"chain_of_views",
         [](const V& x) {
           return x[0].t().slice(0, 1, 5).slice(1, 0, 4, 2).unsqueeze(0).expand({2, -1, -1});
         }},
    });

TEST(ShapeErrors, ViewOfTransposedNamesOpAndShapes) {
  Tensor x = zeros({3, 4}).t();
  std::string m = error_of([&] { (void)x.view({12}); });
  EXPECT_NE(m.find("view: shape [12] is not compatible"), std::string::npos) << m;
  EXPECT_NE(m.find("[4, 3]"), std::string::npos) << m;
}

TEST(ShapeErrors, ReshapeWithBadNumel) {
  std::string m = error_of([] { (void)zeros({2, 3}).reshape({4, 2}); });
  EXPECT_NE(m.find("reshape: shape [4, 2] is invalid for input of shape [2, 3]"), std::string::npos)
      << m;
  EXPECT_NE(error_of([] { (void)zeros({2, 3}).reshape({-1, 4}); }), "");
  EXPECT_NE(error_of([] { (void)zeros({2, 3}).view({-1, -1}); }), "");
}

TEST(ShapeErrors, OutOfRangeDims) {
  Tensor x = zeros({2, 3});
  std::string m = error_of([&] { (void)x.transpose(0, 2); });
  EXPECT_NE(m.find("transpose: dim 2 is out of range for a tensor with 2 dims"), std::string::npos)
      << m;
  EXPECT_NE(error_of([&] { (void)x.permute({0, 0}); }).find("permute"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.permute({0}); }).find("permute"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.slice(-3, 0, 1); }).find("slice"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.slice(0, 0, 1, 0); }).find("step"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.select(1, 3); }).find("select: index 3"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.narrow(1, 2, 2); }).find("narrow"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.unsqueeze(3); }).find("unsqueeze"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.unsqueeze(-4); }).find("unsqueeze"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.flatten(1, 0); }).find("flatten"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)x.size(2); }), "");
}

TEST(ShapeErrors, ExpandAndSplit) {
  std::string m = error_of([] { (void)zeros({2, 3}).expand({2, 4}); });
  EXPECT_NE(m.find("expand: cannot expand shape [2, 3] to [2, 4]"), std::string::npos) << m;
  EXPECT_NE(error_of([] { (void)zeros({2, 3}).expand({3}); }).find("expand"), std::string::npos);
  std::string s = error_of([] { (void)split(zeros({5}), std::vector<int64_t>{2, 2}); });
  EXPECT_NE(s.find("split: sizes add up to 4 but dim 0 has size 5"), std::string::npos) << s;
  EXPECT_NE(error_of([] { (void)zeros({5}).chunk(0); }).find("chunk"), std::string::npos);
}

TEST(ShapeGrad, SliceOfSliceGradientLandsInPlace) {
  // y = x[1:5][0:4:2] picks x[1], x[3]
  Tensor x = arange(0, 6, 1, DType::f64).requires_grad_();
  Tensor y = x.slice(0, 1, 5).slice(0, 0, 4, 2);
  EXPECT_EQ(y.to_vector<double>(), std::vector<double>({1, 3}));
  sum(mul(y, from_vector<double>({10, 20}))).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({0, 10, 0, 20, 0, 0}));
}

TEST(ShapeGrad, SplitPiecesEachGetTheirGradient) {
  Tensor x = ones({5}, DType::f64).requires_grad_();
  auto parts = x.split(2);
  ASSERT_EQ(parts.size(), 3u);
  Tensor y = add(mul(sum(parts[0]), 1.0), add(mul(sum(parts[1]), 2.0), mul(sum(parts[2]), 3.0)));
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({1, 1, 2, 2, 3}));
}

TEST(ShapeGrad, ExpandGradientIsSummed) {
  Tensor x = ones({3, 1}, DType::f64).requires_grad_();
  sum(x.expand({2, 3, 4})).backward();
  EXPECT_EQ(x.grad().shape(), Shape({3, 1}));
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({8, 8, 8}));
}
