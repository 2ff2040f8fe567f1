// Philox RNG: known-answer vectors, seeding, independence from the thread count, and the
// moments of rand / randn / randint / randperm.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "moxing/moxing.h"

using namespace moxing;

namespace {

// bitwise equality (so that -0.0 vs 0.0 or NaN payloads would show)
template <class T>
bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() &&
         std::memcmp(a.data<T>(), b.data<T>(), static_cast<size_t>(a.numel()) * sizeof(T)) == 0;
}

struct Moments {
  double mean, std;
};

Moments moments(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double s = 0, ss = 0;
  for (double x : v) s += x;
  double m = s / static_cast<double>(v.size());
  for (double x : v) ss += (x - m) * (x - m);
  return {m, std::sqrt(ss / static_cast<double>(v.size()))};
}

}  // namespace

TEST(Philox, Random123KnownAnswers) {
  using W = std::array<uint32_t, 4>;
  EXPECT_EQ(philox4x32({0, 0, 0, 0}, {0, 0}), (W{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (W{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (W{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Generator, SameSeedSameValues) {
  Generator a(42), b(42), c(43);
  Tensor x = rand({1000}, DType::f32, &a);
  Tensor y = rand({1000}, DType::f32, &b);
  Tensor z = rand({1000}, DType::f32, &c);
  EXPECT_TRUE(same_bits<float>(x, y));
  EXPECT_FALSE(same_bits<float>(x, z));
  // the stream advances: a second draw differs from the first
  Tensor x2 = rand({1000}, DType::f32, &a);
  EXPECT_FALSE(same_bits<float>(x, x2));
  EXPECT_EQ(a.offset(), 500u) << "two draws of 250 blocks (4 f32 per block)";
  a.manual_seed(42);
  EXPECT_EQ(a.offset(), 0u);
  EXPECT_TRUE(same_bits<float>(rand({1000}, DType::f32, &a), x));
}

TEST(Generator, ManualSeedResetsTheDefaultGenerator) {
  manual_seed(7);
  Tensor a = randn({3, 5});
  Tensor b = randint(0, 100, {20});
  Tensor p = randperm(10);
  manual_seed(7);
  EXPECT_TRUE(same_bits<float>(randn({3, 5}), a));
  EXPECT_TRUE(same_bits<int64_t>(randint(0, 100, {20}), b));
  EXPECT_TRUE(same_bits<int64_t>(randperm(10), p));
  EXPECT_EQ(default_generator().seed(), 7u);
  manual_seed(8);
  EXPECT_FALSE(same_bits<float>(randn({3, 5}), a));
}

TEST(Generator, OffsetCanBeSavedAndRestored) {
  Generator g(11);
  (void)randn({5}, DType::f32, &g);
  uint64_t at = g.offset();
  Tensor next = rand({9}, DType::f64, &g);
  g.set_offset(at);
  EXPECT_TRUE(same_bits<double>(rand({9}, DType::f64, &g), next));
  Generator other(11);
  other.set_offset(at);
  EXPECT_TRUE(same_bits<double>(rand({9}, DType::f64, &other), next));
}

TEST(Generator, SplittingADrawGivesTheSameStream) {
  // element i depends only on (seed, offset, i): two draws of 8 equal one draw of 16
  Generator a(5), b(5);
  Tensor whole = rand({16}, DType::f32, &a);
  Tensor first = rand({8}, DType::f32, &b);
  Tensor second = rand({8}, DType::f32, &b);
  std::vector<float> w = whole.to_vector<float>();
  std::vector<float> f = first.to_vector<float>(), s = second.to_vector<float>();
  f.insert(f.end(), s.begin(), s.end());
  EXPECT_EQ(f, w);
}

TEST(Generator, ResultsDoNotDependOnTheThreadCount) {
  int saved = num_threads();
  const Shape big = {1000, 1000};
  std::vector<Tensor> one, two;
  for (int t : {1, 2}) {
    set_num_threads(t);
    Generator g(2024);
    auto& out = t == 1 ? one : two;
    out.push_back(rand(big, DType::f32, &g));
    out.push_back(randn(big, DType::f32, &g));
    out.push_back(rand(big, DType::f64, &g));
    out.push_back(randn(big, DType::f64, &g));
    out.push_back(randint(-5, 5, big, DType::i64, &g));
  }
  set_num_threads(saved);
  EXPECT_TRUE(same_bits<float>(one[0], two[0]));
  EXPECT_TRUE(same_bits<float>(one[1], two[1]));
  EXPECT_TRUE(same_bits<double>(one[2], two[2]));
  EXPECT_TRUE(same_bits<double>(one[3], two[3]));
  EXPECT_TRUE(same_bits<int64_t>(one[4], two[4]));
}

TEST(Distributions, RandIsUniformOnZeroOne) {
  Generator g(1);
  for (DType t : {DType::f32, DType::f64}) {
    Tensor x = rand({1000000}, t, &g);
    EXPECT_EQ(x.dtype(), t);
    Moments m = moments(x);
    EXPECT_NEAR(m.mean, 0.5, 0.002) << dtype_name(t);
    EXPECT_NEAR(m.std, std::sqrt(1.0 / 12.0), 0.002) << dtype_name(t);
    EXPECT_GE(amin(x).item<double>(), 0.0);
    EXPECT_LT(amax(x).item<double>(), 1.0);
  }
  Tensor u = uniform({100000}, -3, 5, DType::f32, &g);
  EXPECT_NEAR(moments(u).mean, 1.0, 0.05);
  EXPECT_GE(amin(u).item<float>(), -3.0f);
  EXPECT_LT(amax(u).item<float>(), 5.0f);
  EXPECT_EQ(rand({4}, DType::bf16, &g).dtype(), DType::bf16);
  EXPECT_THROW((void)rand({2}, DType::i64, &g), Error);
  EXPECT_THROW((void)uniform({2}, 1, 0, DType::f32, &g), Error);
}

TEST(Distributions, RandnIsStandardNormal) {
  Generator g(2);
  for (DType t : {DType::f32, DType::f64}) {
    Tensor x = randn({1000000}, t, &g);
    Moments m = moments(x);
    EXPECT_NEAR(m.mean, 0.0, 0.005) << dtype_name(t);
    EXPECT_NEAR(m.std, 1.0, 0.005) << dtype_name(t);
    // about 68.3% within one std
    double within = mean(lt(abs(x.to(DType::f64)), 1.0).to(DType::f64)).item<double>();
    EXPECT_NEAR(within, 0.6827, 0.003);
  }
  Tensor odd = randn({7}, DType::f32, &g);  // odd sizes fill the last pair half
  EXPECT_EQ(odd.numel(), 7);
  Tensor n = normal({200000}, 3, 0.5, DType::f64, &g);
  Moments m = moments(n);
  EXPECT_NEAR(m.mean, 3.0, 0.01);
  EXPECT_NEAR(m.std, 0.5, 0.01);
  EXPECT_THROW((void)normal({2}, 0, -1, DType::f32, &g), Error);
}

TEST(Distributions, RandintCoversTheRangeOnly) {
  Generator g(3);
  Tensor x = randint(-2, 3, {100000}, DType::i64, &g);
  std::vector<int64_t> v = x.to_vector<int64_t>();
  std::vector<int64_t> count(5, 0);
  for (int64_t k : v) {
    ASSERT_GE(k, -2);
    ASSERT_LT(k, 3);
    count[static_cast<size_t>(k + 2)] += 1;
  }
  for (int64_t c : count) EXPECT_NEAR(static_cast<double>(c), 20000.0, 800.0);
  EXPECT_EQ(randint(0, 10, {3}, DType::i32, &g).dtype(), DType::i32);
  EXPECT_EQ(randint(4, 5, {6}, DType::i64, &g).to_vector<int64_t>(), std::vector<int64_t>(6, 4));
  EXPECT_THROW((void)randint(3, 3, {2}, DType::i64, &g), Error);
}

TEST(Distributions, RandpermIsAPermutation) {
  Generator g(4);
  Tensor p = randperm(1000, &g);
  EXPECT_EQ(p.dtype(), DType::i64);
  std::vector<int64_t> v = p.to_vector<int64_t>();
  std::vector<int64_t> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_NE(v, sorted) << "shuffled";
  EXPECT_EQ(randperm(0, &g).numel(), 0);
  EXPECT_EQ(randperm(1, &g).to_vector<int64_t>(), std::vector<int64_t>({0}));
  EXPECT_THROW((void)randperm(-1, &g), Error);
  // every position sees every value about equally often
  std::vector<int> first(4, 0);
  for (int k = 0; k < 4000; ++k)
    first[static_cast<size_t>(randperm(4, &g).to_vector<int64_t>()[0])]++;
  for (int c : first) EXPECT_NEAR(c, 1000, 150);
}

TEST(Distributions, HalfPrecisionRandStaysBelowOne) {
  // f32 draws just below 1 must not round up to 1 in bf16 / f16 (torch draws as many bits as
  // the target dtype holds)
  Generator g(5);
  for (DType t : {DType::bf16, DType::f16}) {
    Tensor x = rand({1000000}, t, &g);
    EXPECT_EQ(x.dtype(), t);
    std::vector<float> v = x.to_vector<float>();
    float hi = *std::max_element(v.begin(), v.end());
    float lo = *std::min_element(v.begin(), v.end());
    EXPECT_LT(hi, 1.0f) << dtype_name(t);
    EXPECT_GE(lo, 0.0f) << dtype_name(t);
    EXPECT_NEAR(moments(x).mean, 0.5, 0.005) << dtype_name(t);
  }
}
