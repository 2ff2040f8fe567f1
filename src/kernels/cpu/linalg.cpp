// CPU matmul through OpenBLAS (sgemm / dgemm), one GEMM per batch matrix. Transposed views
// go to BLAS as CblasTrans with their leading dimension, never copied.
#include <cblas.h>

#include <climits>
#include <vector>

#include "kernels/linalg.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

void gemm(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
          float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}
void gemm(bool ta, bool tb, int M, int N, int K, const double* A, int lda, const double* B, int ldb,
          double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, 1.0, A, lda, B, ldb, 0.0, C, ldc);
}

int blas_int(int64_t v) {
  MOXING_CHECK(v <= INT_MAX, "matmul: dimension {} is too large for BLAS", v);
  return static_cast<int>(v);
}

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
  const int m = blas_int(M), n = blas_int(N), k = blas_int(K);
  const int lda = blas_int(la.ld), ldb = blas_int(lb.ld);
  auto one = [&](int64_t i) {
    gemm(la.trans, lb.trans, m, n, k, pa + oa[static_cast<size_t>(i)], lda,
         pb + ob[static_cast<size_t>(i)], ldb, po + i * M * N, n);
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

}  // namespace

MOXING_REGISTER_KERNEL(matmul_forward, cpu, f32, matmul<float>);
MOXING_REGISTER_KERNEL(matmul_forward, cpu, f64, matmul<double>);

}  // namespace moxing::kernels::cpu
