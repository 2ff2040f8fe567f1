// Matrix products. One differentiable primitive, batched_matmul (N-D x N-D with broadcast
// batch dims), dispatches to the GEMM kernel; matmul, bmm and linear are written with it.
#include "moxing/ops/linalg.h"

#include "kernels/linalg.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(matmul_forward, MatmulFn)
MOXING_DEFINE_KERNEL(addmm_forward, AddmmFn)
}  // namespace kernels

namespace {

void check_operands(const Tensor& a, const Tensor& b, const char* op) {
  MOXING_CHECK(a.defined() && b.defined(), "{}: undefined tensor argument", op);
  check_same_device(op, {a, b});
  MOXING_CHECK(a.dtype() == b.dtype(), "{}: dtypes {} and {} differ; convert one with .to()", op,
               dtype_name(a.dtype()), dtype_name(b.dtype()));
  MOXING_CHECK(is_floating(a.dtype()), "{}: needs floating-point tensors, got {}", op,
               dtype_name(a.dtype()));
}

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

// a (..., M, K) @ b (..., K, N) -> (..., M, N), batch dims broadcast; shapes already checked.
// dA = dC B^T and dB = A^T dC, each summed back over the batch dims its operand broadcast.
Tensor batched_matmul(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  // (B,T,K) @ (K,N) is one (B*T,K) @ (K,N) GEMM when a is contiguous
  if (a.dim() > 2 && b.dim() == 2 && a.is_contiguous()) {
    Shape out_shape = a.shape();
    out_shape.back() = N;
    const int64_t rows = shape_numel(Shape(a.shape().begin(), a.shape().end() - 1));
    return reshape(batched_matmul(reshape(a, {rows, K}), b), out_shape);
  }
  Shape batch = broadcast_shapes(batch_of(a), batch_of(b), "matmul");
  Shape sa = batch, sb = batch, so = batch;
  sa.insert(sa.end(), {M, K});
  sb.insert(sb.end(), {K, N});
  so.insert(so.end(), {M, N});
  Tensor out = empty(so, a.options());
  {
    // operands the GEMM cannot read as they are get a contiguous copy; broadcast is a view
    Tensor am = kernels::blas_layout(a).ok ? a.detach() : contiguous(a.detach());
    Tensor bm = kernels::blas_layout(b).ok ? b.detach() : contiguous(b.detach());
    kernels::matmul_forward().get(a.device(), a.dtype())(am.expand(sa), bm.expand(sb), out);
  }
  if (autograd::any_requires_grad({a, b})) {
    autograd::SavedTensor saved_a(b.requires_grad() ? a : Tensor(), "matmul");
    autograd::SavedTensor saved_b(a.requires_grad() ? b : Tensor(), "matmul");
    Shape shape_a = a.shape(), shape_b = b.shape();
    autograd::record(
        "matmul", {out}, {a, b},
        [saved_a, saved_b, shape_a, shape_b](const std::vector<Tensor>& g) {
          Tensor ga, gb;
          if (saved_b.defined()) {
            ga = sum_to(batched_matmul(g[0], saved_b.get().transpose(-2, -1)), shape_a);
          }
          if (saved_a.defined()) {
            gb = sum_to(batched_matmul(saved_a.get().transpose(-2, -1), g[0]), shape_b);
          }
          return std::vector<Tensor>{ga, gb};
        });
  }
  return out;
}

// x (N,C_in) w (C_out,C_in) b (C_out) -> y (N,C_out) = b + x w^T, the bias fused into the GEMM
// (addmm kernel). dx = dy w, dw = dy^T x, db = column sums of dy, each only when needed.
Tensor linear_2d(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor out = empty({x.size(0), w.size(0)}, x.options());
  {
    Tensor xm = kernels::blas_layout(x).ok ? x.detach() : contiguous(x.detach());
    Tensor wt = w.detach().t();
    if (!kernels::blas_layout(wt).ok) wt = contiguous(w.detach()).t();
    kernels::addmm_forward().get(x.device(), x.dtype())(b.detach(), xm, wt, out);
  }
  if (autograd::any_requires_grad({x, w, b})) {
    autograd::SavedTensor saved_x(w.requires_grad() ? x : Tensor(), "linear");
    autograd::SavedTensor saved_w(x.requires_grad() ? w : Tensor(), "linear");
    const bool need_b = b.requires_grad();
    autograd::record("linear", {out}, {x, w, b},
                     [saved_x, saved_w, need_b](const std::vector<Tensor>& g) {
                       Tensor gx, gw, gb;
                       if (saved_w.defined()) gx = batched_matmul(g[0], saved_w.get());
                       if (saved_x.defined()) gw = batched_matmul(g[0].t(), saved_x.get());
                       if (need_b) gb = sum(g[0], {0});
                       return std::vector<Tensor>{gx, gw, gb};
                     });
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_operands(a, b, "matmul");
  MOXING_CHECK(a.dim() >= 1 && b.dim() >= 1,
               "matmul: both arguments need at least 1 dim, got shapes {} and {}",
               shape_str(a.shape()), shape_str(b.shape()));
  const int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  MOXING_CHECK(ka == kb, "matmul: shapes {} and {} cannot be multiplied", shape_str(a.shape()),
               shape_str(b.shape()));
  if (a.dim() > 2 || b.dim() > 2) {
    Shape ba = a.dim() > 2 ? batch_of(a) : Shape{}, bb = b.dim() > 2 ? batch_of(b) : Shape{};
    size_t n = std::max(ba.size(), bb.size());
    for (size_t i = 0; i < n; ++i) {
      int64_t da = i < n - ba.size() ? 1 : ba[i - (n - ba.size())];
      int64_t db = i < n - bb.size() ? 1 : bb[i - (n - bb.size())];
      MOXING_CHECK(da == db || da == 1 || db == 1,
                   "matmul: shapes {} and {} cannot be multiplied (batch dims {} and {} do not "
                   "broadcast)",
                   shape_str(a.shape()), shape_str(b.shape()), shape_str(ba), shape_str(bb));
    }
  }
  // a 1-D operand becomes a matrix (a row on the left, a column on the right); the added
  // dim is removed from the result
  if (a.dim() == 1 && b.dim() == 1) {
    return reshape(batched_matmul(unsqueeze(a, 0), unsqueeze(b, 1)), {});
  }
  if (a.dim() == 1) return squeeze(batched_matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(batched_matmul(a, unsqueeze(b, 1)), -1);
  return batched_matmul(a, b);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_operands(a, b, "bmm");
  MOXING_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expected 3-D tensors, got shapes {} and {}",
               shape_str(a.shape()), shape_str(b.shape()));
  MOXING_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1),
               "bmm: shapes {} and {} cannot be multiplied", shape_str(a.shape()),
               shape_str(b.shape()));
  return batched_matmul(a, b);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_operands(x, w, "linear");
  check_same_device("linear", {x, w, b});
  MOXING_CHECK(w.dim() == 2, "linear: weight must be 2-D (C_out, C_in), got shape {}",
               shape_str(w.shape()));
  MOXING_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1),
               "linear: input shape {} does not match weight shape {} (C_in {} vs {})",
               shape_str(x.shape()), shape_str(w.shape()), x.dim() >= 1 ? x.size(-1) : 0,
               w.size(1));
  if (b.defined()) {
    MOXING_CHECK(b.dtype() == x.dtype(), "linear: bias dtype {} differs from input dtype {}",
                 dtype_name(b.dtype()), dtype_name(x.dtype()));
    MOXING_CHECK(b.dim() == 1 && b.size(0) == w.size(0),
                 "linear: bias shape {} does not match weight shape {} (expected [{}])",
                 shape_str(b.shape()), shape_str(w.shape()), w.size(0));
  }
  if (b.defined() && x.dim() >= 2 && kernels::addmm_forward().has(x.device().type, x.dtype())) {
    // (..., C_in) as rows (N, C_in): a view when x is contiguous
    Shape out_shape = x.shape();
    out_shape.back() = w.size(0);
    const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
    return reshape(linear_2d(reshape(x, {rows, x.size(-1)}), w, b), out_shape);
  }
  Tensor y = matmul(x, w.t());  // a transposed view: BLAS reads it as is
  return b.defined() ? add(y, b) : y;
}

}  // namespace moxing
