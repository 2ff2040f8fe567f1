// Devices through tensor creation: TensorOptions, the thread's default device (DeviceGuard),
// the meta device (shapes only: no bytes, no values, no random draws), the allocator registry
// and its counters, copies between devices, and the mixed-device error of ops.
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "moxing/core/allocator.h"
#include "moxing/moxing.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;

namespace {

// True when err is the error for reading a meta tensor's values in op.
bool is_meta_error(const std::string& err, const std::string& op) {
  return contains(err, op + ": a meta tensor has shapes only");
}

}  // namespace

TEST(TensorOptions, ConvertsFromDtypeAndDeviceAndChains) {
  TensorOptions none;
  EXPECT_EQ(none.dtype(), DType::f32);
  EXPECT_FALSE(none.device_opt().has_value());
  EXPECT_EQ(none.device(), kCPU);
  TensorOptions from_dtype = DType::i64;
  EXPECT_EQ(from_dtype.dtype(), DType::i64);
  EXPECT_FALSE(from_dtype.device_opt().has_value());
  TensorOptions from_device = kMeta;
  EXPECT_EQ(from_device.dtype(), DType::f32);
  EXPECT_EQ(from_device.device(), kMeta);
  TensorOptions both = TensorOptions(DType::f64).device(kMeta);
  EXPECT_EQ(both.dtype(), DType::f64);
  EXPECT_EQ(both.device(), kMeta);
  EXPECT_EQ(both.dtype(DType::bf16).dtype(), DType::bf16);
  EXPECT_EQ(both.dtype(), DType::f64) << "setters return a copy";
  Tensor x = zeros({2}, TensorOptions(DType::i32).device(kMeta));
  EXPECT_EQ(x.options().dtype(), DType::i32);
  EXPECT_EQ(x.options().device(), kMeta);
}

TEST(DeviceGuard, SetsAndRestoresThisThreadsDefault) {
  EXPECT_EQ(default_device(), kCPU);
  {
    DeviceGuard outer(kMeta);
    EXPECT_EQ(default_device(), kMeta);
    EXPECT_TRUE(zeros({2}).is_meta());
    {
      DeviceGuard inner(kCPU);
      EXPECT_EQ(default_device(), kCPU);
      EXPECT_FALSE(zeros({2}).is_meta());
    }
    EXPECT_EQ(default_device(), kMeta);
    Device other = kMeta;
    std::thread([&] { other = default_device(); }).join();
    EXPECT_EQ(other, kCPU) << "the default device is per thread";
    EXPECT_FALSE(zeros({2}, kCPU).is_meta()) << "an explicit device wins";
  }
  EXPECT_EQ(default_device(), kCPU);
}

TEST(Meta, EveryCreationFunctionHonoursTheDefaultDevice) {
  DeviceGuard guard(kMeta);
  std::vector<std::pair<const char*, Tensor>> made = {
      {"empty", empty({2, 3})},
      {"zeros", zeros({2, 3}, DType::i64)},
      {"ones", ones({2, 3})},
      {"full", full({2, 3}, 7.0, DType::f64)},
      {"scalar_tensor", scalar_tensor(1.5)},
      {"arange", arange(5)},
      {"arange3", arange(0.0, 1.0, 0.25, DType::f32)},
      {"linspace", linspace(0.0, 1.0, 4)},
      {"eye", eye(3, 4)},
      {"rand", rand({2, 2})},
      {"randn", randn({2, 2}, DType::f64)},
      {"randint", randint(0, 5, {3})},
      {"randperm", randperm(6)},
  };
  for (const auto& [name, t] : made) {
    EXPECT_TRUE(t.is_meta()) << name;
    EXPECT_EQ(t.impl()->storage->data, nullptr) << name;
  }
  EXPECT_EQ(made[1].second.dtype(), DType::i64);
  EXPECT_EQ(made[5].second.dtype(), DType::i64) << "arange stays i64 by default";
  EXPECT_EQ(made[5].second.shape(), Shape{5});
  EXPECT_EQ(made[6].second.shape(), Shape{4});
  EXPECT_EQ(made[8].second.shape(), (Shape{3, 4}));
  EXPECT_EQ(made[11].second.dtype(), DType::i64);
  // the functions that copy host values always make cpu tensors
  EXPECT_FALSE(from_vector<float>({1, 2}).is_meta());
  EXPECT_FALSE(tensor({1, 2}).is_meta());
}

TEST(Meta, LikeFunctionsKeepDtypeAndDevice) {
  Tensor m = empty({4, 2}, TensorOptions(DType::f64).device(kMeta));
  for (const Tensor& t : {zeros_like(m), ones_like(m), empty_like(m), full_like(m, 3.0)}) {
    EXPECT_TRUE(t.is_meta());
    EXPECT_EQ(t.dtype(), DType::f64);
    EXPECT_EQ(t.shape(), (Shape{4, 2}));
  }
  Tensor c = full_like(zeros({2}, DType::i32), 4.0);
  EXPECT_EQ(c.dtype(), DType::i32);
  EXPECT_EQ(c.to_vector<int32_t>(), std::vector<int32_t>({4, 4}));
}

TEST(Meta, ValuesCannotBeRead) {
  Tensor m = zeros({2, 3}, kMeta);
  EXPECT_TRUE(is_meta_error(error_of([&] { m.item<float>(); }), "item"));
  EXPECT_TRUE(is_meta_error(error_of([&] { m.to_vector<float>(); }), "to_vector"));
  EXPECT_TRUE(is_meta_error(error_of([&] { m.data<float>(); }), "data"));
  std::string printed = to_string(m);
  EXPECT_EQ(printed, "tensor(..., shape=[2, 3], dtype=f32, device=meta)");
  EXPECT_EQ(to_string(zeros({2})), "tensor([0.0000, 0.0000], shape=[2], dtype=f32)");
}

TEST(Meta, CopiesBetweenDevices) {
  Tensor c = from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor m = c.to(kMeta);
  EXPECT_TRUE(m.is_meta());
  EXPECT_EQ(m.shape(), c.shape());
  EXPECT_EQ(m.dtype(), DType::f32);
  Tensor m64 = c.to(kMeta, DType::f64);
  EXPECT_TRUE(m64.is_meta());
  EXPECT_EQ(m64.dtype(), DType::f64);
  EXPECT_TRUE(c.to(kCPU).shares_storage(c)) << "same device and dtype: no copy";
  EXPECT_EQ(c.to(kCPU, DType::f64).to_vector<double>(), std::vector<double>({1, 2, 3, 4}));
  EXPECT_EQ(error_of([&] { m.to(kCPU); }),
            "cannot copy the values of a meta tensor to cpu: it holds shapes only; materialize it "
            "first (load weights)");
  // copy_ into a meta tensor copies nothing; out of one is the same error
  Tensor dst = empty({2, 2}, kMeta);
  dst.copy_(c);
  EXPECT_TRUE(contains(error_of([&] {
                         zeros({2, 2}).copy_(m);
                       }),
                       "cannot copy the values of a meta"));
  // to() is differentiable: the gradient goes back to the input's device and dtype, so a cpu
  // leaf cannot take a gradient computed on meta
  Tensor x = zeros({2}, kMeta).requires_grad_();
  Tensor y = x.to(kMeta, DType::f64);
  EXPECT_TRUE(y.requires_grad());
  sum(y).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().is_meta());
  EXPECT_EQ(x.grad().dtype(), DType::f32);
  Tensor c_leaf = from_vector<float>({1, 2}).requires_grad_();
  EXPECT_TRUE(contains(error_of([&] { sum(c_leaf.to(kMeta)).backward(); }),
                       "cannot copy the values of a meta tensor to cpu"));
}

TEST(Meta, OpsComputeShapesAndAutogradRuns) {
  Tensor x = randn({4, 8}, kMeta).requires_grad_();
  Tensor w = randn({16, 8}, kMeta).requires_grad_();
  Tensor b = zeros({16}, kMeta).requires_grad_();
  Tensor h = gelu(linear(x, w, b));
  Tensor y = softmax(layer_norm(h, {16}), -1);
  EXPECT_TRUE(y.is_meta());
  EXPECT_EQ(y.shape(), (Shape{4, 16}));
  Tensor loss = mean(y);
  EXPECT_EQ(loss.shape(), Shape{});
  loss.backward();
  for (const Tensor& p : {x, w, b}) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_TRUE(p.grad().is_meta());
    EXPECT_EQ(p.grad().shape(), p.shape());
  }
}

TEST(Meta, OpsRefuseMixedDevices) {
  Tensor c = zeros({2, 3});
  Tensor m = zeros({2, 3}, kMeta);
  EXPECT_TRUE(
      contains(error_of([&] { add(c, m); }), "add: tensors on different devices (cpu and meta)"));
  EXPECT_TRUE(
      contains(error_of([&] { add(m, c); }), "add: tensors on different devices (meta and cpu)"));
  EXPECT_TRUE(contains(error_of([&] {
                         matmul(c, zeros({3, 2}, kMeta));
                       }),
                       "matmul: tensors on different devices"));
  EXPECT_TRUE(contains(error_of([&] { cat({c, m}, 0); }), "cat: tensors on different devices"));
  EXPECT_TRUE(contains(error_of([&] {
                         linear(c, zeros({4, 3}), zeros({4}, kMeta));
                       }),
                       "linear: tensors on different devices"));
  EXPECT_TRUE(contains(error_of([&] {
                         where(ones({2, 3}, DType::boolean), c, m);
                       }),
                       "where: tensors on different devices"));
  EXPECT_TRUE(
      contains(error_of([&] {
                 embedding(zeros({5, 2}), zeros({3}, TensorOptions(DType::i64).device(kMeta)));
               }),
               "embedding: tensors on different devices"));
  EXPECT_TRUE(contains(error_of([&] { c.add_(m); }), "tensors on different devices"));
}

TEST(Meta, RandomOpsDrawNothing) {
  Generator gen(7);
  rand({1000}, kMeta, &gen);
  randn({1000}, kMeta, &gen);
  uniform({10}, -1.0, 1.0, kMeta, &gen);
  randint(0, 3, {10}, TensorOptions(DType::i64).device(kMeta), &gen);
  dropout(ones({100}, kMeta), 0.5, true, &gen);
  EXPECT_EQ(gen.offset(), 0u);
  {
    DeviceGuard guard(kMeta);
    uint64_t before = default_generator().offset();
    randperm(50);
    rand({100});
    EXPECT_EQ(default_generator().offset(), before);
  }
}

TEST(Meta, InitFunctionsAreNoOps) {
  Generator gen(3);
  Tensor w = empty({64, 32}, kMeta);
  nn::init::kaiming_uniform_(w, std::sqrt(5.0), "fan_in", "leaky_relu", &gen);
  nn::init::xavier_normal_(w, 1.0, &gen);
  nn::init::trunc_normal_(w, 0.0, 0.02, -2.0, 2.0, &gen);
  nn::init::normal_(w, 0.0, 1.0, &gen);
  nn::init::constant_(w, 1.0);
  nn::init::zeros_(w);
  EXPECT_EQ(gen.offset(), 0u);
  EXPECT_TRUE(w.is_meta());
}

TEST(Allocator, CpuCountsBytesAndMetaAllocatesNone) {
  size_t before = allocator_bytes_in_use(DeviceType::cpu);
  uint64_t allocs_before = allocator_stats(DeviceType::cpu).allocations;
  {
    Tensor t = empty({1000}, DType::f64);
    EXPECT_EQ(allocator_bytes_in_use(DeviceType::cpu), before + 8000);
    EXPECT_EQ(allocator_stats(DeviceType::cpu).allocations, allocs_before + 1);
    EXPECT_GE(allocator_stats(DeviceType::cpu).peak_bytes, before + 8000);
  }
  EXPECT_EQ(allocator_bytes_in_use(DeviceType::cpu), before);

  uint64_t meta_before = allocator_stats(DeviceType::meta).allocations;
  uint64_t cpu_allocs = allocator_stats(DeviceType::cpu).allocations;
  {
    Tensor big = empty({1 << 20, 1 << 10}, kMeta);  // 4 GiB if it were real
    EXPECT_EQ(big.impl()->storage->nbytes, size_t{4} << 30);
    EXPECT_EQ(big.impl()->storage->data, nullptr);
    // counted as what a real run would hold, so a run on meta measures memory
    EXPECT_EQ(allocator_bytes_in_use(DeviceType::meta), size_t{4} << 30);
  }
  EXPECT_EQ(allocator_stats(DeviceType::meta).allocations, meta_before + 1);
  EXPECT_EQ(allocator_bytes_in_use(DeviceType::meta), 0u);
  EXPECT_EQ(allocator_stats(DeviceType::cpu).allocations, cpu_allocs);
  EXPECT_TRUE(contains(error_of([] {
                         empty({2}, Device{DeviceType::cuda, 0});
                       }),
                       "device cuda:0 is not available in this build"));
}

// Freed blocks are cached by size class (nearby sizes share a block), and the cache stays
// bounded by the program's peak use when the sizes keep changing (variable-length batches).
TEST(Allocator, CpuCacheSharesNearbySizesAndStaysBounded) {
  void* p = nullptr;
  {
    Tensor a = empty({987500});  // 3,950,000 bytes
    p = a.data<float>();
  }
  {
    Tensor b = empty({1025000});  // 4,100,000 bytes: the same size class
    EXPECT_EQ(static_cast<void*>(b.data<float>()), p);
  }
  // 300 sizes of 4 to 40 MB, each freed before the next: 6.6 GB went through the cache
  for (int64_t i = 0; i < 300; ++i) {
    Tensor t = empty({(int64_t{1} << 20) + i * 30000});
    (void)t;
  }
  EXPECT_LE(allocator_stats(DeviceType::cpu).cached_bytes, size_t{512} << 20);
}

// What the model loader relies on: layers constructed under DeviceGuard(kMeta) allocate no
// tensor memory and draw no random numbers.
TEST(Meta, LayersBuiltOnMetaAllocateNothing) {
  uint64_t cpu_allocs = allocator_stats(DeviceType::cpu).allocations;
  size_t cpu_bytes = allocator_bytes_in_use(DeviceType::cpu);
  uint64_t offset = default_generator().offset();
  {
    DeviceGuard guard(kMeta);
    nn::Linear fc(1024, 4096);
    nn::Embedding emb(50257, 768);
    nn::LayerNorm ln(std::vector<int64_t>{768});
    for (const auto& [name, p] : fc.named_parameters()) EXPECT_TRUE(p.is_meta()) << name;
    for (const auto& [name, p] : emb.named_parameters()) EXPECT_TRUE(p.is_meta()) << name;
    for (const auto& [name, p] : ln.named_parameters()) EXPECT_TRUE(p.is_meta()) << name;
    EXPECT_EQ(allocator_stats(DeviceType::cpu).allocations, cpu_allocs);
    EXPECT_EQ(allocator_bytes_in_use(DeviceType::cpu), cpu_bytes);
  }
  EXPECT_EQ(default_generator().offset(), offset);
}
