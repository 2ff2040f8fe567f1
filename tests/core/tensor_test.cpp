// Tensor creation, raw data access (from_blob, item, to_vector), printing, and the
// thread-count setting.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>

#include "moxing/moxing.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;

TEST(Creation, ZerosOnesFull) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), Shape({2, 3}));
  EXPECT_EQ(z.strides(), Shape({3, 1}));
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dim(), 2);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(z.to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(ones({4}, DType::i32).to_vector<int32_t>(), std::vector<int32_t>(4, 1));
  EXPECT_EQ(full({2, 2}, 7.5, DType::f64).to_vector<double>(), std::vector<double>(4, 7.5));
  EXPECT_EQ(full({3}, -2, DType::i64).to_vector<int64_t>(), std::vector<int64_t>(3, -2));
  EXPECT_EQ(full({2}, 3, DType::boolean).to_vector<bool>(), std::vector<bool>({true, true}));
  EXPECT_EQ(full({2}, 0.1, DType::bf16).to_vector<float>()[0], from_bf16(to_bf16(0.1f)));
  EXPECT_EQ(zeros({2}, DType::f16).to_vector<float>(), std::vector<float>({0, 0}));
  // 0-d and empty shapes
  Tensor s = zeros({});
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(scalar_tensor(4.0).item<float>(), 4.0f);
  Tensor e = zeros({2, 0, 3});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(e.to_vector<float>().empty());
  EXPECT_TRUE(contains(error_of([] { (void)zeros({2, -1}); }), "negative dimension"));
  EXPECT_EQ(zeros_like(full({2}, 1, DType::i64)).dtype(), DType::i64);
  EXPECT_EQ(ones_like(zeros({3}, DType::f64)).to_vector<double>(), std::vector<double>(3, 1.0));
  EXPECT_EQ(empty_like(zeros({2, 5})).shape(), Shape({2, 5}));
}

TEST(Creation, ArangeMatchesTorch) {
  // torch.arange(5) -> [0, 1, 2, 3, 4] (int64)
  Tensor a = arange(5);
  EXPECT_EQ(a.dtype(), DType::i64);
  EXPECT_EQ(a.to_vector<int64_t>(), std::vector<int64_t>({0, 1, 2, 3, 4}));
  // torch.arange(1, 2.5, 0.5) -> [1.0, 1.5, 2.0]
  EXPECT_EQ(arange(1, 2.5, 0.5, DType::f32).to_vector<float>(), std::vector<float>({1, 1.5, 2}));
  // torch.arange(10, 0, -3) -> [10, 7, 4, 1]
  EXPECT_EQ(arange(10, 0, -3).to_vector<int64_t>(), std::vector<int64_t>({10, 7, 4, 1}));
  // torch.arange(0, 1, 0.1).numel() -> 10
  EXPECT_EQ(arange(0, 1, 0.1, DType::f64).numel(), 10);
  EXPECT_EQ(arange(3, 3).numel(), 0);
  EXPECT_TRUE(contains(error_of([] { (void)arange(0, 1, 0); }), "arange: step must be non-zero"));
  EXPECT_TRUE(contains(error_of([] { (void)arange(0, 5, -1); }), "arange"));
}

TEST(Creation, LinspaceMatchesTorch) {
  // torch.linspace(0, 1, 5) -> [0, 0.25, 0.5, 0.75, 1]
  EXPECT_EQ(linspace(0, 1, 5).to_vector<float>(), std::vector<float>({0, 0.25, 0.5, 0.75, 1}));
  // torch.linspace(-1, 1, 1) -> [-1] (a single step is start, not end)
  EXPECT_EQ(linspace(-1, 1, 1).to_vector<float>(), std::vector<float>({-1}));
  EXPECT_EQ(linspace(0, 1, 0).numel(), 0);
  // torch.linspace(0, 10, 4, dtype=torch.int64) -> [0, 3, 6, 10]
  EXPECT_EQ(linspace(0, 10, 4, DType::i64).to_vector<int64_t>(),
            std::vector<int64_t>({0, 3, 6, 10}));
  // the last value is exactly `end`
  Tensor l = linspace(0.1, 0.7, 7, DType::f64);
  EXPECT_EQ(l.to_vector<double>().back(), 0.7);
  EXPECT_EQ(l.to_vector<double>().front(), 0.1);
  EXPECT_TRUE(contains(error_of([] { (void)linspace(0, 1, -1); }), "linspace"));
}

TEST(Creation, Eye) {
  EXPECT_EQ(eye(3).to_vector<float>(), std::vector<float>({1, 0, 0, 0, 1, 0, 0, 0, 1}));
  Tensor r = eye(2, 3, DType::i64);
  EXPECT_EQ(r.shape(), Shape({2, 3}));
  EXPECT_EQ(r.to_vector<int64_t>(), std::vector<int64_t>({1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(eye(3, 2).to_vector<float>(), std::vector<float>({1, 0, 0, 1, 0, 0}));
}

TEST(Creation, FromVectorAndTensor) {
  Tensor a = from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(a.dtype(), DType::i32);
  EXPECT_EQ(a.shape(), Shape({2, 3}));
  EXPECT_EQ(a.to_vector<int64_t>(), std::vector<int64_t>({1, 2, 3, 4, 5, 6}));
  Tensor b = from_vector<double>({1.5, 2.5});
  EXPECT_EQ(b.shape(), Shape({2}));
  EXPECT_EQ(from_vector<bool>({true, false}).dtype(), DType::boolean);
  EXPECT_EQ(from_vector<uint8_t>({255}).item<int64_t>(), 255);
  Tensor t = tensor({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>({1, 2, 3, 4}));
  std::string m = error_of([] { (void)from_vector<float>({1, 2, 3}, {2, 2}); });
  EXPECT_TRUE(contains(m, "from_vector: 3 values do not fill shape [2, 2]")) << m;
}

TEST(Creation, FromBlobBorrowsWithoutCopy) {
  std::vector<float> buf = {1, 2, 3, 4, 5, 6};
  Tensor t = from_blob(buf.data(), {2, 3}, DType::f32);
  EXPECT_EQ(t.data<float>(), buf.data());
  EXPECT_EQ(t.to_vector<float>(), buf);
  buf[4] = 50;  // a write to the buffer shows in the tensor
  EXPECT_EQ(t.to_vector<float>()[4], 50.0f);
  t.fill_(9);  // a write through the tensor shows in the buffer
  EXPECT_EQ(buf, std::vector<float>(6, 9.0f));
  t.select(0, 1).zero_();
  EXPECT_EQ(buf, std::vector<float>({9, 9, 9, 0, 0, 0}));
}

TEST(Creation, FromBlobKeepsTheOwnerAlive) {
  auto owner = std::make_shared<std::vector<double>>(std::vector<double>{1, 2, 3});
  std::weak_ptr<std::vector<double>> watch = owner;
  Tensor t = from_blob(owner->data(), {3}, DType::f64, owner);
  owner.reset();
  EXPECT_FALSE(watch.expired()) << "the tensor keeps the buffer's owner";
  Tensor v = t.slice(0, 1, 3);
  t = Tensor();
  EXPECT_FALSE(watch.expired()) << "a view keeps it too";
  EXPECT_EQ(v.to_vector<double>(), std::vector<double>({2, 3}));
  v = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(Creation, FromBlobCopyOwnsItsData) {
  std::vector<int64_t> buf = {7, 8, 9};
  Tensor t = from_blob_copy(buf.data(), {3}, DType::i64);
  EXPECT_NE(t.data<int64_t>(), buf.data());
  buf[0] = 0;
  EXPECT_EQ(t.to_vector<int64_t>(), std::vector<int64_t>({7, 8, 9}));
  t.fill_(1);
  EXPECT_EQ(buf, std::vector<int64_t>({0, 8, 9}));
}

TEST(Access, ItemAndToVectorConvert) {
  Tensor x = full({1, 1}, 2.75, DType::f64);
  EXPECT_EQ(x.item<double>(), 2.75);
  EXPECT_EQ(x.item<float>(), 2.75f);
  EXPECT_EQ(x.item<int64_t>(), 2);
  EXPECT_EQ(x.item<bool>(), true);
  EXPECT_EQ(full({}, 0.5, DType::bf16).item<float>(), 0.5f);
  std::string m = error_of([] { (void)zeros({2, 2}).item<float>(); });
  EXPECT_TRUE(contains(m, "item(): tensor of shape [2, 2] has 4 elements, not 1")) << m;
  // to_vector walks a non-contiguous view in row-major order of the view
  Tensor a = arange(0, 6, 1, DType::i64).view({2, 3});
  EXPECT_EQ(a.t().to_vector<int64_t>(), std::vector<int64_t>({0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(a.t().to_vector<float>(), std::vector<float>({0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(a.expand({2, 2, 3}).to_vector<int32_t>(),
            std::vector<int32_t>({0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(a.select(0, 1).select(0, 2).item<int64_t>(), 5);
}

TEST(Access, UndefinedTensorIsAnError) {
  Tensor u;
  EXPECT_FALSE(u.defined());
  EXPECT_TRUE(contains(error_of([&] { (void)u.shape(); }), "undefined tensor"));
  EXPECT_EQ(to_string(u), "tensor(undefined)");
}

TEST(Printing, ShowsValuesShapeAndDtype) {
  EXPECT_EQ(to_string(tensor({1, 2.5f})), "tensor([1.0000, 2.5000], shape=[2], dtype=f32)");
  EXPECT_EQ(to_string(tensor({1, 2, 3, 4}, {2, 2})),
            "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=[2, 2], dtype=f32)");
  EXPECT_EQ(to_string(from_vector<int64_t>({-3, 7})), "tensor([-3, 7], shape=[2], dtype=i64)");
  // i64 values past 2^53 print exactly
  EXPECT_EQ(to_string(from_vector<int64_t>({(int64_t{1} << 60) + 1})),
            "tensor([1152921504606846977], shape=[1], dtype=i64)");
  EXPECT_EQ(to_string(from_vector<bool>({true, false})),
            "tensor([true, false], shape=[2], dtype=bool)");
  EXPECT_EQ(to_string(from_vector<uint8_t>({255, 0})), "tensor([255, 0], shape=[2], dtype=u8)");
  EXPECT_EQ(to_string(full({2}, 1.5, DType::bf16)),
            "tensor([1.5000, 1.5000], shape=[2], dtype=bf16)");
  EXPECT_EQ(to_string(scalar_tensor(0.5, DType::f64)), "tensor(0.5000, shape=[], dtype=f64)");
  EXPECT_EQ(to_string(from_vector<float>({INFINITY, -INFINITY, NAN})),
            "tensor([inf, -inf, nan], shape=[3], dtype=f32)");
  EXPECT_EQ(to_string(zeros({0})), "tensor([], shape=[0], dtype=f32)");
  Tensor g = ones({2}).requires_grad_();
  EXPECT_EQ(to_string(g), "tensor([1.0000, 1.0000], shape=[2], dtype=f32, requires_grad=true)");
  std::ostringstream os;
  os << from_vector<int32_t>({5});
  EXPECT_EQ(os.str(), "tensor([5], shape=[1], dtype=i32)");
  // a transposed view prints its own (logical) order
  EXPECT_EQ(to_string(tensor({1, 2, 3, 4}, {2, 2}).t()),
            "tensor([[1.0000, 3.0000],\n        [2.0000, 4.0000]], shape=[2, 2], dtype=f32)");
}

TEST(Printing, SummarizesPastAThousandElements) {
  std::string small = to_string(arange(1000));
  EXPECT_FALSE(contains(small, "...")) << "1000 elements print in full";
  EXPECT_TRUE(contains(small, "999]"));
  std::string big = to_string(arange(1001));
  EXPECT_TRUE(contains(big, "[0, 1, 2, ..., 998, 999, 1000]")) << big;
  EXPECT_TRUE(contains(big, "shape=[1001], dtype=i64"));
  EXPECT_LT(big.size(), 100u);
  std::string m = to_string(zeros({40, 30}));
  EXPECT_TRUE(contains(m, "...")) << m;
  EXPECT_TRUE(contains(m, "shape=[40, 30], dtype=f32"));
  EXPECT_LT(m.size(), 1000u) << "rows and columns are both summarized";
  // 6 rows printed of 40, each with 6 of 30 values
  size_t rows = 0;
  for (size_t p = m.find("[0.0000"); p != std::string::npos; p = m.find("[0.0000", p + 1)) ++rows;
  EXPECT_EQ(rows, 6u);
}

TEST(Threads, SetAndGet) {
  int saved = num_threads();
  EXPECT_GE(saved, 1);
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  std::string m = error_of([] { set_num_threads(0); });
  EXPECT_TRUE(contains(m, "set_num_threads: 0 is not a thread count")) << m;
  EXPECT_THROW(set_num_threads(-2), Error);
  EXPECT_EQ(num_threads(), 1) << "a refused value leaves the setting alone";
  set_num_threads(saved);
}

// The child half of EnvironmentSetsTheInitialCount; skipped in a normal run.
TEST(Threads, ChildReadsEnvironment) {
  const char* expect = std::getenv("MOXING_TEST_EXPECT_THREADS");
  if (expect == nullptr) GTEST_SKIP() << "only run as a child of EnvironmentSetsTheInitialCount";
  if (std::string(expect) == "error") {
    std::string m = error_of([] { (void)num_threads(); });
    EXPECT_TRUE(contains(m, "MOXING_NUM_THREADS='zero' is not a thread count")) << m;
  } else {
    EXPECT_EQ(num_threads(), std::atoi(expect));
  }
}

TEST(Threads, EnvironmentSetsTheInitialCount) {
  // the pool size is read once per process, so each setting runs in a child process
  if (std::getenv("MOXING_TEST_EXPECT_THREADS") != nullptr) GTEST_SKIP() << "already a child";
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(len, 0);
  self[len] = '\0';
  const std::pair<const char*, const char*> runs[] = {{"3", "3"}, {"zero", "error"}};
  for (const auto& [value, expect] : runs) {
    std::string cmd = std::string("MOXING_NUM_THREADS=") + value +
                      " MOXING_TEST_EXPECT_THREADS=" + expect + " '" + self +
                      "' --gtest_filter=Threads.ChildReadsEnvironment > /dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
}

TEST(Threads, ParallelForCoversTheRangeOnce) {
  int saved = num_threads();
  for (int t : {1, 2, 3}) {
    set_num_threads(t);
    std::vector<int> hits(100000, 0);
    parallel_for(0, 100000, 1000, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)] += 1;
    });
    EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), 100000) << t << " threads";
  }
  set_num_threads(saved);
}

TEST(TensorCreation, EmptyTensorsAreContiguousWhateverTheirStrides) {
  // (5,0) gets strides (1,1), as in torch; with no element to lay out it is contiguous (the
  // safetensors fuzz target found a loaded (5,0) tensor reported as not contiguous)
  Tensor z = zeros({5, 0});
  EXPECT_EQ(z.strides(), (Shape{1, 1}));
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_TRUE(zeros({0, 3, 2}).transpose(0, 2).is_contiguous());
}
