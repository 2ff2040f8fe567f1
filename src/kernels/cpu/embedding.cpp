// CPU embedding: a checked row gather, and a backward split by vocabulary row: each thread
// owns a range of rows and adds the lookups that hit them in index order, so there are no
// races and the sums do not depend on the thread count.
#include <algorithm>
#include <cstring>

#include "kernels/embedding.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

constexpr int64_t kWorkGrain = 32768;

template <class T>
void embedding_forward(const Tensor& weight, const Tensor& indices, int64_t N, int64_t V, int64_t C,
                       Tensor& out) {
  const T* pw = weight.data<T>();
  const int64_t* pi = indices.data<int64_t>();
  T* po = out.data<T>();
  for (int64_t n = 0; n < N; ++n) {
    if (pi[n] < 0 || pi[n] >= V) {
      fail("embedding: index {} is out of range for a table of V = {} rows (valid: 0 to {})", pi[n],
           V, V - 1);
    }
  }
  parallel_for(0, N, std::max<int64_t>(1, kWorkGrain / std::max<int64_t>(C, 1)),
               [&](int64_t n0, int64_t n1) {
                 for (int64_t n = n0; n < n1; ++n) {
                   std::memcpy(po + n * C, pw + pi[n] * C, static_cast<size_t>(C) * sizeof(T));
                 }
               });
}

template <class T>
void embedding_backward(const Tensor& g, const Tensor& indices, int64_t N, int64_t V, int64_t C,
                        int64_t padding_idx, Tensor& dweight) {
  const T* pg = g.data<T>();
  const int64_t* pi = indices.data<int64_t>();
  T* pd = dweight.data<T>();
  // every range scans all N indices: worth it only when the row additions dominate
  int64_t grain = N * C >= kWorkGrain ? 1 : V;
  parallel_for(0, V, grain, [&](int64_t v0, int64_t v1) {
    for (int64_t n = 0; n < N; ++n) {
      int64_t v = pi[n];
      if (v < v0 || v >= v1 || v == padding_idx) continue;
      T* dr = pd + v * C;
      const T* gr = pg + n * C;
      for (int64_t c = 0; c < C; ++c) dr[c] += gr[c];
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(embedding_forward, cpu, f32, embedding_forward<float>);
MOXING_REGISTER_KERNEL(embedding_forward, cpu, f64, embedding_forward<double>);
MOXING_REGISTER_KERNEL(embedding_backward, cpu, f32, embedding_backward<float>);
MOXING_REGISTER_KERNEL(embedding_backward, cpu, f64, embedding_backward<double>);

}  // namespace moxing::kernels::cpu
