// CPU indexing kernels: reference loops over rows (selects) or columns (scatters), split
// across threads so that every output element is written by one thread in a fixed order.
#include <algorithm>

#include "kernels/indexing.h"
#include "moxing/core/parallel.h"

namespace moxing::kernels::cpu {
namespace {

constexpr int64_t kWork = 32768;  // elements per thread chunk, roughly

int64_t grain_for(int64_t per_item) {
  return std::max<int64_t>(1, kWork / std::max<int64_t>(per_item, 1));
}

// Offset, under `strides`, of column c: the coordinates of `shape` other than `dim`,
// numbered row-major.
int64_t column_offset(int64_t c, const Shape& shape, int64_t dim, const Shape& strides) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (d == dim) continue;
    int64_t n = shape[static_cast<size_t>(d)];
    off += (c % n) * strides[static_cast<size_t>(d)];
    c /= n;
  }
  return off;
}

int64_t index_range_check(const Tensor& index, int64_t size) {
  const int64_t* p = index.data<int64_t>();
  int64_t n = index.numel();
  for (int64_t k = 0; k < n; ++k) {
    if (p[k] < 0 || p[k] >= size) return k;
  }
  return -1;
}

// out[o,k,i] = x[o,index[k],i]; one output row of I elements per item
template <class T>
void index_select(const Tensor& x, const Tensor& index, int64_t O, int64_t N, int64_t I,
                  Tensor& out) {
  const T* px = x.data<T>();
  const int64_t* pidx = index.data<int64_t>();
  T* po = out.data<T>();
  int64_t K = index.numel();
  parallel_for(0, O * K, grain_for(I), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t o = r / K, k = r % K;
      const T* row = px + (o * N + pidx[k]) * I;
      std::copy(row, row + I, po + r * I);
    }
  });
}

// out[o,index[k],i] += src[o,k,i]. Threads own disjoint (o, i) columns and each walks k in
// order, so repeated indices sum in the same order for any thread count.
template <class T>
void index_add(Tensor& out, const Tensor& index, const Tensor& src, int64_t O, int64_t N,
               int64_t I) {
  T* po = out.data<T>();
  const int64_t* pidx = index.data<int64_t>();
  const T* ps = src.data<T>();
  int64_t K = index.numel();
  parallel_for(0, O * I, grain_for(K), [&](int64_t b, int64_t e) {
    int64_t c = b;
    while (c < e) {
      int64_t o = c / I, i0 = c % I;
      int64_t i1 = std::min(I, i0 + (e - c));
      for (int64_t k = 0; k < K; ++k) {
        T* dst = po + (o * N + pidx[k]) * I;
        const T* row = ps + (o * K + k) * I;
        for (int64_t i = i0; i < i1; ++i) dst[i] += row[i];
      }
      c += i1 - i0;
    }
  });
}

template <class T>
void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  const Shape& shape = index.shape();
  int64_t K = shape[static_cast<size_t>(dim)];
  if (K == 0 || index.numel() == 0) return;
  const T* px = x.data<T>();
  const int64_t* pidx = index.data<int64_t>();
  T* po = out.data<T>();
  const Shape& xst = x.strides();
  const Shape& ist = index.strides();
  int64_t x_step = xst[static_cast<size_t>(dim)];
  int64_t i_step = ist[static_cast<size_t>(dim)];
  parallel_for(0, index.numel() / K, grain_for(K), [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      int64_t xo = column_offset(c, shape, dim, xst);
      int64_t io = column_offset(c, shape, dim, ist);
      for (int64_t k = 0; k < K; ++k) {
        int64_t j = io + k * i_step;
        po[j] = px[xo + pidx[j] * x_step];
      }
    }
  });
}

// Each thread owns whole columns of out (a column of index maps into one column of out), and
// walks k in order: deterministic sums over repeated indices.
template <class T>
void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const Shape& shape = index.shape();
  int64_t K = shape[static_cast<size_t>(dim)];
  if (K == 0 || index.numel() == 0) return;
  T* po = out.data<T>();
  const int64_t* pidx = index.data<int64_t>();
  const T* ps = src.data<T>();
  const Shape& ost = out.strides();
  const Shape& ist = index.strides();
  const Shape& sst = src.strides();
  int64_t o_step = ost[static_cast<size_t>(dim)];
  int64_t i_step = ist[static_cast<size_t>(dim)];
  int64_t s_step = sst[static_cast<size_t>(dim)];
  parallel_for(0, index.numel() / K, grain_for(K), [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      int64_t oo = column_offset(c, shape, dim, ost);
      int64_t io = column_offset(c, shape, dim, ist);
      int64_t so = column_offset(c, shape, dim, sst);
      for (int64_t k = 0; k < K; ++k) {
        po[oo + pidx[io + k * i_step] * o_step] += ps[so + k * s_step];
      }
    }
  });
}

void one_hot(const Tensor& index, Tensor& out) {
  const int64_t* pidx = index.data<int64_t>();
  int64_t* po = out.data<int64_t>();
  int64_t M = index.numel();
  int64_t C = out.numel() / std::max<int64_t>(M, 1);
  parallel_for(0, M, grain_for(C), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) po[m * C + pidx[m]] = 1;
  });
}

template <class T>
void tri(const Tensor& x, int64_t B, int64_t R, int64_t C, int64_t diagonal, bool upper,
         Tensor& out) {
  const T* px = x.data<T>();
  T* po = out.data<T>();
  parallel_for(0, B * R, grain_for(C), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t i = r % R;
      const T* row = px + r * C;
      T* orow = po + r * C;
      for (int64_t j = 0; j < C; ++j) {
        bool keep = upper ? j - i >= diagonal : j - i <= diagonal;
        orow[j] = keep ? row[j] : T{};
      }
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(index_range_check, cpu, i64, index_range_check);
MOXING_REGISTER_KERNEL(one_hot_forward, cpu, i64, one_hot);

MOXING_REGISTER_KERNEL(index_select_forward, cpu, f32, index_select<float>);
MOXING_REGISTER_KERNEL(index_select_forward, cpu, f64, index_select<double>);
MOXING_REGISTER_KERNEL(index_select_forward, cpu, i64, index_select<int64_t>);
MOXING_REGISTER_KERNEL(index_select_forward, cpu, i32, index_select<int32_t>);
MOXING_REGISTER_KERNEL(index_select_forward, cpu, boolean, index_select<bool>);

MOXING_REGISTER_KERNEL(index_add_forward, cpu, f32, index_add<float>);
MOXING_REGISTER_KERNEL(index_add_forward, cpu, f64, index_add<double>);
MOXING_REGISTER_KERNEL(index_add_forward, cpu, i64, index_add<int64_t>);
MOXING_REGISTER_KERNEL(index_add_forward, cpu, i32, index_add<int32_t>);

MOXING_REGISTER_KERNEL(gather_forward, cpu, f32, gather<float>);
MOXING_REGISTER_KERNEL(gather_forward, cpu, f64, gather<double>);
MOXING_REGISTER_KERNEL(gather_forward, cpu, i64, gather<int64_t>);
MOXING_REGISTER_KERNEL(gather_forward, cpu, i32, gather<int32_t>);
MOXING_REGISTER_KERNEL(gather_forward, cpu, boolean, gather<bool>);

MOXING_REGISTER_KERNEL(scatter_add_forward, cpu, f32, scatter_add<float>);
MOXING_REGISTER_KERNEL(scatter_add_forward, cpu, f64, scatter_add<double>);
MOXING_REGISTER_KERNEL(scatter_add_forward, cpu, i64, scatter_add<int64_t>);
MOXING_REGISTER_KERNEL(scatter_add_forward, cpu, i32, scatter_add<int32_t>);

MOXING_REGISTER_KERNEL(tri_forward, cpu, f32, tri<float>);
MOXING_REGISTER_KERNEL(tri_forward, cpu, f64, tri<double>);
MOXING_REGISTER_KERNEL(tri_forward, cpu, i64, tri<int64_t>);
MOXING_REGISTER_KERNEL(tri_forward, cpu, i32, tri<int32_t>);
MOXING_REGISTER_KERNEL(tri_forward, cpu, boolean, tri<bool>);

}  // namespace moxing::kernels::cpu
