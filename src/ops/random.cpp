// Random tensor creation: reserve a range of the generator's stream, then fill.
#include "moxing/ops/random.h"

#include <cmath>

#include "kernels/random.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(uniform_fill, RandomFn)
MOXING_DEFINE_KERNEL(normal_fill, RandomFn)
}  // namespace kernels

namespace {
Generator& pick(Generator* gen) { return gen != nullptr ? *gen : default_generator(); }
}  // namespace

// The values are drawn on the cpu; another device gets a copy. On meta nothing is drawn.
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options, Generator* gen) {
  DType dtype = options.dtype();
  MOXING_CHECK(is_floating(dtype), "uniform: dtype must be floating, got {}", dtype_name(dtype));
  MOXING_CHECK(low <= high, "uniform: low {} is greater than high {}", low, high);
  Device device = options.device();
  if (device.type == DeviceType::meta) return empty(shape, options);
  if (device != kCPU) return uniform(shape, low, high, options.device(kCPU), gen).to(device);
  DType work = dtype == DType::f64 ? DType::f64 : DType::f32;
  Tensor out = empty(shape, TensorOptions(work).device(kCPU));
  Generator& g = pick(gen);
  uint64_t per = work == DType::f64 ? 2 : 4;
  uint64_t first = g.advance((static_cast<uint64_t>(out.numel()) + per - 1) / per);
  if (work == dtype) {
    kernels::uniform_fill().get(kCPU, work)(out, g, first, low, high);
    return out;
  }
  // bf16 / f16: keep only as many random bits as the target's significand, so that a draw
  // just below 1 does not round up to 1 (as torch does)
  kernels::uniform_fill().get(kCPU, work)(out, g, first, 0.0, 1.0);
  float steps = dtype == DType::bf16 ? 256.0f : 2048.0f;
  float* p = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    float u = std::floor(p[i] * steps) / steps;
    p[i] = static_cast<float>(low + (high - low) * static_cast<double>(u));
  }
  return to_dtype(out, dtype);
}

Tensor rand(const Shape& shape, TensorOptions options, Generator* gen) {
  return uniform(shape, 0.0, 1.0, options, gen);
}

Tensor normal(const Shape& shape, double mean, double std, TensorOptions options, Generator* gen) {
  DType dtype = options.dtype();
  MOXING_CHECK(is_floating(dtype), "normal: dtype must be floating, got {}", dtype_name(dtype));
  MOXING_CHECK(std >= 0, "normal: std must be >= 0, got {}", std);
  Device device = options.device();
  if (device.type == DeviceType::meta) return empty(shape, options);
  if (device != kCPU) return normal(shape, mean, std, options.device(kCPU), gen).to(device);
  DType work = dtype == DType::f64 ? DType::f64 : DType::f32;
  Tensor out = empty(shape, TensorOptions(work).device(kCPU));
  Generator& g = pick(gen);
  uint64_t first = g.advance((static_cast<uint64_t>(out.numel()) + 1) / 2);
  kernels::normal_fill().get(kCPU, work)(out, g, first, mean, std);
  return work == dtype ? out : to_dtype(out, dtype);
}

Tensor randn(const Shape& shape, TensorOptions options, Generator* gen) {
  return normal(shape, 0.0, 1.0, options, gen);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options,
               Generator* gen) {
  MOXING_CHECK(low < high, "randint: low {} must be less than high {}", low, high);
  Device device = options.device();
  if (device.type == DeviceType::meta) return empty(shape, options);
  if (device != kCPU) return randint(low, high, shape, options.device(kCPU), gen).to(device);
  Tensor u = uniform(shape, 0.0, 1.0, TensorOptions(DType::f64).device(kCPU), gen);
  const double* pu = u.data<double>();
  Tensor out = empty(shape, TensorOptions(DType::i64).device(kCPU));
  int64_t* po = out.data<int64_t>();
  double span = static_cast<double>(high - low);
  for (int64_t i = 0; i < out.numel(); ++i) {
    po[i] = low + std::min<int64_t>(static_cast<int64_t>(pu[i] * span), high - low - 1);
  }
  return options.dtype() == DType::i64 ? out : to_dtype(out, options.dtype());
}

Tensor randperm(int64_t n, Generator* gen) {
  MOXING_CHECK(n >= 0, "randperm: n must be >= 0, got {}", n);
  Device device = default_device();
  if (device.type == DeviceType::meta) return empty({n}, TensorOptions(DType::i64).device(device));
  Tensor out = arange(n, TensorOptions(DType::i64).device(kCPU));
  int64_t* p = out.data<int64_t>();
  Tensor u =
      uniform({std::max<int64_t>(n, 1)}, 0.0, 1.0, TensorOptions(DType::f64).device(kCPU), gen);
  const double* pu = u.data<double>();
  // Fisher-Yates driven by the stream
  for (int64_t i = n - 1; i > 0; --i) {
    auto j = std::min<int64_t>(static_cast<int64_t>(pu[i] * static_cast<double>(i + 1)), i);
    std::swap(p[i], p[j]);
  }
  return device == kCPU ? out : out.to(device);
}

}  // namespace moxing
