// Views share storage: shapes, strides, offsets, writes visible through the base, and when
// reshape/contiguous copy. Also NumPy broadcasting rules.
#include <gtest/gtest.h>

#include <functional>

#include "moxing/moxing.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;

namespace {

// 0..n-1 as f32 in the given shape
Tensor iota(const Shape& shape) {
  return arange(0, static_cast<double>(shape_numel(shape)), 1, DType::f32).view(shape);
}

}  // namespace

TEST(Views, ViewSharesStorageAndWritesShowInTheBase) {
  Tensor x = iota({2, 3, 4});
  Tensor v = x.view({6, 4});
  EXPECT_TRUE(v.shares_storage(x));
  EXPECT_EQ(v.strides(), Shape({4, 1}));
  Tensor w = x.view({-1});
  EXPECT_EQ(w.shape(), Shape({24}));
  w.select(0, 5).fill_(-1);
  EXPECT_EQ(x.to_vector<float>()[5], -1.0f);
  v.select(0, 5).fill_(7);  // row 5 of (6, 4) is x[1, 2, :]
  EXPECT_EQ(x.select(0, 1).select(0, 2).to_vector<float>(), std::vector<float>(4, 7.0f));
  // a view of a strided but uniformly spaced tensor needs no copy
  Tensor every_other = iota({12}).slice(0, 0, 12, 2);
  Tensor ev = every_other.view({2, 3});
  EXPECT_EQ(ev.strides(), Shape({6, 2}));
  EXPECT_TRUE(ev.shares_storage(every_other));
}

TEST(Views, ViewOfNonViewableTransposeIsAnError) {
  Tensor t = iota({3, 4}).t();
  EXPECT_FALSE(t.is_contiguous());
  std::string m = error_of([&] { (void)t.view({12}); });
  EXPECT_TRUE(contains(m,
                       "view: shape [12] is not compatible with the strides of the input of "
                       "shape [4, 3]"))
      << m;
  // splitting a dim of a transposed tensor is still a view
  Tensor split_dim = t.view({2, 2, 3});
  EXPECT_TRUE(split_dim.shares_storage(t));
  EXPECT_EQ(split_dim.strides(), Shape({2, 1, 4}));
}

TEST(Views, ReshapeCopiesOnlyWhenNeeded) {
  Tensor x = iota({3, 4});
  Tensor r = x.reshape({2, 6});
  EXPECT_TRUE(r.shares_storage(x));
  Tensor t = x.t();
  Tensor rt = t.reshape({12});
  EXPECT_FALSE(rt.shares_storage(x));
  EXPECT_TRUE(rt.is_contiguous());
  EXPECT_EQ(rt.to_vector<float>(), std::vector<float>({0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_TRUE(contains(error_of([&] {
                         (void)x.reshape({5, 2});
                       }),
                       "reshape: shape [5, 2] is invalid for input of shape [3, 4] (12 elements)"));
  EXPECT_TRUE(contains(error_of([&] { (void)x.reshape({-1, -1}); }), "only one dim can be -1"));
  EXPECT_EQ(x.reshape({-1, 2, 2}).shape(), Shape({3, 2, 2}));
  EXPECT_EQ(zeros({0, 4}).reshape({-1, 2, 2}).shape(), Shape({0, 2, 2}));
}

TEST(Views, FlattenSqueezeUnsqueeze) {
  Tensor x = iota({2, 3, 4});
  Tensor f = x.flatten();
  EXPECT_EQ(f.shape(), Shape({24}));
  EXPECT_TRUE(f.shares_storage(x));
  EXPECT_EQ(x.flatten(1).shape(), Shape({2, 12}));
  EXPECT_EQ(x.flatten(0, 1).shape(), Shape({6, 4}));
  EXPECT_EQ(scalar_tensor(1).flatten().shape(), Shape({1}));
  Tensor y = zeros({1, 3, 1, 2});
  EXPECT_EQ(y.squeeze().shape(), Shape({3, 2}));
  EXPECT_EQ(y.squeeze(0).shape(), Shape({3, 1, 2}));
  EXPECT_EQ(y.squeeze(-2).shape(), Shape({1, 3, 2}));
  EXPECT_EQ(y.squeeze(1).shape(), Shape({1, 3, 1, 2})) << "squeezing a non-1 dim is a no-op";
  EXPECT_TRUE(y.squeeze().shares_storage(y));
  Tensor u = x.unsqueeze(1);
  EXPECT_EQ(u.shape(), Shape({2, 1, 3, 4}));
  EXPECT_EQ(u.strides(), Shape({12, 12, 4, 1}));
  EXPECT_EQ(x.unsqueeze(-1).shape(), Shape({2, 3, 4, 1}));
  EXPECT_EQ(x.unsqueeze(-1).strides(), Shape({12, 4, 1, 1}));
  EXPECT_EQ(x.unsqueeze(0).shape(), Shape({1, 2, 3, 4}));
  EXPECT_TRUE(u.shares_storage(x));
  EXPECT_TRUE(u.is_contiguous());
}

TEST(Views, PermuteAndTranspose) {
  Tensor x = iota({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(p.strides(), Shape({1, 12, 4}));
  EXPECT_TRUE(p.shares_storage(x));
  EXPECT_FALSE(p.is_contiguous());
  // p[1, 1, 2] = x[1, 2, 1] = 12 + 8 + 1
  EXPECT_EQ(p.select(0, 1).select(0, 1).select(0, 2).item<float>(), 21.0f);
  Tensor t = x.transpose(0, 2);
  EXPECT_EQ(t.shape(), Shape({4, 3, 2}));
  EXPECT_EQ(t.strides(), Shape({1, 4, 12}));
  EXPECT_EQ(x.permute({-1, 0, 1}).shape(), Shape({4, 2, 3}));
  Tensor m = iota({2, 3});
  EXPECT_EQ(m.t().shape(), Shape({3, 2}));
  // torch.arange(3).t() is the tensor itself
  EXPECT_EQ(iota({3}).t().shape(), Shape({3}));
  EXPECT_EQ(scalar_tensor(1).t().dim(), 0);
  m.t().select(0, 2).fill_(100);  // column 2 of m
  EXPECT_EQ(m.to_vector<float>(), std::vector<float>({0, 1, 100, 3, 4, 100}));
}

TEST(Views, SliceWithStepAndSelect) {
  Tensor x = iota({4, 6});
  Tensor s = x.slice(1, 1, 6, 2);
  EXPECT_EQ(s.shape(), Shape({4, 3}));
  EXPECT_EQ(s.strides(), Shape({6, 2}));
  EXPECT_EQ(s.storage_offset(), 1);
  EXPECT_EQ(s.select(0, 0).to_vector<float>(), std::vector<float>({1, 3, 5}));
  Tensor n = x.slice(0, -2, 100);  // clamps like Python
  EXPECT_EQ(n.shape(), Shape({2, 6}));
  EXPECT_EQ(n.storage_offset(), 12);
  EXPECT_EQ(x.slice(0, 3, 1).shape(), Shape({0, 6})) << "an empty slice";
  EXPECT_EQ(x.slice(1, 0, 6, 4).shape(), Shape({4, 2}));
  Tensor sel = x.select(1, -1);
  EXPECT_EQ(sel.shape(), Shape({4}));
  EXPECT_EQ(sel.strides(), Shape({6}));
  EXPECT_EQ(sel.storage_offset(), 5);
  s.fill_(-1);
  EXPECT_EQ(x.select(0, 2).to_vector<float>(), std::vector<float>({12, -1, 14, -1, 16, -1}));
  // slice of a slice composes offsets and strides
  Tensor ss = x.slice(1, 1, 6, 2).slice(1, 1, 3, 1);
  EXPECT_EQ(ss.storage_offset(), 3);
  EXPECT_EQ(ss.strides(), Shape({6, 2}));
}

TEST(Views, ExpandUsesZeroStrides) {
  Tensor x = iota({3, 1});
  Tensor e = x.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), Shape({2, 3, 4}));
  EXPECT_EQ(e.strides(), Shape({0, 1, 0}));
  EXPECT_TRUE(e.shares_storage(x));
  EXPECT_EQ(x.expand({-1, 5}).shape(), Shape({3, 5}));
  x.select(0, 1).fill_(42);
  EXPECT_EQ(e.select(0, 1).select(0, 1).to_vector<float>(), std::vector<float>(4, 42.0f));
  EXPECT_TRUE(contains(error_of([&] { (void)x.expand({3, 1, -1}); }), "expand"));
}

TEST(Views, NarrowChunkSplit) {
  Tensor x = iota({7, 2});
  Tensor n = x.narrow(0, 2, 3);
  EXPECT_EQ(n.shape(), Shape({3, 2}));
  EXPECT_EQ(n.storage_offset(), 4);
  EXPECT_TRUE(n.shares_storage(x));
  EXPECT_EQ(x.narrow(0, -2, 2).storage_offset(), 10);
  // torch.arange(7).chunk(3) -> sizes 3, 3, 1
  auto c = x.chunk(3);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].shape(), Shape({3, 2}));
  EXPECT_EQ(c[1].shape(), Shape({3, 2}));
  EXPECT_EQ(c[2].shape(), Shape({1, 2}));
  EXPECT_EQ(c[2].storage_offset(), 12);
  for (const Tensor& t : c) EXPECT_TRUE(t.shares_storage(x));
  // torch.arange(6).chunk(4) -> sizes 2, 2, 2 (fewer chunks than asked)
  EXPECT_EQ(iota({6}).chunk(4).size(), 3u);
  auto s = x.split(3, 0);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[2].shape(), Shape({1, 2}));
  auto sz = split(x, std::vector<int64_t>{1, 4, 2}, 0);
  ASSERT_EQ(sz.size(), 3u);
  EXPECT_EQ(sz[1].shape(), Shape({4, 2}));
  EXPECT_EQ(sz[1].storage_offset(), 2);
  sz[2].fill_(0);
  EXPECT_EQ(x.to_vector<float>()[13], 0.0f);
  // torch.zeros(0, 3).chunk(2) -> two empty pieces; torch.zeros(0, 3).split(2) -> one
  auto empty_chunks = zeros({0, 3}).chunk(2);
  ASSERT_EQ(empty_chunks.size(), 2u);
  EXPECT_EQ(empty_chunks[1].shape(), Shape({0, 3}));
  ASSERT_EQ(zeros({0, 3}).split(2).size(), 1u);
  auto cols = x.chunk(2, 1);
  ASSERT_EQ(cols.size(), 2u);
  EXPECT_EQ(cols[1].to_vector<float>(), std::vector<float>({1, 3, 5, 7, 9, 0, 0}));
}

TEST(Views, ContiguousAndClone) {
  Tensor x = iota({2, 3});
  EXPECT_EQ(x.contiguous().impl(), x.impl()) << "already contiguous: the same tensor";
  Tensor t = x.t();
  Tensor c = t.contiguous();
  EXPECT_FALSE(c.shares_storage(x));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.strides(), Shape({2, 1}));
  EXPECT_EQ(c.to_vector<float>(), t.to_vector<float>());
  Tensor k = x.clone();
  EXPECT_FALSE(k.shares_storage(x));
  k.fill_(0);
  EXPECT_EQ(x.to_vector<float>()[1], 1.0f);
  // size-1 dims and expanded dims
  EXPECT_TRUE(zeros({3, 1}).expand({3, 1}).is_contiguous());
  EXPECT_FALSE(zeros({3, 1}).expand({3, 4}).is_contiguous());
  EXPECT_TRUE(zeros({1, 4}).t().is_contiguous()) << "only size-1 dims moved";
}

TEST(Views, ViewsOfViewsShareTheVersionCounter) {
  Tensor x = zeros({4, 4});
  Tensor v = x.t().slice(0, 1, 3).unsqueeze(0);
  uint32_t before = x.version();
  v.add_(ones({1, 2, 4}));
  EXPECT_EQ(x.version(), before + 1);
  EXPECT_EQ(v.version(), x.version());
  EXPECT_EQ(x.select(1, 1).to_vector<float>(), std::vector<float>(4, 1.0f));
  EXPECT_EQ(x.select(1, 0).to_vector<float>(), std::vector<float>(4, 0.0f));
}

TEST(Broadcasting, NumpyRules) {
  EXPECT_EQ(broadcast_shapes({2, 1, 3}, {4, 1}, "t"), Shape({2, 4, 3}));
  EXPECT_EQ(broadcast_shapes({3}, {}, "t"), Shape({3}));
  EXPECT_EQ(broadcast_shapes({}, {}, "t"), Shape({}));
  EXPECT_EQ(broadcast_shapes({0, 3}, {1, 3}, "t"), Shape({0, 3}));
  EXPECT_EQ(broadcast_shapes({5, 1, 4}, {1, 6, 1}, "t"), Shape({5, 6, 4}));
  std::string m = error_of([] { (void)broadcast_shapes({2, 3}, {3, 3}, "mul"); });
  EXPECT_TRUE(contains(m, "mul: shapes [2, 3] and [3, 3] cannot be broadcast together")) << m;
  EXPECT_THROW((void)broadcast_shapes({0}, {2}, "t"), Error);
}

TEST(Broadcasting, ValuesAndGradients) {
  // a (2,1,3) + b (4,1): out[i,j,k] = a[i,0,k] + b[j,0]
  Tensor a = iota({2, 1, 3}).to(DType::f64).requires_grad_();
  Tensor b = mul(iota({4, 1}).to(DType::f64), 10.0).requires_grad_();
  Tensor out = a + b;
  ASSERT_EQ(out.shape(), Shape({2, 4, 3}));
  std::vector<double> v = out.to_vector<double>();
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) {
      for (int k = 0; k < 3; ++k) EXPECT_EQ(v[(i * 4 + j) * 3 + k], (i * 3 + k) + 10.0 * j);
    }
  }
  sum(out).backward();
  EXPECT_EQ(a.grad().shape(), Shape({2, 1, 3}));
  EXPECT_EQ(a.grad().to_vector<double>(), std::vector<double>(6, 4.0));
  EXPECT_EQ(b.grad().shape(), Shape({4, 1}));
  EXPECT_EQ(b.grad().to_vector<double>(), std::vector<double>(4, 6.0));
  // a 0-d operand broadcasts everywhere and receives the summed gradient
  Tensor s = scalar_tensor(2, DType::f64).requires_grad_();
  Tensor y = mul(iota({3}).to(DType::f64), s);
  EXPECT_EQ(y.to_vector<double>(), std::vector<double>({0, 2, 4}));
  sum(y).backward();
  EXPECT_EQ(s.grad().shape(), Shape({}));
  EXPECT_EQ(s.grad().item<double>(), 3.0);
}
