// Embedding family: values from tests/fixtures/embedding.py (PyTorch), f64 gradchecks,
// non-contiguous tables and indices, the parallel backward, and error cases.
#include <gtest/gtest.h>

#include "expect_error.h"
#include "moxing/ops/embedding.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::expect_error;
using moxing::testing::OpCase;
using V = std::vector<Tensor>;

namespace {

// As masked() in embedding.py: outputs read from the padding row are zeroed so that a
// finite-difference check agrees with "no gradient for the padding row";
// Embedding.PaddingRowIsReadButGetsNoGradient checks the unmasked op.
Tensor masked(const Tensor& out, const Tensor& idx, int64_t pad) {
  Tensor keep = ne(idx, full({}, static_cast<double>(pad), DType::i64)).unsqueeze(-1);
  return mul(out, keep.to(out.dtype()));
}

}  // namespace

// every row checks its indices against V, so on meta each is the meta error
MOXING_OP_CASES("embedding",
                std::vector<OpCase>{
                    {"embedding_bt", [](const V& x) { return embedding(x[0], x[1]); }},
                    {"embedding_1d_repeats", [](const V& x) { return embedding(x[0], x[1]); }},
                    {"embedding_padding",
                     [](const V& x) { return masked(embedding(x[0], x[1], 0), x[1], 0); }},
                    {"embedding_padding_last",
                     [](const V& x) { return masked(embedding(x[0], x[1], 4), x[1], 4); }},
                });

TEST(Embedding, LargeBackwardCountsEveryLookupForAnyThreadCount) {
  // many lookups into a small table: the backward runs split by vocabulary row
  const int64_t Vocab = 37, C = 16, N = 5000;
  Generator gen(9);
  Tensor idx = randint(0, Vocab, {N}, DType::i64, &gen);
  Tensor w = randn({Vocab, C}, DType::f64, &gen).requires_grad_();
  int before = num_threads();
  std::vector<std::vector<double>> runs;
  for (int t : {1, 3}) {
    set_num_threads(t);
    w.zero_grad();
    sum(embedding(w, idx, 5)).backward();
    runs.push_back(w.grad().to_vector<double>());
  }
  set_num_threads(before);
  EXPECT_EQ(runs[0], runs[1]);
  std::vector<double> count(Vocab, 0.0);
  for (int64_t i : idx.to_vector<int64_t>()) count[static_cast<size_t>(i)] += 1.0;
  for (int64_t v = 0; v < Vocab; ++v) {
    double expected = v == 5 ? 0.0 : count[static_cast<size_t>(v)];
    EXPECT_EQ(runs[0][static_cast<size_t>(v * C)], expected) << "row " << v;
  }
}

TEST(Embedding, PaddingRowIsReadButGetsNoGradient) {
  Tensor w = arange(0, 12, 1, DType::f64).reshape({4, 3}).requires_grad_();
  Tensor idx = from_vector<int64_t>({2, 0, 2, 3});
  Tensor out = embedding(w, idx, 2);
  EXPECT_EQ(out.select(0, 0).to_vector<double>(), std::vector<double>({6, 7, 8}));
  sum(out).backward();
  EXPECT_EQ(w.grad().to_vector<double>(),
            std::vector<double>({1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1}));
}

TEST(Embedding, OutputShapeAppendsC) {
  Tensor w = randn({8, 3});
  EXPECT_EQ(embedding(w, zeros({2, 4, 5}, DType::i64)).shape(), Shape({2, 4, 5, 3}));
  EXPECT_EQ(embedding(w, zeros({}, DType::i64)).shape(), Shape({3}));
}

TEST(Embedding, Errors) {
  Tensor w = zeros({10, 4});
  expect_error(
      [&] {
        embedding(w, from_vector<int64_t>({1, 10, 2}));
      },
      "embedding: index 10 is out of range for a table of V = 10 rows");
  expect_error([&] { embedding(w, from_vector<int64_t>({-1})); },
               "embedding: index -1 is out of range for a table of V = 10 rows");
  expect_error([&] { embedding(w, zeros({3})); }, "embedding: indices must be i64, got f32");
  expect_error([&] { embedding(zeros({10}), zeros({3}, DType::i64)); },
               "embedding: weight must be a floating-point (V, C) table, got f32 of shape [10]");
  expect_error([&] { embedding(w, zeros({3}, DType::i64), 10); },
               "embedding: padding_idx 10 is out of range for V = 10 rows");
}
