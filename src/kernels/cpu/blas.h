// The BLAS calls of the CPU kernels: C = alpha op(A) op(B) + beta C on row-major matrices, by
// OpenBLAS sgemm/dgemm, or sgemv/dgemv when C is one row or one column (decoding one token
// multiplies a single row: GEMV streams the matrix without GEMM's packing copies).
#pragma once

#include <cblas.h>

#include <climits>
#include <cstdint>

#include "moxing/core/error.h"

namespace moxing::kernels::cpu {

/// v as a BLAS int; an error naming what for dimensions beyond INT_MAX.
inline int blas_int(int64_t v, const char* what = "BLAS") {
  MOXING_CHECK(v <= INT_MAX, "{}: dimension {} is too large for BLAS", what, v);
  return static_cast<int>(v);
}

namespace detail {

template <class T>
void gemv(bool trans, int64_t rows, int64_t cols, T alpha, const T* A, int64_t lda, const T* x,
          int64_t incx, T beta, T* y, int64_t incy) {
  const CBLAS_TRANSPOSE t = trans ? CblasTrans : CblasNoTrans;
  if constexpr (sizeof(T) == 4) {
    cblas_sgemv(CblasRowMajor, t, blas_int(rows), blas_int(cols), alpha, A, blas_int(lda), x,
                blas_int(incx), beta, y, blas_int(incy));
  } else {
    cblas_dgemv(CblasRowMajor, t, blas_int(rows), blas_int(cols), alpha, A, blas_int(lda), x,
                blas_int(incx), beta, y, blas_int(incy));
  }
}

}  // namespace detail

/// C (M,N) = alpha op(A) (M,K) op(B) (K,N) + beta C; ta/tb: A/B are stored transposed, with
/// leading dimensions lda/ldb/ldc (row-major). T is float or double.
template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 1 && N > 1) {
    // c = op(B)^T a: B stored (K,N) is transposed by sgemv, B stored (N,K) is not
    const int64_t inca = ta ? lda : 1;
    if (tb) {
      detail::gemv(false, N, K, alpha, B, ldb, A, inca, beta, C, 1);
    } else {
      detail::gemv(true, K, N, alpha, B, ldb, A, inca, beta, C, 1);
    }
    return;
  }
  if (N == 1 && M > 1) {
    // c = op(A) b, written down column 0 of C
    const int64_t incb = tb ? 1 : ldb;
    if (ta) {
      detail::gemv(true, K, M, alpha, A, lda, B, incb, beta, C, ldc);
    } else {
      detail::gemv(false, M, K, alpha, A, lda, B, incb, beta, C, ldc);
    }
    return;
  }
  const CBLAS_TRANSPOSE oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
  if constexpr (sizeof(T) == 4) {
    cblas_sgemm(CblasRowMajor, oa, ob, blas_int(M), blas_int(N), blas_int(K), alpha, A,
                blas_int(lda), B, blas_int(ldb), beta, C, blas_int(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, oa, ob, blas_int(M), blas_int(N), blas_int(K), alpha, A,
                blas_int(lda), B, blas_int(ldb), beta, C, blas_int(ldc));
  }
}

}  // namespace moxing::kernels::cpu
