// Quantized weights: quantize and dequantize bit for bit against ggml (tests/fixtures/quant.py
// ran ggml's own quantizer), the products on every instruction-set path the CPU runs against
// the dequantized f32 product, their gradient, the quantized layers and the surgery, and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "expect_error.h"
#include "kernels/quant.h"
#include "moxing/moxing.h"

using namespace moxing;
using moxing::testing::expect_error;

namespace {

nlohmann::json load_fixture() {
  std::ifstream in(std::string(MOXING_FIXTURE_DIR) + "/quant.json");
  return nlohmann::json::parse(in);
}

std::vector<uint8_t> from_hex(const std::string& s) {
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t k = 0; k < out.size(); ++k)
    out[k] = static_cast<uint8_t>(std::stoi(s.substr(2 * k, 2), nullptr, 16));
  return out;
}

Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed, double scale = 1.0) {
  Generator gen(seed);
  return mul(randn({rows, cols}, DType::f32, &gen), scale);
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector<float>() == b.to_vector<float>();
}

// max |a - b| / max |b|
double relative_error(const Tensor& a, const Tensor& b) {
  return max(abs(sub(a, b))).item<double>() / std::max(1e-30, max(abs(b)).item<double>());
}

// Restores the best instruction-set path after a test forced another.
struct IsaGuard {
  kernels::QuantIsa saved = kernels::quant_isa();
  ~IsaGuard() { kernels::set_quant_isa(saved); }
};

std::vector<kernels::QuantIsa> isas_this_cpu_runs() {
  std::vector<kernels::QuantIsa> out;
  IsaGuard guard;
  for (auto isa :
       {kernels::QuantIsa::scalar, kernels::QuantIsa::avx2, kernels::QuantIsa::avx512_vnni}) {
    try {
      kernels::set_quant_isa(isa);
      out.push_back(isa);
    } catch (const Error&) {
    }
  }
  return out;
}

const DType kWritable[] = {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k};

}  // namespace

TEST(Quant, DTypeTableHasTheBlockLayouts) {
  EXPECT_TRUE(is_quantized(DType::q4_k));
  EXPECT_FALSE(is_quantized(DType::f32));
  EXPECT_FALSE(is_quantized(DType::i8));
  EXPECT_EQ(dtype_block_numel(DType::q8_0), 32);
  EXPECT_EQ(dtype_block_bytes(DType::q8_0), 34u);
  EXPECT_EQ(dtype_block_bytes(DType::q4_0), 18u);
  EXPECT_EQ(dtype_block_bytes(DType::q4_1), 20u);
  EXPECT_EQ(dtype_block_numel(DType::q4_k), 256);
  EXPECT_EQ(dtype_block_bytes(DType::q4_k), 144u);
  EXPECT_EQ(dtype_block_bytes(DType::q6_k), 210u);
  EXPECT_EQ(dtype_nbytes(DType::q4_k, 512), 288u);
  EXPECT_EQ(dtype_nbytes(DType::f32, 3), 12u);
  EXPECT_EQ(dtype_from_name("q4_k"), DType::q4_k);
  EXPECT_EQ(quant_dtype_of_ggml(12), DType::q4_k);
  EXPECT_EQ(dtype_ggml_type(DType::q8_0), 8u);
  EXPECT_EQ(dtype_safetensors_name(DType::q4_0), nullptr);
  EXPECT_STREQ(dtype_safetensors_name(DType::i8), "I8");
  expect_error([] { dtype_size(DType::q4_0); }, "quantized block type");
  expect_error([] { dtype_nbytes(DType::q4_k, 100); }, "not whole q4_k blocks");
  expect_error([] { zeros({4, 48}, TensorOptions(DType::q8_0)); }, "does not divide");
  EXPECT_EQ(from_vector(std::vector<int8_t>{-3, 7}, {2}).to(DType::f32).to_vector<float>(),
            (std::vector<float>{-3.f, 7.f}));
}

// ggml's quantize_row_*_ref and dequantize_row_* on the fixture's rows, byte for byte.
TEST(Quant, QuantizeAndDequantizeEqualGgml) {
  const nlohmann::json fx = load_fixture();
  const std::vector<float> xv = fx["x"].get<std::vector<float>>();
  const int64_t rows = fx["rows"].get<int64_t>(), cols = fx["cols"].get<int64_t>();
  const Tensor x = from_vector(xv, {rows, cols});
  for (const auto& [name, c] : fx["types"].items()) {
    SCOPED_TRACE(name);
    const DType t = *dtype_from_name(name);
    const std::vector<uint8_t> want = from_hex(c["bytes"].get<std::string>());
    if (t != DType::q6_k) {
      Tensor q = quantize(x, t);
      ASSERT_EQ(q.dtype(), t);
      ASSERT_EQ(dtype_nbytes(t, q.numel()), want.size());
      const auto* got = static_cast<const uint8_t*>(q.raw_data());
      size_t differ = 0;
      for (size_t k = 0; k < want.size(); ++k) differ += got[k] != want[k];
      EXPECT_EQ(differ, 0u) << "bytes differing from ggml's";
      EXPECT_TRUE(same(x.to(t).to(DType::f32), dequantize(q)));  // .to() is the same pair
    }
    Tensor qf = from_blob_copy(want.data(), {rows, cols}, t);
    const std::vector<float> deq = c["dequantized"].get<std::vector<float>>();
    EXPECT_EQ(dequantize(qf).to_vector<float>(), deq);
  }
}

// Each path (scalar, AVX2, AVX512-VNNI where the CPU has them) against the f32 product with the
// dequantized weight; the 8-bit activations cost about 0.5% of the output scale.
TEST(Quant, LinearMatchesTheDequantizedProductOnEveryPath) {
  IsaGuard guard;
  const Tensor w = random_matrix(40, 512, 1, 0.05);
  const Tensor x = random_matrix(5, 512, 2);
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q4_k, DType::q6_k}) {
    const Tensor wq =
        t == DType::q6_k ? from_blob_copy(std::vector<uint8_t>(dtype_nbytes(t, 40 * 512), 7).data(),
                                          {40, 512}, t)
                         : quantize(w, t);
    const Tensor want = linear(x, dequantize(wq));
    EXPECT_LT(relative_error(quantized_linear(x, wq, Tensor(), true), want), 1e-6)
        << dtype_name(t) << " f32 compute";
    Tensor scalar_result;
    for (auto isa : isas_this_cpu_runs()) {
      kernels::set_quant_isa(isa);
      for (int64_t rows : {1, 5}) {
        const Tensor xi = x.narrow(0, 0, rows);
        const Tensor got = quantized_linear(xi, wq);
        EXPECT_LT(relative_error(got, want.narrow(0, 0, rows)), 0.02)
            << dtype_name(t) << " on " << kernels::quant_isa_name(isa) << ", M=" << rows;
      }
      const Tensor got = quantized_linear(x, wq);
      if (!scalar_result.defined()) {
        scalar_result = got;
      } else {
        EXPECT_LT(relative_error(got, scalar_result), 1e-5)
            << dtype_name(t) << ": " << kernels::quant_isa_name(isa) << " against scalar";
      }
    }
  }
}

// The integer products are exact for the activations as they quantize them (each 32-value block
// to round-to-even(x * 127 / max|x|), scale max|x| / 127): what differs from the f32 product is
// that rounding alone, on every path.
TEST(Quant, IntegerProductsAreExactForTheQuantizedActivations) {
  IsaGuard guard;
  const int64_t N = 24, K = 512, M = 3;
  const Tensor x = random_matrix(M, K, 21);
  const std::vector<float> xv = x.to_vector<float>();
  std::vector<double> xq(xv.size());
  for (int64_t b = 0; b < M * K / 32; ++b) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j)
      amax = std::max(amax, std::fabs(xv[static_cast<size_t>(b * 32 + j)]));
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    for (int j = 0; j < 32; ++j) {
      const auto k = static_cast<size_t>(b * 32 + j);
      xq[k] = static_cast<double>(d) * std::nearbyint(xv[k] * id);
    }
  }
  for (DType t : kWritable) {
    const Tensor w = quantize(random_matrix(N, K, 22, 0.1), t);
    const std::vector<float> wd = dequantize(w).to_vector<float>();
    for (auto isa : isas_this_cpu_runs()) {
      kernels::set_quant_isa(isa);
      const std::vector<float> y = quantized_linear(x, w).to_vector<float>();
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) {
          double want = 0;
          for (int64_t k = 0; k < K; ++k) {
            want += xq[static_cast<size_t>(m * K + k)] * wd[static_cast<size_t>(n * K + k)];
          }
          EXPECT_NEAR(y[static_cast<size_t>(m * N + n)], want, 1e-5 * (1 + std::fabs(want)))
              << dtype_name(t) << " on " << kernels::quant_isa_name(isa) << " at " << m << "," << n;
        }
      }
    }
  }
}

// Per-channel int8: scale = max|row| / 127, codes = round(w / scale); the product equals the
// dequantized linear's within the 8-bit activations' rounding, exactly in f32 compute; its
// gradient is the dequantized linear's.
TEST(Quant, Int8RowsAndTheirLinear) {
  IsaGuard guard;
  const Tensor w = random_matrix(20, 96, 31, 0.2);
  Int8Rows rows = quantize_int8_rows(w);
  ASSERT_EQ(rows.weight.dtype(), DType::i8);
  ASSERT_EQ(rows.scale.shape(), (Shape{20}));
  const std::vector<float> wv = w.to_vector<float>();
  float amax = 0.f;
  for (int k = 0; k < 96; ++k) amax = std::max(amax, std::fabs(wv[static_cast<size_t>(k)]));
  EXPECT_FLOAT_EQ(rows.scale.to_vector<float>()[0], amax / 127.f);
  const Tensor wd = mul(rows.weight.to(DType::f32), rows.scale.unsqueeze(1));
  EXPECT_LT(relative_error(wd, w), 0.01);
  const Tensor x = random_matrix(4, 96, 32).requires_grad_();
  const Tensor want = linear(x.detach(), wd);
  EXPECT_LT(relative_error(int8_linear(x.detach(), rows.weight, rows.scale, Tensor(), true), want),
            1e-6);
  for (auto isa : isas_this_cpu_runs()) {
    kernels::set_quant_isa(isa);
    EXPECT_LT(relative_error(int8_linear(x.detach(), rows.weight, rows.scale), want), 0.02)
        << kernels::quant_isa_name(isa);
  }
  const Tensor g = random_matrix(4, 20, 33);
  sum(mul(int8_linear(x, rows.weight, rows.scale), g)).backward();
  const Tensor x2 = x.detach().requires_grad_();
  sum(mul(linear(x2, wd), g)).backward();
  EXPECT_LT(relative_error(x.grad(), x2.grad()), 1e-5);
  // rows of 100 inputs (not whole 32-blocks) take the f32 path
  const Int8Rows odd = quantize_int8_rows(random_matrix(3, 100, 34));
  const Tensor xo = random_matrix(2, 100, 35);
  EXPECT_LT(relative_error(int8_linear(xo, odd.weight, odd.scale),
                           linear(xo, mul(odd.weight.to(DType::f32), odd.scale.unsqueeze(1)))),
            1e-6);
  expect_error([&] { int8_linear(xo, odd.weight, rows.scale); }, "scale must be f32 of shape [3]");
}

TEST(Quant, LinearSplitsRowsOverThreadsWithoutChangingResults) {
  const Tensor w = quantize(random_matrix(300, 256, 3), DType::q4_k);
  const Tensor x = random_matrix(3, 256, 4);
  set_num_threads(1);
  const Tensor one = quantized_linear(x, w);
  set_num_threads(2);
  const Tensor two = quantized_linear(x, w);
  set_num_threads(1);
  EXPECT_TRUE(same(one, two));
}

// The gradient wrt the input (and bias) is linear's with the dequantized weight, whose f64
// gradcheck is in linalg_test.
TEST(Quant, GradientWrtInputAndBiasIsTheDequantizedLinears) {
  for (DType t : kWritable) {
    const Tensor wq = quantize(random_matrix(24, 256, 5, 0.1), t);
    const Tensor x = random_matrix(6, 256, 6).requires_grad_();
    const Tensor b = random_matrix(1, 24, 7).reshape({24}).requires_grad_();
    const Tensor g = random_matrix(6, 24, 8);
    sum(mul(quantized_linear(x, wq, b, true), g)).backward();
    const Tensor x2 = x.detach().requires_grad_();
    const Tensor b2 = b.detach().requires_grad_();
    sum(mul(linear(x2, dequantize(wq), b2), g)).backward();
    EXPECT_LT(relative_error(x.grad(), x2.grad()), 1e-5) << dtype_name(t);
    EXPECT_LT(relative_error(b.grad(), b2.grad()), 1e-6) << dtype_name(t);
  }
}

TEST(Quant, QuantizationErrorIsWhatEachTypeStores) {
  const Tensor w = random_matrix(64, 512, 9);
  // root-mean-square error relative to the weights' RMS: 8 bits, then 4 bits with better scales
  std::map<DType, double> bound = {
      {DType::q8_0, 0.01}, {DType::q4_0, 0.15}, {DType::q4_1, 0.12}, {DType::q4_k, 0.11}};
  for (DType t : kWritable) {
    const Tensor err = sub(dequantize(quantize(w, t)), w);
    const double rel =
        std::sqrt(mean(mul(err, err)).item<double>() / mean(mul(w, w)).item<double>());
    EXPECT_LT(rel, bound[t]) << dtype_name(t);
    EXPECT_GT(rel, bound[t] / 20) << dtype_name(t);
  }
}

TEST(Quant, EmbeddingReadsDequantizedRows) {
  const Tensor table = random_matrix(10, 64, 10);
  const Tensor q = quantize(table, DType::q8_0);
  const Tensor ids = from_vector(std::vector<int64_t>{3, 0, 9, 3}, {2, 2});
  const Tensor got = quantized_embedding(q, ids);
  EXPECT_EQ(got.shape(), (Shape{2, 2, 64}));
  EXPECT_TRUE(same(got, embedding(dequantize(q), ids)));
  expect_error([&] { quantized_embedding(q, from_vector(std::vector<int64_t>{10}, {1})); },
               "id 10 is out of range for a table of 10 rows");
}

TEST(Quant, ErrorsNameTheTypeAndTheShape) {
  expect_error(
      [] {
        quantize(zeros({2, 100}), DType::q4_k);
      },
      "q4_k stores blocks of 256 values along the last dimension, and shape [2, 100]");
  expect_error([] { quantize(zeros({2, 256}), DType::q6_k); }, "q6_k is read only");
  expect_error([] { quantize(zeros({2, 32}), DType::f16); }, "f16 is not a quantized dtype");
  const Tensor wq = quantize(zeros({4, 64}), DType::q4_0);
  expect_error(
      [&] {
        quantized_linear(zeros({3, 32}), wq);
      },
      "input shape [3, 32] does not match weight shape [4, 64]");
  expect_error(
      [&] {
        quantized_linear(zeros({3, 64}), zeros({4, 64}));
      },
      "weight must have a quantized dtype");
  expect_error([&] { quantized_linear(zeros({3, 64}, DType::f64), wq); }, "input must be f32");
  expect_error([&] { wq.transpose(0, 1).contiguous(); }, "splits its blocks");
}

// Rows of a quantized tensor can be rearranged (llama.cpp's q/k row order is undone this way).
TEST(Quant, WholeRowsRearrangeAsBytes) {
  const Tensor w = random_matrix(8, 64, 11);
  const Tensor q = quantize(w, DType::q4_1);
  const Tensor swapped = q.reshape({2, 2, 2, 64}).transpose(1, 2).reshape({8, 64});
  EXPECT_TRUE(same(dequantize(swapped),
                   dequantize(q).reshape({2, 2, 2, 64}).transpose(1, 2).reshape({8, 64})));
}

TEST(QuantizedModules, SurgerySwapsLinearsAndSharesATiedTable) {
  Generator gen(12);
  auto root = std::make_shared<nn::Sequential>();
  auto emb = std::make_shared<nn::Embedding>(50, 256, std::nullopt, &gen);
  auto mid = std::make_shared<nn::Linear>(256, 96, true, &gen);
  auto narrow = std::make_shared<nn::Linear>(96, 256, true, &gen);  // rows of 96: q8_0 fallback
  auto odd = std::make_shared<nn::Linear>(256, 20, true, &gen);
  auto head = std::make_shared<nn::Linear>(256, 50, false, &gen);
  head->weight = head->register_parameter("weight", emb->weight);  // tied
  root->push_back(emb);
  root->push_back(mid);
  root->push_back(narrow);
  root->push_back(odd);
  root->push_back(head);
  const Tensor x = random_matrix(4, 256, 13);
  const Tensor before = mid->forward(x);
  nn::QuantizeOptions options;
  options.type = DType::q4_k;
  nn::QuantizeReport report = nn::quantize_modules(*root, options);
  EXPECT_EQ(report["0"], DType::q8_0);  // the embedding's type
  EXPECT_EQ(report["1"], DType::q4_k);
  EXPECT_EQ(report["2"], DType::q8_0);
  EXPECT_EQ(report["4"], DType::q8_0);  // the tied head takes the table's type
  auto qmid = std::dynamic_pointer_cast<nn::QuantizedLinear>(root->get_submodule("1"));
  ASSERT_NE(qmid, nullptr);
  EXPECT_EQ(qmid->bias.storage_offset(), mid->bias.storage_offset());
  EXPECT_TRUE(qmid->bias.shares_storage(mid->bias));
  EXPECT_LT(relative_error(qmid->forward(x), before), 0.05);
  auto qemb = std::dynamic_pointer_cast<nn::QuantizedEmbedding>(root->get_submodule("0"));
  auto qhead = std::dynamic_pointer_cast<nn::QuantizedLinear>(root->get_submodule("4"));
  ASSERT_NE(qemb, nullptr);
  ASSERT_NE(qhead, nullptr);
  EXPECT_TRUE(qhead->weight.shares_storage(qemb->weight));
  // the weights are frozen; the biases still train
  int trainable = 0;
  for (const auto& [name, p] : root->named_parameters()) trainable += p.requires_grad() ? 1 : 0;
  EXPECT_EQ(trainable, 3);
  EXPECT_NE(root->summary().find(
                "QuantizedLinear(in_features=256, out_features=96, bias=True, type=q4_k)"),
            std::string::npos)
      << root->summary();
  nn::set_f32_compute(*root, true);
  EXPECT_TRUE(qmid->f32_compute);
}
