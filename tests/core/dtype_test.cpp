// DType names and sizes, and .to() between every pair of dtypes, with the bf16/f16 rounding
// checked bit for bit against values PyTorch gives (the torch expression is on each table).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "moxing/core/dtype_visit.h"
#include "moxing/moxing.h"

using namespace moxing;

namespace {

const auto& kAll = kAllDTypes;

uint16_t bits_of(const Tensor& t, int64_t i) {
  return static_cast<const uint16_t*>(t.raw_data())[i];
}

}  // namespace

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::f64), 8u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  EXPECT_EQ(dtype_size(DType::i32), 4u);
  EXPECT_EQ(dtype_size(DType::u8), 1u);
  EXPECT_EQ(dtype_size(DType::i8), 1u);
  EXPECT_EQ(dtype_size(DType::boolean), 1u);
  EXPECT_STREQ(dtype_name(DType::f32), "f32");
  EXPECT_STREQ(dtype_name(DType::f64), "f64");
  EXPECT_STREQ(dtype_name(DType::bf16), "bf16");
  EXPECT_STREQ(dtype_name(DType::f16), "f16");
  EXPECT_STREQ(dtype_name(DType::i64), "i64");
  EXPECT_STREQ(dtype_name(DType::i32), "i32");
  EXPECT_STREQ(dtype_name(DType::u8), "u8");
  EXPECT_STREQ(dtype_name(DType::i8), "i8");
  EXPECT_STREQ(dtype_name(DType::boolean), "bool");
  int floating = 0;
  for (DType t : kAll) floating += is_floating(t) ? 1 : 0;
  EXPECT_EQ(floating, 4);
  EXPECT_FALSE(is_floating(DType::i64));
  EXPECT_EQ(device_name(kCPU), "cpu");
  EXPECT_EQ(device_name(Device{DeviceType::cuda, 1}), "cuda:1");
}

// Every row of MOXING_FORALL_DTYPES: each query agrees with the row's C++ type, and every name
// maps back to its dtype.
TEST(DType, TableIsConsistentForEveryDtype) {
  EXPECT_EQ(static_cast<int>(kAllDTypes.size()), kNumElementDTypes);
  EXPECT_EQ(kNumElementDTypes + kNumQuantDTypes, kNumDTypes);
  for (int k = 0; k < kNumElementDTypes; ++k) {
    DType t = kAllDTypes[static_cast<size_t>(k)];
    EXPECT_EQ(static_cast<int>(t), k) << "table order is enum order";
    visit_dtype(t, [&](auto tag) {
      using T = decltype(tag);
      EXPECT_EQ(dtype_size(t), sizeof(T)) << dtype_name(t);
      EXPECT_EQ(dtype_of<T>::value, t) << dtype_name(t);
      bool floating =
          std::is_floating_point_v<T> || std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>;
      EXPECT_EQ(is_floating(t), floating) << dtype_name(t);
    });
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t) << dtype_name(t);
    EXPECT_EQ(dtype_from_safetensors_name(dtype_safetensors_name(t)), t) << dtype_name(t);
    EXPECT_EQ(std::string(dtype_torch_name(t)).rfind("torch.", 0), 0u) << dtype_name(t);
  }
  // the quantized rows: enum order after the element types, names both ways, no file names
  for (int k = 0; k < kNumQuantDTypes; ++k) {
    DType t = kQuantDTypes[static_cast<size_t>(k)];
    EXPECT_EQ(static_cast<int>(t), kNumElementDTypes + k);
    EXPECT_TRUE(is_quantized(t));
    EXPECT_FALSE(is_floating(t));
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
    EXPECT_EQ(quant_dtype_of_ggml(*dtype_ggml_type(t)), t);
    EXPECT_EQ(dtype_safetensors_name(t), nullptr);
    EXPECT_EQ(dtype_torch_name(t), nullptr);
  }
  EXPECT_EQ(dtype_from_name("float32"), std::nullopt);
  EXPECT_EQ(dtype_from_safetensors_name("f32"), std::nullopt);
  EXPECT_STREQ(dtype_safetensors_name(DType::bf16), "BF16");
  EXPECT_STREQ(dtype_safetensors_name(DType::boolean), "BOOL");
  EXPECT_STREQ(dtype_torch_name(DType::f32), "torch.float32");
  EXPECT_STREQ(dtype_torch_name(DType::boolean), "torch.bool");
}

TEST(Device, NamesParseBack) {
  EXPECT_EQ(device_name(kMeta), "meta");
  for (Device d : {kCPU, kMeta, Device{DeviceType::cuda, 0}, Device{DeviceType::cuda, 3}}) {
    EXPECT_EQ(parse_device(device_name(d)), d) << device_name(d);
  }
  EXPECT_EQ(parse_device("cuda"), (Device{DeviceType::cuda, 0}));
  for (const char* bad : {"gpu", "", "cuda:", "cuda:x", "CPU", "meta:0"}) {
    try {
      parse_device(bad);
      ADD_FAILURE() << "parse_device accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("valid: cpu, meta, cuda"), std::string::npos)
          << e.what();
    }
  }
}

TEST(DType, StorageSizeFollowsDtype) {
  for (DType t : kAll) {
    Tensor x = zeros({3, 5}, t);
    EXPECT_EQ(x.dtype(), t);
    EXPECT_EQ(x.impl()->storage->nbytes, 15 * dtype_size(t)) << dtype_name(t);
  }
}

TEST(DType, ToBetweenEveryPair) {
  // values every dtype holds exactly (bool holds v != 0)
  const std::vector<double> v = {0, 1, 2, 5, 100, 0, 3};
  for (DType src : kAll) {
    for (DType dst : kAll) {
      Tensor a = from_vector(v, {7}).to(src);
      Tensor b = a.to(dst);
      ASSERT_EQ(b.dtype(), dst);
      ASSERT_EQ(b.shape(), Shape({7}));
      std::vector<double> got = b.to_vector<double>();
      for (size_t i = 0; i < v.size(); ++i) {
        bool through_bool = src == DType::boolean || dst == DType::boolean;
        double want = through_bool ? (v[i] != 0 ? 1.0 : 0.0) : v[i];
        EXPECT_EQ(got[i], want) << dtype_name(src) << " -> " << dtype_name(dst) << " at " << i;
      }
      if (src == dst) {
        EXPECT_TRUE(b.shares_storage(a)) << "to() with the same dtype returns the tensor itself";
      } else {
        EXPECT_FALSE(b.shares_storage(a));
      }
    }
  }
}

TEST(DType, ToOnNonContiguousInput) {
  Tensor x = arange(0, 6, 1, DType::f32).view({2, 3}).t();
  for (DType dst : kAll) {
    Tensor y = x.to(dst);
    EXPECT_EQ(y.is_contiguous(), dst != DType::f32) << "only a real conversion copies";
    std::vector<double> want = {0, 3, 1, 4, 2, 5};
    if (dst == DType::boolean) want = {0, 1, 1, 1, 1, 1};
    EXPECT_EQ(y.to_vector<double>(), want) << dtype_name(dst);
  }
}

TEST(DType, FloatToIntegerTruncatesAndBoolTestsNonZero) {
  // torch.tensor([-2.7, 2.7, 0.5, -0.5]).to(torch.int64) -> [-2, 2, 0, 0]
  Tensor f = from_vector<float>({-2.7f, 2.7f, 0.5f, -0.5f});
  EXPECT_EQ(f.to(DType::i64).to_vector<int64_t>(), std::vector<int64_t>({-2, 2, 0, 0}));
  EXPECT_EQ(f.to(DType::i32).to_vector<int32_t>(), std::vector<int32_t>({-2, 2, 0, 0}));
  EXPECT_EQ(from_vector<float>({200.9f}).to(DType::u8).item<uint8_t>(), 200);
  // torch.tensor([0.0, -0.0, 0.5, nan]).to(torch.bool) -> [False, False, True, True]
  Tensor b = from_vector<float>({0.0f, -0.0f, 0.5f, std::numeric_limits<float>::quiet_NaN()})
                 .to(DType::boolean);
  EXPECT_EQ(b.to_vector<bool>(), std::vector<bool>({false, false, true, true}));
  // torch.tensor([16777217]).to(torch.float32) -> 16777216 (round to nearest even)
  EXPECT_EQ(from_vector<int64_t>({16777217}).to(DType::f32).item<float>(), 16777216.0f);
  // torch.tensor([257]).to(torch.bfloat16) -> 256; torch.tensor([2049]).to(torch.float16) -> 2048
  EXPECT_EQ(from_vector<int64_t>({257}).to(DType::bf16).item<float>(), 256.0f);
  EXPECT_EQ(from_vector<int64_t>({2049}).to(DType::f16).item<float>(), 2048.0f);
}

TEST(DType, Bf16AndF16RoundToNearestEvenLikeTorch) {
  // x = torch.tensor(vals, dtype=torch.float32)
  // x.to(torch.bfloat16).view(torch.int16) and x.to(torch.float16).view(torch.int16), as uint16
  struct Row {
    float x;
    uint16_t bf16, f16;
  };
  const float inf = std::numeric_limits<float>::infinity();
  const Row rows[] = {
      {1.0f, 0x3f80, 0x3c00},
      {1.00390625f, 0x3f80, 0x3c04},          // 1 + 2^-8: bf16 tie, rounds to even 1.0
      {1.01171875f, 0x3f82, 0x3c0c},          // 1 + 3*2^-8: bf16 tie, rounds up to even
      {1.0039215087890625f, 0x3f81, 0x3c04},  // just above the bf16 tie
      {3.14159265f, 0x4049, 0x4248},
      {-2.5e-3f, 0xbb24, 0x991f},
      {65504.0f, 0x4780, 0x7bff},                 // f16 max
      {65520.0f, 0x4780, 0x7c00},                 // f16 overflow to inf at the tie
      {1e-5f, 0x3728, 0x00a8},                    // f16 subnormal
      {6e-8f, 0x3381, 0x0001},                    // f16 smallest subnormal
      {3e-8f, 0x3301, 0x0001},                    // just above half the smallest: rounds up
      {2.9802322387695312e-08f, 0x3300, 0x0000},  // 2^-25: tie, rounds to even 0
      {8.940696716308594e-08f, 0x33c0, 0x0002},   // 1.5 * 2^-24: tie, rounds to even 2
      {1e38f, 0x7e96, 0x7c00},
      {3.4e38f, 0x7f80, 0x7c00},  // bf16 rounds up to inf
      {inf, 0x7f80, 0x7c00},
      {-inf, 0xff80, 0xfc00},
  };
  std::vector<float> xs;
  for (const Row& r : rows) xs.push_back(r.x);
  Tensor x = from_vector(xs);
  Tensor b = x.to(DType::bf16), h = x.to(DType::f16);
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_EQ(bits_of(b, static_cast<int64_t>(i)), rows[i].bf16) << "bf16 of " << xs[i];
    EXPECT_EQ(bits_of(h, static_cast<int64_t>(i)), rows[i].f16) << "f16 of " << xs[i];
    EXPECT_EQ(to_bf16(xs[i]).bits, rows[i].bf16);
    EXPECT_EQ(to_f16(xs[i]).bits, rows[i].f16);
  }
  // x.to(torch.bfloat16).float()
  std::vector<float> bf_back = b.to_vector<float>();
  EXPECT_EQ(bf_back[2], 1.015625f);
  EXPECT_EQ(bf_back[4], 3.140625f);
  EXPECT_EQ(bf_back[6], 65536.0f);
  // x.to(torch.float16).float()
  std::vector<float> h_back = h.to_vector<float>();
  EXPECT_EQ(h_back[5], -0.0025005340576171875f);
  EXPECT_EQ(h_back[8], 1.0013580322265625e-05f);
  EXPECT_EQ(h_back[9], 5.960464477539063e-08f);
  EXPECT_EQ(h_back[12], 1.1920928955078125e-07f);
  EXPECT_EQ(h_back[7], inf);
}

TEST(DType, NanSurvivesEveryFloatConversion) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = from_vector<float>({nan, -nan});
  for (DType t : {DType::f64, DType::bf16, DType::f16}) {
    std::vector<float> back = x.to(t).to(DType::f32).to_vector<float>();
    EXPECT_TRUE(std::isnan(back[0])) << dtype_name(t);
    EXPECT_TRUE(std::isnan(back[1])) << dtype_name(t);
  }
  // a NaN whose payload sits only in the low bits must not round to inf in bf16
  uint32_t low_nan_bits = 0x7f800001u;
  float low_nan;
  std::memcpy(&low_nan, &low_nan_bits, 4);
  EXPECT_TRUE(std::isnan(from_bf16(to_bf16(low_nan))));
  EXPECT_TRUE(std::isnan(from_f16(to_f16(low_nan))));
}

TEST(DType, F16DecodesSubnormalsAndSpecials) {
  // torch.tensor([...], dtype=torch.int32).to(torch.int16).view(torch.float16).float()
  const std::pair<uint16_t, float> rows[] = {
      {0x0001, 5.960464477539063e-08f},  {0x03ff, 6.097555160522461e-05f},
      {0x0400, 6.103515625e-05f},        {0x7bff, 65504.0f},
      {0x8001, -5.960464477539063e-08f}, {0x8000, -0.0f},
  };
  for (const auto& [bits, value] : rows) {
    EXPECT_EQ(from_f16(Half{bits}), value) << std::hex << bits;
  }
  EXPECT_TRUE(std::signbit(from_f16(Half{0x8000})));
  EXPECT_EQ(from_f16(Half{0x7c00}), std::numeric_limits<float>::infinity());
  EXPECT_EQ(from_f16(Half{0xfc00}), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(from_f16(Half{0x7e00})));
  // torch.tensor([1e-7, 1e-8, -6e-5, 6.1e-5, 0.1]).to(torch.float16).view(torch.int16), as uint16
  Tensor h = from_vector<float>({1e-7f, 1e-8f, -6e-5f, 6.1e-5f, 0.1f}).to(DType::f16);
  const uint16_t want[] = {0x0002, 0x0000, 0x83ef, 0x03ff, 0x2e66};
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(bits_of(h, i), want[i]) << i;
}

TEST(DType, F16RoundTripIsExactForEveryFiniteHalf) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    Half h{static_cast<uint16_t>(b)};
    float f = from_f16(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(to_f16(f).bits, h.bits) << std::hex << b;
  }
}

TEST(DType, F64ToHalfGoesThroughF32LikeTorch) {
  // torch.tensor([1 + 2**-8 + 2**-30], dtype=torch.float64).to(torch.bfloat16) -> 1.0
  // torch.tensor([1 + 2**-11 + 2**-40], dtype=torch.float64).to(torch.float16) -> 1.0
  Tensor x = from_vector<double>({1 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30),
                                  1 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)});
  EXPECT_EQ(x.to(DType::bf16).to_vector<double>()[0], 1.0);
  EXPECT_EQ(x.to(DType::f16).to_vector<double>()[1], 1.0);
}

TEST(DType, DataAccessorChecksDtype) {
  Tensor x = zeros({2}, DType::f64);
  EXPECT_NO_THROW((void)x.data<double>());
  try {
    (void)x.data<float>();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data<f32>() called on a f64 tensor"), std::string::npos)
        << e.what();
  }
}
