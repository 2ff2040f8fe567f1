// CPU random fills. Uniform uses one 32-bit word per f32 element (two for f64); normal uses
// Box-Muller on a block's words, two values per pair.
#include <cmath>

#include "kernels/random.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

template <class T>
void uniform(Tensor& out, const Generator& gen, uint64_t first, double a, double b) {
  T* p = out.data<T>();
  int64_t n = out.numel();
  // f32: 4 values per block; f64: 2 values per block
  constexpr int64_t kPer = sizeof(T) == 4 ? 4 : 2;
  int64_t blocks = (n + kPer - 1) / kPer;
  parallel_for(0, blocks, 4096, [&](int64_t bb, int64_t be) {
    for (int64_t blk = bb; blk < be; ++blk) {
      auto w = gen.block(first + static_cast<uint64_t>(blk));
      for (int64_t j = 0; j < kPer; ++j) {
        int64_t i = blk * kPer + j;
        if (i >= n) break;
        double u = kPer == 4 ? static_cast<double>(u32_to_unit_float(w[static_cast<size_t>(j)]))
                             : u64_to_unit_double(w[static_cast<size_t>(2 * j)],
                                                  w[static_cast<size_t>(2 * j + 1)]);
        p[i] = static_cast<T>(a + (b - a) * u);
      }
    }
  });
}

template <class T>
void normal(Tensor& out, const Generator& gen, uint64_t first, double mean, double std) {
  T* p = out.data<T>();
  int64_t n = out.numel();
  // each block gives two normals (from two uniform doubles)
  int64_t blocks = (n + 1) / 2;
  parallel_for(0, blocks, 4096, [&](int64_t bb, int64_t be) {
    for (int64_t blk = bb; blk < be; ++blk) {
      auto w = gen.block(first + static_cast<uint64_t>(blk));
      double u1 = u64_to_unit_double(w[0], w[1]);
      double u2 = u64_to_unit_double(w[2], w[3]);
      double r = std::sqrt(-2.0 * std::log(1.0 - u1));  // 1 - u1 in (0, 1]
      double th = 2.0 * M_PI * u2;
      int64_t i = blk * 2;
      p[i] = static_cast<T>(mean + std * r * std::cos(th));
      if (i + 1 < n) p[i + 1] = static_cast<T>(mean + std * r * std::sin(th));
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(uniform_fill, cpu, f32, uniform<float>);
MOXING_REGISTER_KERNEL(uniform_fill, cpu, f64, uniform<double>);
MOXING_REGISTER_KERNEL(normal_fill, cpu, f32, normal<float>);
MOXING_REGISTER_KERNEL(normal_fill, cpu, f64, normal<double>);

}  // namespace moxing::kernels::cpu
