// CPU reductions over the middle axis of (O, R, I). Float sums accumulate in double so that
// f32 results match torch's (pairwise) sums closely, integer sums in i64 so that they stay
// exact; the loop over I stays unit-stride.
#include <type_traits>
#include <vector>

#include "kernels/reduction.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

template <class T>
void sum(const Tensor& x, int64_t O, int64_t R, int64_t I, Tensor& out) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  const T* px = x.data<T>();
  T* po = out.data<T>();
  if (I == 1) {
    parallel_for(0, O, std::max<int64_t>(1, 32768 / std::max<int64_t>(R, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t o = b; o < e; ++o) {
                     const T* row = px + o * R;
                     Acc acc[4] = {0, 0, 0, 0};
                     int64_t r = 0;
                     for (; r + 4 <= R; r += 4) {
                       acc[0] += row[r];
                       acc[1] += row[r + 1];
                       acc[2] += row[r + 2];
                       acc[3] += row[r + 3];
                     }
                     for (; r < R; ++r) acc[0] += row[r];
                     po[o] = static_cast<T>((acc[0] + acc[1]) + (acc[2] + acc[3]));
                   }
                 });
    return;
  }
  parallel_for(0, O * I, std::max<int64_t>(1, 32768 / std::max<int64_t>(R, 1)),
               [&](int64_t b, int64_t e) {
                 // chunks of the flattened (O, I) output; accumulate rows of I in an Acc buffer
                 std::vector<Acc> acc;
                 int64_t k = b;
                 while (k < e) {
                   int64_t o = k / I, i0 = k % I;
                   int64_t i1 = std::min(I, i0 + (e - k));
                   acc.assign(static_cast<size_t>(i1 - i0), Acc{0});
                   for (int64_t r = 0; r < R; ++r) {
                     const T* row = px + (o * R + r) * I;
                     for (int64_t i = i0; i < i1; ++i) acc[static_cast<size_t>(i - i0)] += row[i];
                   }
                   for (int64_t i = i0; i < i1; ++i)
                     po[o * I + i] = static_cast<T>(acc[static_cast<size_t>(i - i0)]);
                   k += i1 - i0;
                 }
               });
}

template <class T, bool kMax>
void extreme(const Tensor& x, int64_t O, int64_t R, int64_t I, Tensor& values, Tensor& indices) {
  const T* px = x.data<T>();
  T* pv = values.data<T>();
  int64_t* pi = indices.data<int64_t>();
  parallel_for(0, O * I, std::max<int64_t>(1, 32768 / std::max<int64_t>(R, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t k = b; k < e; ++k) {
                   int64_t o = k / I, i = k % I;
                   const T* p = px + o * R * I + i;
                   T best = p[0];
                   int64_t bi = 0;
                   for (int64_t r = 1; r < R; ++r) {
                     T v = p[r * I];
                     if (best != best) break;  // NaN wins, as in torch
                     if (v != v || (kMax ? v > best : v < best)) {
                       best = v;
                       bi = r;
                     }
                   }
                   pv[k] = best;
                   pi[k] = bi;
                 }
               });
}

}  // namespace

MOXING_REGISTER_KERNEL(sum_forward, cpu, f32, sum<float>);
MOXING_REGISTER_KERNEL(sum_forward, cpu, f64, sum<double>);
MOXING_REGISTER_KERNEL(sum_forward, cpu, i64, sum<int64_t>);
MOXING_REGISTER_KERNEL(max_forward, cpu, f32, (extreme<float, true>));
MOXING_REGISTER_KERNEL(max_forward, cpu, f64, (extreme<double, true>));
MOXING_REGISTER_KERNEL(max_forward, cpu, i64, (extreme<int64_t, true>));
MOXING_REGISTER_KERNEL(min_forward, cpu, f32, (extreme<float, false>));
MOXING_REGISTER_KERNEL(min_forward, cpu, f64, (extreme<double, false>));
MOXING_REGISTER_KERNEL(min_forward, cpu, i64, (extreme<int64_t, false>));

}  // namespace moxing::kernels::cpu
