// In-place ops and the version counter: values, version bumps, the saved-tensor check, leaves
// and views of leaves refused, and gradients through in-place updates of non-leaves.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "moxing/moxing.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;

namespace {

Tensor f64(std::vector<double> v, const Shape& shape = {}) { return from_vector(v, shape); }

}  // namespace

TEST(InPlace, ValuesAndOneVersionBumpEach) {
  Tensor x = f64({1, 2, 3});
  uint32_t v0 = x.version();
  x.add_(f64({1, 1, 1}));
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({2, 3, 4}));
  EXPECT_EQ(x.version(), v0 + 1);
  x.add_(f64({1, 2, 3}), -2.0);
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({0, -1, -2}));
  x.sub_(f64({1}));  // broadcast
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({-1, -2, -3}));
  x.mul_(f64({2, 3, 4}));
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({-2, -6, -12}));
  x.mul_(-0.5);
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({1, 3, 6}));
  x.div_(f64({2, 3, 4}));
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({0.5, 1, 1.5}));
  EXPECT_EQ(x.version(), v0 + 6);
  x.fill_(7);
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({7, 7, 7}));
  x.zero_();
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({0, 0, 0}));
  EXPECT_EQ(x.version(), v0 + 8);
  // returns *this, so calls chain
  Tensor& r = x.fill_(1).add_(f64({1, 1, 1}));
  EXPECT_EQ(&r, &x);
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({2, 2, 2}));
}

TEST(InPlace, CopyBroadcastsAndConverts) {
  Tensor x = zeros({2, 3});
  x.copy_(from_vector<int64_t>({1, 2, 3}));
  EXPECT_EQ(x.to_vector<float>(), std::vector<float>({1, 2, 3, 1, 2, 3}));
  x.copy_(arange(0, 6, 1, DType::f64).view({3, 2}).t());
  EXPECT_EQ(x.to_vector<float>(), std::vector<float>({0, 2, 4, 1, 3, 5}));
  Tensor i = zeros({2}, DType::i32);
  i.copy_(from_vector<float>({2.9f, -1.5f}));
  EXPECT_EQ(i.to_vector<int32_t>(), std::vector<int32_t>({2, -1}));
  std::string m = error_of([&] { x.copy_(zeros({4})); });
  EXPECT_TRUE(contains(m, "copy_")) << m;
  EXPECT_TRUE(contains(m, "[4]")) << m;
}

TEST(InPlace, ThroughAViewChangesTheBase) {
  Tensor base = zeros({3, 4});
  Tensor col = base.select(1, 2);
  col.fill_(5);
  Tensor row = base.slice(0, 0, 1);
  row.add_(ones({1, 4}));
  EXPECT_EQ(base.to_vector<float>(), std::vector<float>({1, 1, 6, 1, 0, 0, 5, 0, 0, 0, 5, 0}));
  EXPECT_EQ(base.version(), 2u);
}

TEST(InPlace, BroadcastThatWouldGrowSelfIsAnError) {
  Tensor x = zeros({3});
  EXPECT_THROW(x.add_(ones({2, 3})), Error);
  EXPECT_EQ(x.to_vector<float>(), std::vector<float>({0, 0, 0}));
}

TEST(InPlace, WritingIntoAnExpandedTensorIsAnError) {
  // as torch: several elements of the destination share one memory location
  Tensor base = zeros({1});
  Tensor e = base.expand({3});
  std::string m = error_of([&] { e.add_(from_vector<float>({1, 2, 3})); });
  EXPECT_TRUE(contains(m, "broadcast (expanded) tensor of shape [3]")) << m;
  EXPECT_THROW(e.fill_(1), Error);
  EXPECT_EQ(base.item<float>(), 0.0f);
  // a size-1 dim with stride 0 is harmless
  zeros({2}).unsqueeze(1).expand({2, 1}).fill_(1);
}

TEST(InPlace, ModifyingASavedOutputIsCaughtAtBackward) {
  // y = exp(x) saves y; changing y before backward must not give a silently wrong gradient
  Tensor x = f64({0.1, 0.2}).requires_grad_();
  Tensor y = exp(x);
  y.add_(f64({1, 1}));
  std::string m = error_of([&] { sum(y).backward(); });
  EXPECT_TRUE(contains(m, "modified by an in-place operation")) << m;
  EXPECT_TRUE(contains(m, "exp")) << m;
  EXPECT_TRUE(contains(m, "[2]")) << m;
}

TEST(InPlace, ModifyingASavedInputIsCaughtAtBackward) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor w = f64({3, 4}).requires_grad_();
  Tensor h = mul(x, 1.0);
  Tensor y = mul(h, w);  // saves h for dy/dw
  h.mul_(2.0);
  std::string m = error_of([&] { sum(y).backward(); });
  EXPECT_TRUE(contains(m,
                       "mul: a tensor of shape [2] saved for backward was modified by an "
                       "in-place operation"))
      << m;
}

TEST(InPlace, ChangesUnderNoGradAndThroughDetachAreCaughtToo) {
  Tensor x = f64({0.5}).requires_grad_();
  Tensor y = exp(x);
  {
    NoGradGuard no_grad;
    y.zero_();
  }
  EXPECT_TRUE(contains(error_of([&] { sum(y).backward(); }), "in-place"));
  Tensor x2 = f64({0.5}).requires_grad_();
  Tensor y2 = exp(x2);
  y2.detach().fill_(3);
  EXPECT_TRUE(contains(error_of([&] { sum(y2).backward(); }), "in-place"));
}

TEST(InPlace, OnALeafThatRequiresGradIsRefused) {
  Tensor w = f64({1, 2}).requires_grad_();
  std::string m = error_of([&] { w.add_(f64({1, 1})); });
  EXPECT_TRUE(contains(m,
                       "add_: a leaf tensor that requires grad is used in an in-place "
                       "operation"))
      << m;
  EXPECT_THROW(w.zero_(), Error);
  EXPECT_THROW(w.mul_(2.0), Error);
  EXPECT_THROW(w.copy_(f64({0, 0})), Error);
  EXPECT_EQ(w.to_vector<double>(), std::vector<double>({1, 2})) << "a refused op changes nothing";
  // a view of such a leaf is refused as well
  EXPECT_TRUE(contains(error_of([&] { w.slice(0, 0, 1).fill_(0); }), "fill_"));
  // an optimizer step runs under NoGradGuard and is allowed
  uint32_t v = w.version();
  {
    NoGradGuard no_grad;
    w.sub_(f64({0.5, 0.5}));
    w.slice(0, 1, 2).mul_(10.0);
  }
  EXPECT_EQ(w.to_vector<double>(), std::vector<double>({0.5, 15}));
  EXPECT_EQ(w.version(), v + 2);
  EXPECT_TRUE(w.is_leaf());
  EXPECT_TRUE(w.requires_grad());
}

TEST(InPlace, OnANonLeafGivesTheSameGradientAsOutOfPlace) {
  std::vector<double> xv = {0.3, -0.7, 1.1}, zv = {2, -1, 0.5}, wv = {1.5, 0.25, -2};
  auto run = [&](bool in_place) {
    Tensor x = f64(xv).requires_grad_();
    Tensor z = f64(zv).requires_grad_();
    Tensor w = f64(wv).requires_grad_();
    Tensor y = mul(x, 2.0);
    if (in_place) {
      y.add_(z, 3.0);
      y.mul_(w);
      y.sub_(x);
      y.div_(add(w, 3.0));
    } else {
      y = div(sub(mul(add(y, z, 3.0), w), x), add(w, 3.0));
    }
    Tensor loss = sum(mul(y, y));
    loss.backward();
    return std::vector<Tensor>{y.detach(), x.grad(), z.grad(), w.grad()};
  };
  auto a = run(true), b = run(false);
  for (size_t k = 0; k < a.size(); ++k) {
    ASSERT_TRUE(a[k].defined()) << k;
    std::vector<double> va = a[k].to_vector<double>(), vb = b[k].to_vector<double>();
    for (size_t i = 0; i < va.size(); ++i) EXPECT_NEAR(va[i], vb[i], 1e-12) << k << "," << i;
  }
}

TEST(InPlace, NonLeafHistoryIsRebased) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = mul(x, 3.0);
  auto before = y.grad_fn();
  y.mul_(2.0);
  EXPECT_NE(y.grad_fn(), before) << "the in-place op becomes y's grad_fn";
  EXPECT_TRUE(y.requires_grad());
  EXPECT_EQ(y.to_vector<double>(), std::vector<double>({6, 12}));
  sum(y).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({6, 6}));
}

TEST(InPlace, AddingATensorThatRequiresGradGivesSelfHistory) {
  Tensor acc = zeros({2}, DType::f64);
  Tensor x = f64({1, 2}).requires_grad_();
  acc.add_(mul(x, x));
  EXPECT_TRUE(acc.requires_grad());
  EXPECT_FALSE(acc.is_leaf());
  acc.add_(x);
  sum(acc).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({3, 5}));
}

TEST(InPlace, UpdatesFromAnOverlappingViewReadTheOldValues) {
  // other is a view of self shifted by one: the result must be that of the out-of-place op
  Tensor x = f64({1, 2, 3, 4, 5});
  Tensor head = x.narrow(0, 0, 4);
  Tensor tail = x.narrow(0, 1, 4);
  head.add_(tail);
  EXPECT_EQ(x.to_vector<double>(), std::vector<double>({3, 5, 7, 9, 5}));
  Tensor y = f64({1, 2, 3, 4}, {2, 2});
  Tensor yt = y.transpose(0, 1);
  yt.mul_(2.0);  // non-contiguous self
  EXPECT_EQ(y.to_vector<double>(), std::vector<double>({2, 4, 6, 8}));
}

TEST(InPlace, FirstGradientIsOwnedByTheLeaf) {
  // z = x * 2 + y: the gradient that reaches x is a fresh buffer; y receives add's incoming
  // gradient, which x's path also read, and both end with the right values
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = f64({3, 4}).requires_grad_();
  Tensor z = add(mul(x, 2.0), y);
  sum(z).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({2, 2}));
  EXPECT_EQ(y.grad().to_vector<double>(), std::vector<double>({1, 1}));
  x.grad().add_(f64({1, 1}));
  EXPECT_EQ(y.grad().to_vector<double>(), std::vector<double>({1, 1}));
}
