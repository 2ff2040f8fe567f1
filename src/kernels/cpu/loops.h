// Strided loops over operands of one shape, split across threads by element index.
// Operand 0 is the output. Dims are coalesced first, so contiguous operands run as one flat
// loop that the compiler vectorizes; stride-0 (broadcast) operands stay cheap.
#pragma once

#include <array>
#include <vector>

#include "moxing/core/parallel.h"
#include "moxing/core/tensor.h"

namespace moxing::kernels::cpu {

inline constexpr int64_t kElementwiseGrain = 32768;

/// f(ptrs, byte_strides, n) is called on runs of n elements along the innermost dim.
template <size_t N, class F>
void for_each_strided(const std::array<const Tensor*, N>& ops, const F& f) {
  const Shape& shape = ops[0]->shape();
  int64_t total = shape_numel(shape);
  if (total == 0) return;
  // collect dims (outermost first) with byte strides, dropping size-1 dims
  std::vector<int64_t> sizes;
  std::vector<std::array<int64_t, N>> strides;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    std::array<int64_t, N> s{};
    for (size_t k = 0; k < N; ++k) {
      s[k] = ops[k]->strides()[d] * static_cast<int64_t>(dtype_size(ops[k]->dtype()));
    }
    // merge with the previous dim when it is an exact outer step of this one
    if (!sizes.empty()) {
      bool merge = true;
      for (size_t k = 0; k < N; ++k) merge = merge && strides.back()[k] == s[k] * shape[d];
      if (merge) {
        sizes.back() *= shape[d];
        strides.back() = s;
        continue;
      }
    }
    sizes.push_back(shape[d]);
    strides.push_back(s);
  }
  if (sizes.empty()) {
    sizes.push_back(1);
    strides.push_back(std::array<int64_t, N>{});
  }
  std::array<char*, N> base;
  for (size_t k = 0; k < N; ++k) base[k] = static_cast<char*>(ops[k]->raw_data());
  const size_t nd = sizes.size();
  const int64_t inner = sizes[nd - 1];
  parallel_for(0, total, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> idx(nd, 0);
    int64_t rem = begin;
    for (size_t d = nd; d-- > 0;) {
      idx[d] = rem % sizes[d];
      rem /= sizes[d];
    }
    std::array<char*, N> p;
    for (size_t k = 0; k < N; ++k) {
      int64_t off = 0;
      for (size_t d = 0; d < nd; ++d) off += idx[d] * strides[d][k];
      p[k] = base[k] + off;
    }
    std::array<int64_t, N> in_stride = strides[nd - 1];
    int64_t k = begin;
    while (k < end) {
      int64_t run = std::min(inner - idx[nd - 1], end - k);
      f(p.data(), in_stride.data(), run);
      k += run;
      if (k >= end) break;
      // advance to the start of the next inner row
      for (size_t j = 0; j < N; ++j) p[j] += in_stride[j] * run;
      idx[nd - 1] += run;
      for (size_t d = nd; d-- > 0;) {
        if (idx[d] < sizes[d]) break;
        for (size_t j = 0; j < N; ++j) p[j] -= strides[d][j] * sizes[d];
        idx[d] = 0;
        if (d == 0) break;
        ++idx[d - 1];
        for (size_t j = 0; j < N; ++j) p[j] += strides[d - 1][j];
      }
    }
  });
}

/// out[i] = op(x[i]) with x of type T and out of type R.
template <class T, class R, class Op>
void unary_loop(const Tensor& x, Tensor& out, const Op& op) {
  for_each_strided<2>({&out, &x}, [&](char* const* p, const int64_t* s, int64_t n) {
    R* o = reinterpret_cast<R*>(p[0]);
    const T* a = reinterpret_cast<const T*>(p[1]);
    if (s[0] == sizeof(R) && s[1] == sizeof(T)) {
      for (int64_t i = 0; i < n; ++i) o[i] = op(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        *reinterpret_cast<R*>(p[0] + i * s[0]) = op(*reinterpret_cast<const T*>(p[1] + i * s[1]));
      }
    }
  });
}

/// out[i] = op(a[i], b[i]); contiguous, scalar-broadcast and general strided runs.
template <class T, class R, class Op>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, const Op& op) {
  for_each_strided<3>({&out, &a, &b}, [&](char* const* p, const int64_t* s, int64_t n) {
    R* o = reinterpret_cast<R*>(p[0]);
    const T* x = reinterpret_cast<const T*>(p[1]);
    const T* y = reinterpret_cast<const T*>(p[2]);
    constexpr int64_t kt = sizeof(T), kr = sizeof(R);
    if (s[0] == kr && s[1] == kt && s[2] == kt) {
      for (int64_t i = 0; i < n; ++i) o[i] = op(x[i], y[i]);
    } else if (s[0] == kr && s[1] == kt && s[2] == 0) {
      const T yv = *y;
      for (int64_t i = 0; i < n; ++i) o[i] = op(x[i], yv);
    } else if (s[0] == kr && s[1] == 0 && s[2] == kt) {
      const T xv = *x;
      for (int64_t i = 0; i < n; ++i) o[i] = op(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        *reinterpret_cast<R*>(p[0] + i * s[0]) = op(*reinterpret_cast<const T*>(p[1] + i * s[1]),
                                                    *reinterpret_cast<const T*>(p[2] + i * s[2]));
      }
    }
  });
}

}  // namespace moxing::kernels::cpu
