// CPU matmul and addmm through OpenBLAS (sgemm / dgemm), one GEMM per batch matrix. Transposed
// views go to BLAS as CblasTrans with their leading dimension, never copied.
#include <algorithm>
#include <climits>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/linalg.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

// element offset of every batch matrix of t (..., R, C), batch dims given by out's shape
std::vector<int64_t> batch_offsets(const Tensor& t, int64_t batch_dims, int64_t nbatch) {
  std::vector<int64_t> off(static_cast<size_t>(nbatch), 0);
  for (int64_t i = 0; i < nbatch; ++i) {
    int64_t rest = i, o = 0;
    for (int64_t d = batch_dims - 1; d >= 0; --d) {
      int64_t n = t.size(d);
      o += (rest % n) * t.stride(d);
      rest /= n;
    }
    off[static_cast<size_t>(i)] = o;
  }
  return off;
}

// a (..., M, K) @ b (..., K, N) -> out (..., M, N)
template <class T>
void matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t nd = out.dim(), batch_dims = nd - 2;
  const int64_t M = out.size(nd - 2), N = out.size(nd - 1), K = a.size(nd - 1);
  T* po = out.data<T>();
  if (out.numel() == 0) return;
  if (K == 0) {
    std::fill(po, po + out.numel(), T(0));
    return;
  }
  const BlasLayout la = blas_layout(a), lb = blas_layout(b);
  MOXING_CHECK(la.ok && lb.ok, "matmul: operand layout not supported by BLAS");
  const int64_t nbatch = out.numel() / (M * N);
  const std::vector<int64_t> oa = batch_offsets(a, batch_dims, nbatch);
  const std::vector<int64_t> ob = batch_offsets(b, batch_dims, nbatch);
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  auto one = [&](int64_t i) {
    gemm<T>(la.trans, lb.trans, M, N, K, T(1), pa + oa[static_cast<size_t>(i)], la.ld,
            pb + ob[static_cast<size_t>(i)], lb.ld, T(0), po + i * M * N, N);
  };
  // Small matrices, or several per thread: one single-threaded GEMM per thread at a time
  // (OpenBLAS runs single-threaded inside a parallel region). Otherwise OpenBLAS threads each.
  if (nbatch > 1 && (M * N * K <= (int64_t{1} << 18) || nbatch >= 4 * num_threads())) {
    parallel_for(0, nbatch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < nbatch; ++i) one(i);
  }
}

// out (M,N) = bias (N) + a (M,K) @ b (K,N): every row of out starts as the bias and the GEMM
// adds into it (beta = 1), so the bias costs one write of out instead of another pass that
// reads and writes it.
template <class T>
void addmm(const Tensor& bias, const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t M = out.size(0), N = out.size(1), K = a.size(1);
  T* po = out.data<T>();
  if (out.numel() == 0) return;
  const T* pbias = bias.data<T>();
  const int64_t sb = bias.stride(0);
  parallel_for(0, M, std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)),
               [&](int64_t m0, int64_t m1) {
                 for (int64_t m = m0; m < m1; ++m) {
                   T* row = po + m * N;
                   if (sb == 1) {
                     std::copy(pbias, pbias + N, row);  // a memcpy, where the strided loop is not
                   } else {
                     for (int64_t n = 0; n < N; ++n) row[n] = pbias[n * sb];
                   }
                 }
               });
  if (K == 0) return;
  const BlasLayout la = blas_layout(a), lb = blas_layout(b);
  MOXING_CHECK(la.ok && lb.ok, "addmm: operand layout not supported by BLAS");
  gemm<T>(la.trans, lb.trans, M, N, K, T(1), a.data<T>(), la.ld, b.data<T>(), lb.ld, T(1), po, N);
}

}  // namespace

MOXING_REGISTER_KERNEL(addmm_forward, cpu, f32, addmm<float>);
MOXING_REGISTER_KERNEL(addmm_forward, cpu, f64, addmm<double>);
MOXING_REGISTER_KERNEL(matmul_forward, cpu, f32, matmul<float>);
MOXING_REGISTER_KERNEL(matmul_forward, cpu, f64, matmul<double>);

}  // namespace moxing::kernels::cpu
