// Indexing ops: argument checks (indices checked against the dim size before any kernel
// reads through them), output shapes, dispatch, and backward formulas written with the
// family's own ops (a select's backward is a scatter and the other way round).
#include "moxing/ops/indexing.h"

#include <optional>

#include "kernels/indexing.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(index_range_check, IndexRangeCheckFn)
MOXING_DEFINE_KERNEL(index_select_forward, IndexSelectFn)
MOXING_DEFINE_KERNEL(index_add_forward, IndexAddFn)
MOXING_DEFINE_KERNEL(gather_forward, GatherFn)
MOXING_DEFINE_KERNEL(scatter_add_forward, ScatterAddFn)
MOXING_DEFINE_KERNEL(one_hot_forward, OneHotFn)
MOXING_DEFINE_KERNEL(tri_forward, TriFn)
}  // namespace kernels

using autograd::SavedTensor;

namespace {

size_t at(int64_t d) { return static_cast<size_t>(d); }

// index as a contiguous i64 tensor (index itself when it already is one).
Tensor index_as_i64(const Tensor& index, const char* op) {
  MOXING_CHECK(index.defined(), "{}: undefined index tensor", op);
  MOXING_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32,
               "{}: index must be i64 or i32, got {}", op, dtype_name(index.dtype()));
  return contiguous(to_dtype(index.detach(), DType::i64));
}

// The first value of idx (contiguous i64) outside [0, size), if any.
std::optional<int64_t> first_out_of_range(const Tensor& idx, int64_t size) {
  int64_t pos = kernels::index_range_check().get(idx.device(), DType::i64)(idx, size);
  if (pos < 0) return std::nullopt;
  return reshape(idx, {-1}).select(0, pos).item<int64_t>();
}

// index as contiguous i64 whose values are all valid positions along dim d of size `size`.
// The range check reads the index values: on meta it is skipped, as torch's meta kernels do.
Tensor checked_index(const Tensor& index, const char* op, int64_t d, int64_t size) {
  Tensor idx = index_as_i64(index, op);
  if (idx.is_meta()) return idx;
  if (auto bad = first_out_of_range(idx, size)) {
    fail("{}: index {} is out of range for dim {} of size {}", op, *bad, d, size);
  }
  return idx;
}

void check_operand(const Tensor& x, const char* op, const char* what) {
  MOXING_CHECK(x.defined(), "{}: undefined {} tensor", op, what);
  MOXING_CHECK(x.dim() >= 1, "{}: {} must have at least 1 dim, got a 0-d tensor", op, what);
}

// (O, N, I) view sizes of shape around dim d: O before, N at, I after.
void outer_inner(const Shape& shape, int64_t d, int64_t& O, int64_t& I) {
  O = 1;
  I = 1;
  for (int64_t k = 0; k < static_cast<int64_t>(shape.size()); ++k) {
    if (k < d) O *= shape[at(k)];
    if (k > d) I *= shape[at(k)];
  }
}

}  // namespace

// ---- cat / stack

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  MOXING_CHECK(!xs.empty(), "cat: expects a non-empty list of tensors");
  for (size_t i = 0; i < xs.size(); ++i) {
    MOXING_CHECK(xs[i].defined(), "cat: entry {} is an undefined tensor", i);
  }
  check_same_device("cat", xs);
  const Tensor& first = xs[0];
  MOXING_CHECK(first.dim() >= 1, "cat: entry 0 is a 0-d tensor and cannot be concatenated");
  int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    MOXING_CHECK(x.dtype() == first.dtype(), "cat: entry {} has dtype {} but entry 0 has {}", i,
                 dtype_name(x.dtype()), dtype_name(first.dtype()));
    bool same = x.dim() == first.dim();
    for (int64_t k = 0; same && k < x.dim(); ++k) {
      same = k == d || x.shape()[at(k)] == shape[at(k)];
    }
    MOXING_CHECK(same, "cat: shapes {} (entry 0) and {} (entry {}) must match except in dim {}",
                 shape_str(first.shape()), shape_str(x.shape()), i, d);
    sizes.push_back(x.shape()[at(d)]);
    total += sizes.back();
  }
  shape[at(d)] = total;
  Tensor out = empty(shape, first.options());
  int64_t offset = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    copy_into(narrow(out, d, offset, sizes[i]), xs[i]);
    offset += sizes[i];
  }
  // each input's gradient is its slice of the output gradient
  autograd::record("cat", {out}, xs, [d, sizes](const std::vector<Tensor>& g) {
    std::vector<Tensor> grads;
    int64_t start = 0;
    for (int64_t n : sizes) {
      grads.push_back(narrow(g[0], d, start, n));
      start += n;
    }
    return grads;
  });
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  MOXING_CHECK(!xs.empty(), "stack: expects a non-empty list of tensors");
  for (size_t i = 0; i < xs.size(); ++i) {
    MOXING_CHECK(xs[i].defined(), "stack: entry {} is an undefined tensor", i);
    MOXING_CHECK(xs[i].dtype() == xs[0].dtype(), "stack: entry {} has dtype {} but entry 0 has {}",
                 i, dtype_name(xs[i].dtype()), dtype_name(xs[0].dtype()));
    MOXING_CHECK(xs[i].shape() == xs[0].shape(),
                 "stack: expects tensors of one shape, got {} (entry 0) and {} (entry {})",
                 shape_str(xs[0].shape()), shape_str(xs[i].shape()), i);
  }
  int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(xs.size());
  for (const Tensor& x : xs) parts.push_back(unsqueeze(x, d));
  return cat(parts, d);
}

// ---- index_select / index_add

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_operand(x, "index_select", "input");
  int64_t d = wrap_dim(dim, x.dim(), "index_select");
  MOXING_CHECK(index.defined() && index.dim() <= 1, "index_select: index must be 1-D, got shape {}",
               index.defined() ? shape_str(index.shape()) : "undefined");
  check_same_device("index_select", {x, index});
  Tensor idx = checked_index(index, "index_select", d, x.shape()[at(d)]);
  int64_t O, I, N = x.shape()[at(d)];
  outer_inner(x.shape(), d, O, I);
  Shape shape = x.shape();
  shape[at(d)] = idx.numel();
  Tensor out = empty(shape, x.options());
  kernels::index_select_forward().get(x.device(), x.dtype())(contiguous(x.detach()), idx, O, N, I,
                                                             out);
  if (autograd::any_requires_grad({x})) {
    SavedTensor si(idx, "index_select");
    Shape in_shape = x.shape();
    // rows picked more than once accumulate their gradients
    autograd::record("index_select", {out}, {x}, [si, in_shape, d](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{index_add(zeros(in_shape, g[0].options()), d, si.get(), g[0])};
    });
  }
  return out;
}

Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  check_operand(self, "index_add", "self");
  MOXING_CHECK(src.defined(), "index_add: undefined src tensor");
  int64_t d = wrap_dim(dim, self.dim(), "index_add");
  MOXING_CHECK(index.defined() && index.dim() <= 1, "index_add: index must be 1-D, got shape {}",
               index.defined() ? shape_str(index.shape()) : "undefined");
  MOXING_CHECK(self.dtype() == src.dtype(), "index_add: self dtype {} and src dtype {} differ",
               dtype_name(self.dtype()), dtype_name(src.dtype()));
  check_same_device("index_add", {self, index, src});
  Tensor idx = checked_index(index, "index_add", d, self.shape()[at(d)]);
  Shape src_shape = self.shape();
  src_shape[at(d)] = idx.numel();
  MOXING_CHECK(src.shape() == src_shape,
               "index_add: src of shape {} does not fit self of shape {} with {} indices along "
               "dim {} (expected {})",
               shape_str(src.shape()), shape_str(self.shape()), idx.numel(), d,
               shape_str(src_shape));
  int64_t O, I, N = self.shape()[at(d)];
  outer_inner(self.shape(), d, O, I);
  Tensor out = clone(self.detach());
  kernels::index_add_forward().get(self.device(), self.dtype())(out, idx, contiguous(src.detach()),
                                                                O, N, I);
  if (autograd::any_requires_grad({self, src})) {
    SavedTensor si(idx, "index_add");
    bool need_src = src.requires_grad();
    autograd::record(
        "index_add", {out}, {self, src}, [si, d, need_src](const std::vector<Tensor>& g) {
          return std::vector<Tensor>{g[0], need_src ? index_select(g[0], d, si.get()) : Tensor()};
        });
  }
  return out;
}

// ---- gather / scatter_add

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_operand(x, "gather", "input");
  int64_t d = wrap_dim(dim, x.dim(), "gather");
  MOXING_CHECK(index.defined() && index.dim() == x.dim(),
               "gather: index of shape {} must have as many dims as the input of shape {}",
               index.defined() ? shape_str(index.shape()) : "undefined", shape_str(x.shape()));
  for (int64_t k = 0; k < x.dim(); ++k) {
    MOXING_CHECK(k == d || index.shape()[at(k)] <= x.shape()[at(k)],
                 "gather: index of shape {} is larger than the input of shape {} in dim {}",
                 shape_str(index.shape()), shape_str(x.shape()), k);
  }
  check_same_device("gather", {x, index});
  Tensor idx = checked_index(index, "gather", d, x.shape()[at(d)]);
  Tensor out = empty(idx.shape(), x.options());
  kernels::gather_forward().get(x.device(), x.dtype())(x, d, idx, out);
  if (autograd::any_requires_grad({x})) {
    SavedTensor si(idx, "gather");
    Shape in_shape = x.shape();
    autograd::record("gather", {out}, {x}, [si, in_shape, d](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{scatter_add(zeros(in_shape, g[0].options()), d, si.get(), g[0])};
    });
  }
  return out;
}

Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  check_operand(self, "scatter_add", "self");
  MOXING_CHECK(src.defined() && index.defined(), "scatter_add: undefined index or src tensor");
  int64_t d = wrap_dim(dim, self.dim(), "scatter_add");
  MOXING_CHECK(index.dim() == self.dim() && src.dim() == self.dim(),
               "scatter_add: self {}, index {} and src {} must have the same number of dims",
               shape_str(self.shape()), shape_str(index.shape()), shape_str(src.shape()));
  MOXING_CHECK(self.dtype() == src.dtype(), "scatter_add: self dtype {} and src dtype {} differ",
               dtype_name(self.dtype()), dtype_name(src.dtype()));
  for (int64_t k = 0; k < self.dim(); ++k) {
    int64_t n = index.shape()[at(k)];
    MOXING_CHECK(n <= src.shape()[at(k)] && (k == d || n <= self.shape()[at(k)]),
                 "scatter_add: index of shape {} is larger than src {} or self {} in dim {}",
                 shape_str(index.shape()), shape_str(src.shape()), shape_str(self.shape()), k);
  }
  check_same_device("scatter_add", {self, index, src});
  Tensor idx = checked_index(index, "scatter_add", d, self.shape()[at(d)]);
  Tensor out = clone(self.detach());
  kernels::scatter_add_forward().get(self.device(), self.dtype())(out, d, idx, src);
  if (autograd::any_requires_grad({self, src})) {
    SavedTensor si(idx, "scatter_add");
    Shape src_shape = src.shape();
    bool need_src = src.requires_grad();
    autograd::record("scatter_add", {out}, {self, src},
                     [si, d, src_shape, need_src](const std::vector<Tensor>& g) {
                       if (!need_src) return std::vector<Tensor>{g[0], Tensor()};
                       Tensor idx = si.get();
                       Tensor gs = gather(g[0], d, idx);
                       if (idx.shape() != src_shape) {
                         // src elements past index's extent were not scattered: zero
                         // gradient (a raw copy: this padding is first-order only)
                         Tensor padded = zeros(src_shape, gs.options());
                         Tensor region = padded;
                         for (int64_t k = 0; k < idx.dim(); ++k) {
                           region = narrow(region, k, 0, idx.shape()[at(k)]);
                         }
                         copy_into(region, gs);
                         gs = padded;
                       }
                       return std::vector<Tensor>{g[0], gs};
                     });
  }
  return out;
}

// ---- one_hot

Tensor one_hot(const Tensor& index, int64_t num_classes) {
  Tensor idx = index_as_i64(index, "one_hot");
  check_has_values("one_hot", idx);
  MOXING_CHECK(num_classes >= -1, "one_hot: num_classes must be -1 or at least 0, got {}",
               num_classes);
  if (num_classes == -1) {
    MOXING_CHECK(idx.numel() > 0,
                 "one_hot: cannot infer num_classes from an empty index; pass num_classes");
    num_classes = max(idx).item<int64_t>() + 1;
  }
  if (auto bad = first_out_of_range(idx, num_classes)) {
    fail("one_hot: class index {} is out of range for {} classes", *bad, num_classes);
  }
  Shape shape = idx.shape();
  shape.push_back(num_classes);
  Tensor out = zeros(shape, idx.options().dtype(DType::i64));
  if (idx.numel() > 0 && num_classes > 0) {
    kernels::one_hot_forward().get(idx.device(), DType::i64)(reshape(idx, {-1}), out);
  }
  return out;
}

// ---- tril / triu

namespace {

// The shared body of tril and triu: x (..., R, C), keep j - i <= diagonal (or >= for upper).
Tensor tri(const Tensor& x, int64_t diagonal, bool upper) {
  const char* op = upper ? "triu" : "tril";
  MOXING_CHECK(x.defined(), "{}: undefined tensor", op);
  MOXING_CHECK(x.dim() >= 2, "{}: needs a tensor with at least 2 dims, got shape {}", op,
               shape_str(x.shape()));
  int64_t R = x.size(-2), C = x.size(-1);
  Tensor out = empty(x.shape(), x.options());
  if (x.numel() > 0) {
    kernels::tri_forward().get(x.device(), x.dtype())(contiguous(x.detach()), x.numel() / (R * C),
                                                      R, C, diagonal, upper, out);
  }
  // the mask is fixed, so the gradient is the same mask applied to g
  autograd::record(op, {out}, {x}, [diagonal, upper](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{tri(g[0], diagonal, upper)};
  });
  return out;
}

}  // namespace

Tensor tril(const Tensor& x, int64_t diagonal) { return tri(x, diagonal, false); }
Tensor triu(const Tensor& x, int64_t diagonal) { return tri(x, diagonal, true); }

}  // namespace moxing
