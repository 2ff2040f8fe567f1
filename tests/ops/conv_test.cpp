// Conv family: values from tests/fixtures/conv.py (PyTorch), f64 gradchecks, non-contiguous
// inputs, error messages, and a larger convolution against a plain loop.
#include "moxing/ops/conv.h"

#include <gtest/gtest.h>

#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

MOXING_OP_CASES("conv",
                std::vector<OpCase>{
                    {"conv2d", [](const V& x) { return conv2d(x[0], x[1]); }},
                    {"conv2d_bias", [](const V& x) { return conv2d(x[0], x[1], x[2]); }},
                    {"conv2d_stride2",
                     [](const V& x) {
                       return conv2d(x[0], x[1], x[2], {2, 2});
                     }},
                    {"conv2d_padding1",
                     [](const V& x) {
                       return conv2d(x[0], x[1], x[2], {1, 1}, {1, 1});
                     }},
                    {"conv2d_dilation2",
                     [](const V& x) {
                       return conv2d(x[0], x[1], x[2], {1, 1}, {1, 1}, {2, 2});
                     }},
                    {"conv2d_groups2",
                     [](const V& x) {
                       return conv2d(x[0], x[1], x[2], {1, 1}, {1, 1}, {1, 1}, 2);
                     }},
                    {"conv2d_depthwise",
                     [](const V& x) {
                       return conv2d(x[0], x[1], x[2], {2, 1}, {1, 1}, {1, 1}, 3);
                     }},
                    {"conv2d_nonsquare",
                     [](const V& x) {
                       return conv2d(x[0], x[1], x[2], {1, 2}, {2, 0});
                     }},
                    {"conv2d_pointwise", [](const V& x) { return conv2d(x[0], x[1], x[2]); }},
                    {"conv2d_unbatched",
                     [](const V& x) {
                       return conv2d(x[0], x[1], x[2], {1, 1}, {1, 1});
                     }},
                    {"conv_transpose2d", [](const V& x) { return conv_transpose2d(x[0], x[1]); }},
                    {"conv_transpose2d_stride2",
                     [](const V& x) {
                       return conv_transpose2d(x[0], x[1], x[2], {2, 2}, {1, 1}, {1, 1});
                     }},
                    {"conv_transpose2d_groups2",
                     [](const V& x) {
                       return conv_transpose2d(x[0], x[1], x[2], {2, 1}, {0, 1}, {0, 0}, 2);
                     }},
                    {"conv_transpose2d_dilation2",
                     [](const V& x) {
                       return conv_transpose2d(x[0], x[1], x[2], {2, 2}, {0, 0}, {1, 1}, 1, {2, 2});
                     }},
                    {"max_pool2d",
                     [](const V& x) {
                       return max_pool2d(x[0], {2, 2});
                     }},
                    {"max_pool2d_3x3_s2_p1",
                     [](const V& x) {
                       return max_pool2d(x[0], {3, 3}, {2, 2}, {1, 1});
                     }},
                    {"max_pool2d_unbatched",
                     [](const V& x) {
                       return max_pool2d(x[0], {2, 3}, {1, 2});
                     }},
                    {"avg_pool2d",
                     [](const V& x) {
                       return avg_pool2d(x[0], {2, 2});
                     }},
                    {"avg_pool2d_3x3_s2_p1",
                     [](const V& x) {
                       return avg_pool2d(x[0], {3, 3}, {2, 2}, {1, 1});
                     }},
                    {"adaptive_avg_pool2d_1x1",
                     [](const V& x) {
                       return adaptive_avg_pool2d(x[0], {1, 1});
                     }},
                    {"adaptive_avg_pool2d_5x7_to_3x2",
                     [](const V& x) {
                       return adaptive_avg_pool2d(x[0], {3, 2});
                     }},
                    {"adaptive_avg_pool2d_upsample",
                     [](const V& x) {
                       return adaptive_avg_pool2d(x[0], {4, 3});
                     }},
                });

TEST(Conv, ChannelMismatchNamesShapes) {
  std::string e = error_of([] { conv2d(zeros({2, 3, 5, 5}), zeros({4, 2, 3, 3})); });
  EXPECT_TRUE(contains(e,
                       "conv2d: input shape [2, 3, 5, 5] has 3 channels but weight shape "
                       "[4, 2, 3, 3] expects 2"))
      << e;
  e = error_of([] { conv_transpose2d(zeros({2, 3, 5, 5}), zeros({4, 2, 3, 3})); });
  EXPECT_TRUE(contains(e, "conv_transpose2d: input shape [2, 3, 5, 5] has 3 channels")) << e;
  e = error_of([] { conv2d(zeros({2, 4, 5, 5}), zeros({4, 4, 3, 3}), zeros({3})); });
  EXPECT_TRUE(contains(e, "conv2d: bias shape [3]")) << e;
}

TEST(Conv, GroupsMustDivideChannels) {
  std::string e = error_of([] {
    conv2d(zeros({2, 4, 5, 5}), zeros({3, 2, 3, 3}), {}, {1, 1}, {0, 0}, {1, 1}, 2);
  });
  EXPECT_TRUE(
      contains(e, "conv2d: groups 2 must divide the input channels 4 and output channels 3"))
      << e;
  EXPECT_TRUE(contains(e, "[2, 4, 5, 5]") && contains(e, "[3, 2, 3, 3]")) << e;
  e = error_of([] {
    conv_transpose2d(zeros({2, 3, 5, 5}), zeros({3, 2, 3, 3}), {}, {1, 1}, {0, 0}, {0, 0}, 2);
  });
  EXPECT_TRUE(contains(e, "conv_transpose2d: groups 2 must divide the input channels 3")) << e;
}

TEST(Conv, KernelLargerThanPaddedInput) {
  std::string e = error_of([] { conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 5, 5})); });
  EXPECT_TRUE(contains(e,
                       "conv2d: kernel [5, 5] (dilated [5, 5]) is larger than the padded "
                       "input [3, 3] (input shape [1, 1, 3, 3], weight shape [1, 1, 5, 5]"))
      << e;
  e = error_of([] {
    conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 3, 3}), {}, {1, 1}, {0, 0}, {2, 2});
  });
  EXPECT_TRUE(contains(e, "dilated [5, 5]")) << e;
  e = error_of([] { max_pool2d(zeros({1, 1, 3, 3}), {4, 4}); });
  EXPECT_TRUE(contains(e,
                       "max_pool2d: kernel [4, 4] is larger than the padded input [3, 3] "
                       "(input shape [1, 1, 3, 3]"))
      << e;
  e = error_of([] { avg_pool2d(zeros({1, 1, 4, 4}), {2, 2}, {1, 1}, {2, 2}); });
  EXPECT_TRUE(contains(e, "avg_pool2d: padding [2, 2] must be at most half the kernel")) << e;
}

TEST(Conv, BadRankAndParams) {
  EXPECT_TRUE(contains(error_of([] {
                         conv2d(zeros({5, 5}), zeros({1, 1, 3, 3}));
                       }),
                       "conv2d: expected input (B,C,H,W) or (C,H,W), got shape [5, 5]"));
  EXPECT_TRUE(contains(error_of([] {
                         conv2d(zeros({1, 1, 5, 5}), zeros({1, 3, 3}));
                       }),
                       "conv2d: expected a 4-D weight, got shape [1, 3, 3]"));
  EXPECT_TRUE(contains(error_of([] {
                         conv2d(zeros({1, 1, 5, 5}), zeros({1, 1, 3, 3}), {}, {0, 1});
                       }),
                       "conv2d: stride [0, 1] must be >= 1"));
  EXPECT_TRUE(contains(
      error_of([] {
        conv_transpose2d(zeros({1, 1, 5, 5}), zeros({1, 1, 3, 3}), {}, {2, 2}, {0, 0}, {2, 0});
      }),
      "conv_transpose2d: output_padding [2, 0] must be smaller"));
  EXPECT_THROW(conv2d(zeros({1, 1, 5, 5}), zeros({1, 1, 3, 3}, DType::f64)), Error);
}

TEST(Conv, UnbatchedPoolsKeepRank) {
  EXPECT_EQ(avg_pool2d(zeros({3, 6, 6}), {2, 2}).shape(), Shape({3, 3, 3}));
  EXPECT_EQ(adaptive_avg_pool2d(zeros({3, 6, 6}), {1, 1}).shape(), Shape({3, 1, 1}));
  EXPECT_EQ(conv_transpose2d(zeros({2, 3, 3}), zeros({2, 4, 2, 2})).shape(), Shape({4, 4, 4}));
}

// A batch larger than the thread count (parallel over images) and a wide weight-gradient GEMM,
// against a plain loop in double.
TEST(Conv, LargerBatchMatchesPlainLoop) {
  const int64_t B = 20, C = 3, H = 9, W = 8, CO = 5, K = 3;
  Tensor x =
      sin(arange(0, static_cast<double>(B * C * H * W), 1, DType::f64)).reshape({B, C, H, W});
  Tensor w =
      cos(arange(0, static_cast<double>(CO * C * K * K), 1, DType::f64)).reshape({CO, C, K, K});
  x.requires_grad_();
  w.requires_grad_();
  Tensor y = conv2d(x, w, {}, {2, 1}, {1, 1});
  const int64_t OH = (H + 2 - K) / 2 + 1, OW = W;
  ASSERT_EQ(y.shape(), Shape({B, CO, OH, OW}));
  y.sum().backward();
  std::vector<double> vx = x.detach().to_vector<double>(), vw = w.detach().to_vector<double>();
  std::vector<double> vy = y.detach().to_vector<double>(), gw = w.grad().to_vector<double>();
  std::vector<double> ref_gw(vw.size(), 0.0);
  for (int64_t n = 0; n < B; ++n)
    for (int64_t co = 0; co < CO; ++co)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double s = 0;
          for (int64_t ci = 0; ci < C; ++ci)
            for (int64_t kh = 0; kh < K; ++kh)
              for (int64_t kw = 0; kw < K; ++kw) {
                int64_t ih = oh * 2 - 1 + kh, iw = ow - 1 + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                size_t wi = static_cast<size_t>(((co * C + ci) * K + kh) * K + kw);
                double xv = vx[static_cast<size_t>(((n * C + ci) * H + ih) * W + iw)];
                s += vw[wi] * xv;
                ref_gw[wi] += xv;
              }
          ASSERT_NEAR(vy[static_cast<size_t>(((n * CO + co) * OH + oh) * OW + ow)], s, 1e-10);
        }
  for (size_t i = 0; i < gw.size(); ++i) ASSERT_NEAR(gw[i], ref_gw[i], 1e-9) << i;
}
