// Reductions: bring the reduced dims together as the middle axis of (O, R, I), call the
// kernel, and record the backward.
#include "moxing/ops/reduction.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/reduction.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(sum_forward, ReduceFn)
MOXING_DEFINE_KERNEL(max_forward, ReduceIndexFn)
MOXING_DEFINE_KERNEL(min_forward, ReduceIndexFn)
}  // namespace kernels

namespace {

struct Plan {
  std::vector<bool> reduced;  // per input dim
  Shape out_keep;             // output shape with reduced dims as 1
  Shape out;                  // output shape as requested (keepdim or not)
  Tensor x3;                  // contiguous input laid out as (O, R, I)
  int64_t O = 1, R = 1, I = 1;
};

Plan plan_reduce(const Tensor& x, const Dims& dims, bool keepdim, const char* op) {
  Plan p;
  int64_t nd = x.dim();
  p.reduced.assign(static_cast<size_t>(nd), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, nd, op);
    if (nd == 0) continue;
    MOXING_CHECK(!p.reduced[static_cast<size_t>(w)] || dims.empty(), "{}: dim {} repeated", op, d);
    p.reduced[static_cast<size_t>(w)] = true;
  }
  for (int64_t d = 0; d < nd; ++d) {
    bool r = p.reduced[static_cast<size_t>(d)];
    p.out_keep.push_back(r ? 1 : x.shape()[static_cast<size_t>(d)]);
    if (!r || keepdim) p.out.push_back(r ? 1 : x.shape()[static_cast<size_t>(d)]);
  }
  // reduced dims one block [a, b] of a contiguous input: no copy needed
  int64_t a = -1, b = -1;
  bool block = true;
  for (int64_t d = 0; d < nd; ++d) {
    if (!p.reduced[static_cast<size_t>(d)]) continue;
    if (a < 0)
      a = d;
    else if (b != d - 1)
      block = false;
    b = d;
  }
  if (a < 0) {  // nothing reduced (0-d input)
    p.x3 = contiguous(x);
    p.R = 1;
    p.O = x.numel();
    return p;
  }
  if (block && x.is_contiguous()) {
    for (int64_t d = 0; d < nd; ++d) {
      int64_t s = x.shape()[static_cast<size_t>(d)];
      (d < a ? p.O : d <= b ? p.R : p.I) *= s;
    }
    p.x3 = x;
    return p;
  }
  Shape perm;
  for (int64_t d = 0; d < nd; ++d) {
    if (!p.reduced[static_cast<size_t>(d)]) {
      perm.push_back(d);
      p.O *= x.shape()[static_cast<size_t>(d)];
    }
  }
  for (int64_t d = 0; d < nd; ++d) {
    if (p.reduced[static_cast<size_t>(d)]) {
      perm.push_back(d);
      p.R *= x.shape()[static_cast<size_t>(d)];
    }
  }
  NoGradGuard no_grad;
  p.x3 = contiguous(permute(x, perm));
  return p;
}

}  // namespace

Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) {
  Plan p = plan_reduce(x, dims, keepdim, "sum");
  DType out_dtype = is_floating(x.dtype()) ? x.dtype() : DType::i64;
  Tensor src = p.x3.dtype() == out_dtype ? p.x3 : to_dtype(p.x3.detach(), out_dtype);
  Tensor out = empty(p.out, x.options().dtype(out_dtype));
  kernels::sum_forward().get(x.device(), out_dtype)(src, p.O, p.R, p.I, out);
  Shape in_shape = x.shape(), keep = p.out_keep;
  autograd::record("sum", {out}, {x}, [in_shape, keep](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{expand(reshape(g[0], keep), in_shape)};
  });
  return out;
}

Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  MOXING_CHECK(is_floating(x.dtype()), "mean: needs a floating-point tensor, got {}",
               dtype_name(x.dtype()));
  Tensor s = sum(x, dims, keepdim);
  int64_t n = x.numel() / std::max<int64_t>(s.numel(), 1);
  return div(s, static_cast<double>(x.numel() == 0 ? 0 : n));
}

// var = sum((x - mean)^2) / (N - correction)
Tensor var(const Tensor& x, const Dims& dims, int64_t correction, bool keepdim) {
  MOXING_CHECK(is_floating(x.dtype()), "var: needs a floating-point tensor, got {}",
               dtype_name(x.dtype()));
  Tensor m = mean(x, dims, true);
  Tensor d = sub(x, m);
  Tensor ss = sum(mul(d, d), dims, keepdim);
  int64_t n = x.numel() / std::max<int64_t>(ss.numel(), 1);
  return div(ss, static_cast<double>(std::max<int64_t>(n - correction, 0)));
}

Tensor std(const Tensor& x, const Dims& dims, int64_t correction, bool keepdim) {
  return sqrt(var(x, dims, correction, keepdim));
}

namespace {

// gradient of an extreme value: split evenly among the elements equal to it
Tensor extreme_backward(const Tensor& g, const Tensor& x, const Tensor& values_keep,
                        const Dims& dims) {
  Tensor mask = eq(x, values_keep).to(g.dtype());
  Tensor count = sum(mask, dims, true);
  return mul(div(mask, count), g);
}

Tensor amax_amin(const Tensor& x, const Dims& dims, bool keepdim, bool is_max) {
  const char* op = is_max ? "amax" : "amin";
  MOXING_CHECK(x.numel() > 0, "{}: cannot reduce an empty tensor", op);
  Plan p = plan_reduce(x, dims, keepdim, op);
  Tensor values = empty(p.out, x.options());
  Tensor idx = empty(p.out, x.options().dtype(DType::i64));
  auto& table = is_max ? kernels::max_forward() : kernels::min_forward();
  table.get(x.device(), x.dtype())(p.x3, p.O, p.R, p.I, values, idx);
  if (autograd::any_requires_grad({x})) {
    autograd::SavedTensor sx(x, op), sv(values, op);
    Shape keep = p.out_keep;
    Dims all_dims;
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (p.reduced[static_cast<size_t>(d)]) all_dims.push_back(d);
    }
    autograd::record(op, {values}, {x}, [sx, sv, keep, all_dims](const std::vector<Tensor>& g) {
      Tensor vk = reshape(sv.get(), keep);
      return std::vector<Tensor>{extreme_backward(reshape(g[0], keep), sx.get(), vk, all_dims)};
    });
  }
  return values;
}

ValuesIndices max_min_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* op = is_max ? "max" : "min";
  MOXING_CHECK(x.numel() > 0, "{}: cannot reduce an empty tensor", op);
  int64_t d = wrap_dim(dim, x.dim(), op);
  Plan p = plan_reduce(x, {d}, keepdim, op);
  ValuesIndices r{empty(p.out, x.options()), empty(p.out, x.options().dtype(DType::i64))};
  auto& table = is_max ? kernels::max_forward() : kernels::min_forward();
  table.get(x.device(), x.dtype())(p.x3, p.O, p.R, p.I, r.values, r.indices);
  if (autograd::any_requires_grad({x})) {
    // the gradient goes only to the returned index (even among ties), as torch.max(x, dim)
    autograd::SavedTensor si(r.indices, op);
    Shape keep = p.out_keep, positions(static_cast<size_t>(x.dim()), 1);
    if (x.dim() > 0) positions[static_cast<size_t>(d)] = x.shape()[static_cast<size_t>(d)];
    autograd::record(op, {r.values}, {x}, [si, keep, positions](const std::vector<Tensor>& g) {
      // one-hot of the index along dim: positions (1,..,n,..,1) == indices (.., 1, ..)
      Tensor pos =
          reshape(arange(shape_numel(positions), g[0].options().dtype(DType::i64)), positions);
      Tensor hit = eq(pos, reshape(si.get(), keep)).to(g[0].dtype());
      return std::vector<Tensor>{mul(hit, reshape(g[0], keep))};
    });
  }
  return r;
}

Tensor arg_extreme(const Tensor& x, std::optional<int64_t> dim, bool keepdim, bool is_max) {
  const char* op = is_max ? "argmax" : "argmin";
  MOXING_CHECK(x.numel() > 0, "{}: cannot reduce an empty tensor", op);
  NoGradGuard no_grad;
  if (!dim) {
    Tensor flat = reshape(x, {-1});
    Tensor r = max_min_dim(flat, 0, false, is_max).indices;
    if (keepdim) return reshape(r, Shape(static_cast<size_t>(x.dim()), 1));
    return r;
  }
  return max_min_dim(x, *dim, keepdim, is_max).indices;
}

}  // namespace

Tensor amax(const Tensor& x, const Dims& dims, bool keepdim) {
  return amax_amin(x, dims, keepdim, true);
}
Tensor amin(const Tensor& x, const Dims& dims, bool keepdim) {
  return amax_amin(x, dims, keepdim, false);
}
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim) {
  return max_min_dim(x, dim, keepdim, true);
}
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim) {
  return max_min_dim(x, dim, keepdim, false);
}
Tensor max(const Tensor& x) { return amax(x, {}, false); }
Tensor min(const Tensor& x) { return amin(x, {}, false); }
Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme(x, dim, keepdim, true);
}
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme(x, dim, keepdim, false);
}

// logsumexp = m + log(sum(exp(x - m))), m = max (detached: the result does not depend on m)
Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim) {
  Tensor m = amax(x.detach(), dims, true);
  // an all -inf slice would give nan from (-inf) - (-inf); use 0 there as torch does
  m = where(eq(abs(m), std::numeric_limits<double>::infinity()), zeros({}, m.options()), m);
  Tensor s = log(sum(exp(sub(x, m)), dims, true));
  Tensor out = add(s, m);
  if (keepdim) return out;
  Dims all = dims;
  if (all.empty()) {
    return reshape(out, {});
  }
  Shape target;
  std::vector<bool> red(static_cast<size_t>(x.dim()), false);
  for (int64_t d : dims) red[static_cast<size_t>(wrap_dim(d, x.dim(), "logsumexp"))] = true;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!red[static_cast<size_t>(d)]) target.push_back(x.shape()[static_cast<size_t>(d)]);
  }
  return reshape(out, target);
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  MOXING_CHECK(lead >= 0, "sum_to: cannot sum shape {} to {}", shape_str(x.shape()),
               shape_str(shape));
  Dims dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[static_cast<size_t>(d - lead)] == 1 &&
               x.shape()[static_cast<size_t>(d)] != 1) {
      dims.push_back(d);
    }
  }
  Tensor s = dims.empty() ? x : sum(x, dims, true);
  return reshape(s, shape);
}

Tensor Tensor::sum() const { return moxing::sum(*this); }
Tensor Tensor::mean() const { return moxing::mean(*this); }

}  // namespace moxing
