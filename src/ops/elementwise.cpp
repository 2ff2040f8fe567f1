// Elementwise ops: broadcasting, dtype checks, dispatch, and each backward formula.
#include "moxing/ops/elementwise.h"

#include <cmath>
#include <limits>

#include "kernels/elementwise.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(add_forward, BinaryFn)
MOXING_DEFINE_KERNEL(sub_forward, BinaryFn)
MOXING_DEFINE_KERNEL(mul_forward, BinaryFn)
MOXING_DEFINE_KERNEL(div_forward, BinaryFn)
MOXING_DEFINE_KERNEL(pow_forward, BinaryFn)
MOXING_DEFINE_KERNEL(maximum_forward, BinaryFn)
MOXING_DEFINE_KERNEL(minimum_forward, BinaryFn)
MOXING_DEFINE_KERNEL(eq_forward, BinaryFn)
MOXING_DEFINE_KERNEL(ne_forward, BinaryFn)
MOXING_DEFINE_KERNEL(lt_forward, BinaryFn)
MOXING_DEFINE_KERNEL(le_forward, BinaryFn)
MOXING_DEFINE_KERNEL(gt_forward, BinaryFn)
MOXING_DEFINE_KERNEL(ge_forward, BinaryFn)
MOXING_DEFINE_KERNEL(gelu_backward, BinaryFn)
MOXING_DEFINE_KERNEL(leaky_relu_backward, BinaryFn)
MOXING_DEFINE_KERNEL(silu_backward, BinaryFn)
MOXING_DEFINE_KERNEL(where_forward, WhereFn)
MOXING_DEFINE_KERNEL(neg_forward, UnaryFn)
MOXING_DEFINE_KERNEL(abs_forward, UnaryFn)
MOXING_DEFINE_KERNEL(clamp_forward, UnaryFn)
MOXING_DEFINE_KERNEL(exp_forward, UnaryFn)
MOXING_DEFINE_KERNEL(log_forward, UnaryFn)
MOXING_DEFINE_KERNEL(log1p_forward, UnaryFn)
MOXING_DEFINE_KERNEL(sqrt_forward, UnaryFn)
MOXING_DEFINE_KERNEL(rsqrt_forward, UnaryFn)
MOXING_DEFINE_KERNEL(sin_forward, UnaryFn)
MOXING_DEFINE_KERNEL(cos_forward, UnaryFn)
MOXING_DEFINE_KERNEL(tanh_forward, UnaryFn)
MOXING_DEFINE_KERNEL(sigmoid_forward, UnaryFn)
MOXING_DEFINE_KERNEL(relu_forward, UnaryFn)
MOXING_DEFINE_KERNEL(leaky_relu_forward, UnaryFn)
MOXING_DEFINE_KERNEL(gelu_forward, UnaryFn)
MOXING_DEFINE_KERNEL(silu_forward, UnaryFn)
MOXING_DEFINE_KERNEL(softplus_forward, UnaryFn)
MOXING_DEFINE_KERNEL(logical_not_forward, UnaryFn)
}  // namespace kernels

using autograd::SavedTensor;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      fail("{}: shapes {} and {} cannot be broadcast together (dim {}: {} vs {})", op, shape_str(a),
           shape_str(b), i, da, db);
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

template <class Table>
Tensor run_binary(Table& table, const char* op, const Tensor& a, const Tensor& b, DType out_dtype,
                  double p0 = 0.0) {
  MOXING_CHECK(a.defined() && b.defined(), "{}: undefined tensor argument", op);
  check_same_device(op, {a, b});
  MOXING_CHECK(a.dtype() == b.dtype(), "{}: dtypes {} and {} differ; convert one with .to()", op,
               dtype_name(a.dtype()), dtype_name(b.dtype()));
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = empty(shape, a.options().dtype(out_dtype));
  table.get(a.device(), a.dtype())(a.expand(shape), b.expand(shape), out, p0);
  return out;
}

template <class Table>
Tensor run_unary(Table& table, const Tensor& x, double p0 = 0.0, double p1 = 0.0) {
  Tensor out = empty(x.shape(), x.options());
  table.get(x.device(), x.dtype())(x, out, p0, p1);
  return out;
}

Tensor scalar_like(double v, const Tensor& t) { return scalar_tensor(v, t.options()); }

}  // namespace

// ---- binary arithmetic

Tensor add(const Tensor& a, const Tensor& b, double alpha) {
  Tensor out = run_binary(kernels::add_forward(), "add", a, b, a.dtype(), alpha);
  autograd::record("add", {out}, {a, b}, [alpha](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0], alpha == 1.0 ? g[0] : mul(g[0], alpha)};
  });
  return out;
}
Tensor add(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }

Tensor sub(const Tensor& a, const Tensor& b, double alpha) {
  Tensor out = run_binary(kernels::sub_forward(), "sub", a, b, a.dtype(), alpha);
  autograd::record("sub", {out}, {a, b}, [alpha](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0], mul(g[0], -alpha)};
  });
  return out;
}
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = run_binary(kernels::mul_forward(), "mul", a, b, a.dtype());
  if (autograd::any_requires_grad({a, b})) {
    SavedTensor sa(b.requires_grad() ? a : Tensor(), "mul");
    SavedTensor sb(a.requires_grad() ? b : Tensor(), "mul");
    autograd::record("mul", {out}, {a, b}, [sa, sb](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{sb.defined() ? mul(g[0], sb.get()) : Tensor(),
                                 sa.defined() ? mul(g[0], sa.get()) : Tensor()};
    });
  }
  return out;
}
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }

// d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = run_binary(kernels::div_forward(), "div", a, b, a.dtype());
  if (autograd::any_requires_grad({a, b})) {
    SavedTensor sa(b.requires_grad() ? a : Tensor(), "div");
    SavedTensor sb(b, "div");
    autograd::record("div", {out}, {a, b}, [sa, sb](const std::vector<Tensor>& g) {
      Tensor bv = sb.get();
      Tensor ga = div(g[0], bv);
      Tensor gb = sa.defined() ? neg(div(mul(ga, sa.get()), bv)) : Tensor();
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }

// d(a^b)/da = b a^(b-1), d(a^b)/db = a^b log a
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = run_binary(kernels::pow_forward(), "pow", a, b, a.dtype());
  if (autograd::any_requires_grad({a, b})) {
    SavedTensor sa(a, "pow"), sb(b, "pow"), so(out, "pow");
    bool need_b = b.requires_grad();
    autograd::record("pow", {out}, {a, b}, [sa, sb, so, need_b](const std::vector<Tensor>& g) {
      Tensor av = sa.get(), bv = sb.get();
      Tensor ga = mul(g[0], mul(bv, pow(av, sub(bv, 1.0))));
      Tensor gb = need_b ? mul(g[0], mul(so.get(), log(av))) : Tensor();
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}

Tensor pow(const Tensor& a, double exponent) {
  Tensor e = scalar_like(exponent, a);
  Tensor out = run_binary(kernels::pow_forward(), "pow", a, e, a.dtype());
  if (autograd::any_requires_grad({a})) {
    SavedTensor sa(a, "pow");
    autograd::record("pow", {out}, {a}, [sa, exponent](const std::vector<Tensor>& g) {
      if (exponent == 0.0) return std::vector<Tensor>{zeros_like(g[0])};
      return std::vector<Tensor>{mul(g[0], mul(pow(sa.get(), exponent - 1.0), exponent))};
    });
  }
  return out;
}

// the gradient goes to the larger (smaller) input; ties split it evenly, as torch does
static Tensor minmax_binary(const Tensor& a, const Tensor& b, bool is_max) {
  const char* op = is_max ? "maximum" : "minimum";
  Tensor out = run_binary(is_max ? kernels::maximum_forward() : kernels::minimum_forward(), op, a,
                          b, a.dtype());
  if (autograd::any_requires_grad({a, b})) {
    SavedTensor sa(a, op), sb(b, op);
    autograd::record(op, {out}, {a, b}, [sa, sb, is_max](const std::vector<Tensor>& g) {
      Tensor av = sa.get(), bv = sb.get();
      Tensor a_wins = (is_max ? gt(av, bv) : lt(av, bv)).to(g[0].dtype());
      Tensor tie = eq(av, bv).to(g[0].dtype());
      Tensor wa = add(a_wins, mul(tie, 0.5));
      Tensor ga = mul(g[0], wa);
      Tensor gb = mul(g[0], sub(scalar_like(1.0, wa), wa));
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}
Tensor maximum(const Tensor& a, const Tensor& b) { return minmax_binary(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return minmax_binary(a, b, false); }

// ---- comparisons

#define MOXING_COMPARISON(name)                                                \
  Tensor name(const Tensor& a, const Tensor& b) {                              \
    return run_binary(kernels::name##_forward(), #name, a, b, DType::boolean); \
  }
MOXING_COMPARISON(eq)
MOXING_COMPARISON(ne)
MOXING_COMPARISON(lt)
MOXING_COMPARISON(le)
MOXING_COMPARISON(gt)
MOXING_COMPARISON(ge)
#undef MOXING_COMPARISON
Tensor eq(const Tensor& a, double b) { return eq(a, scalar_like(b, a)); }
Tensor lt(const Tensor& a, double b) { return lt(a, scalar_like(b, a)); }
Tensor gt(const Tensor& a, double b) { return gt(a, scalar_like(b, a)); }
Tensor le(const Tensor& a, double b) { return le(a, scalar_like(b, a)); }
Tensor ge(const Tensor& a, double b) { return ge(a, scalar_like(b, a)); }

Tensor logical_not(const Tensor& a) {
  MOXING_CHECK(a.dtype() == DType::boolean, "logical_not: expected a bool tensor, got {}",
               dtype_name(a.dtype()));
  return run_unary(kernels::logical_not_forward(), a);
}

// ---- where / masked_fill

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same_device("where", {cond, a, b});
  MOXING_CHECK(cond.dtype() == DType::boolean, "where: condition must be bool, got {}",
               dtype_name(cond.dtype()));
  MOXING_CHECK(a.dtype() == b.dtype(), "where: dtypes {} and {} differ", dtype_name(a.dtype()),
               dtype_name(b.dtype()));
  Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, a.options());
  kernels::where_forward().get(a.device(), a.dtype())(cond.expand(shape), a.expand(shape),
                                                      b.expand(shape), out);
  if (autograd::any_requires_grad({a, b})) {
    SavedTensor sc(cond, "where");
    autograd::record("where", {out}, {a, b}, [sc](const std::vector<Tensor>& g) {
      Tensor c = sc.get();
      Tensor z = zeros({}, g[0].options());
      return std::vector<Tensor>{where(c, g[0], z), where(c, z, g[0])};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  MOXING_CHECK(mask.dtype() == DType::boolean, "masked_fill: mask must be bool, got {}",
               dtype_name(mask.dtype()));
  Shape shape = broadcast_shapes(x.shape(), mask.shape(), "masked_fill");
  MOXING_CHECK(shape == x.shape(), "masked_fill: mask of shape {} does not broadcast to {}",
               shape_str(mask.shape()), shape_str(x.shape()));
  return where(mask, scalar_tensor(value, x.options()), x);
}

// ---- unary

#define MOXING_UNARY_NO_GRAD_CHECK(x, op) \
  MOXING_CHECK((x).defined(), "{}: undefined tensor argument", op)

Tensor neg(const Tensor& x) {
  MOXING_UNARY_NO_GRAD_CHECK(x, "neg");
  Tensor out = run_unary(kernels::neg_forward(), x);
  autograd::record("neg", {out}, {x},
                   [](const std::vector<Tensor>& g) { return std::vector<Tensor>{neg(g[0])}; });
  return out;
}

// d|x|/dx = sign(x)
Tensor abs(const Tensor& x) {
  Tensor out = run_unary(kernels::abs_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "abs");
    autograd::record("abs", {out}, {x}, [sx](const std::vector<Tensor>& g) {
      Tensor xv = sx.get();
      Tensor sign = sub(gt(xv, 0.0).to(xv.dtype()), lt(xv, 0.0).to(xv.dtype()));
      return std::vector<Tensor>{mul(g[0], sign)};
    });
  }
  return out;
}

Tensor clamp(const Tensor& x, double min, double max) {
  MOXING_CHECK(!(min > max), "clamp: min {} is greater than max {}", min, max);
  Tensor out = run_unary(kernels::clamp_forward(), x, min, max);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "clamp");
    autograd::record("clamp", {out}, {x}, [sx, min, max](const std::vector<Tensor>& g) {
      Tensor xv = sx.get();
      Tensor inside = mul(ge(xv, min).to(xv.dtype()), le(xv, max).to(xv.dtype()));
      return std::vector<Tensor>{mul(g[0], inside)};
    });
  }
  return out;
}

// exp' = exp(x) (the saved output)
Tensor exp(const Tensor& x) {
  Tensor out = run_unary(kernels::exp_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor so(out, "exp");
    autograd::record("exp", {out}, {x}, [so](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{mul(g[0], so.get())};
    });
  }
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = run_unary(kernels::log_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "log");
    autograd::record("log", {out}, {x}, [sx](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{div(g[0], sx.get())};
    });
  }
  return out;
}

Tensor log1p(const Tensor& x) {
  Tensor out = run_unary(kernels::log1p_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "log1p");
    autograd::record("log1p", {out}, {x}, [sx](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{div(g[0], add(sx.get(), 1.0))};
    });
  }
  return out;
}

// sqrt' = 0.5 / sqrt(x)
Tensor sqrt(const Tensor& x) {
  Tensor out = run_unary(kernels::sqrt_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor so(out, "sqrt");
    autograd::record("sqrt", {out}, {x}, [so](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{div(mul(g[0], 0.5), so.get())};
    });
  }
  return out;
}

// rsqrt' = -0.5 x^(-3/2) = -0.5 y^3
Tensor rsqrt(const Tensor& x) {
  Tensor out = run_unary(kernels::rsqrt_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor so(out, "rsqrt");
    autograd::record("rsqrt", {out}, {x}, [so](const std::vector<Tensor>& g) {
      Tensor y = so.get();
      return std::vector<Tensor>{mul(g[0], mul(mul(mul(y, y), y), -0.5))};
    });
  }
  return out;
}

Tensor sin(const Tensor& x) {
  Tensor out = run_unary(kernels::sin_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "sin");
    autograd::record("sin", {out}, {x}, [sx](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{mul(g[0], cos(sx.get()))};
    });
  }
  return out;
}

Tensor cos(const Tensor& x) {
  Tensor out = run_unary(kernels::cos_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "cos");
    autograd::record("cos", {out}, {x}, [sx](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{neg(mul(g[0], sin(sx.get())))};
    });
  }
  return out;
}

// tanh' = 1 - y^2
Tensor tanh(const Tensor& x) {
  Tensor out = run_unary(kernels::tanh_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor so(out, "tanh");
    autograd::record("tanh", {out}, {x}, [so](const std::vector<Tensor>& g) {
      Tensor y = so.get();
      return std::vector<Tensor>{mul(g[0], sub(scalar_tensor(1.0, y.options()), mul(y, y)))};
    });
  }
  return out;
}

// sigmoid' = y (1 - y)
Tensor sigmoid(const Tensor& x) {
  Tensor out = run_unary(kernels::sigmoid_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor so(out, "sigmoid");
    autograd::record("sigmoid", {out}, {x}, [so](const std::vector<Tensor>& g) {
      Tensor y = so.get();
      return std::vector<Tensor>{mul(g[0], mul(y, sub(scalar_tensor(1.0, y.options()), y)))};
    });
  }
  return out;
}

Tensor relu(const Tensor& x) {
  Tensor out = run_unary(kernels::relu_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor so(out, "relu");
    autograd::record("relu", {out}, {x}, [so](const std::vector<Tensor>& g) {
      Tensor y = so.get();
      return std::vector<Tensor>{mul(g[0], gt(y, 0.0).to(y.dtype()))};
    });
  }
  return out;
}

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  Tensor out = run_unary(kernels::leaky_relu_forward(), x, negative_slope);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "leaky_relu");
    autograd::record("leaky_relu", {out}, {x}, [sx, negative_slope](const std::vector<Tensor>& g) {
      Tensor xv = sx.get();
      Tensor r = empty(xv.shape(), xv.options());
      kernels::leaky_relu_backward().get(xv.device(), xv.dtype())(g[0], xv, r, negative_slope);
      return std::vector<Tensor>{r};
    });
  }
  return out;
}

Tensor gelu(const Tensor& x, const std::string& approximate) {
  MOXING_CHECK(approximate == "none" || approximate == "tanh",
               "gelu: approximate must be \"none\" or \"tanh\", got \"{}\"", approximate);
  double tanh_form = approximate == "tanh" ? 1.0 : 0.0;
  Tensor out = run_unary(kernels::gelu_forward(), x, tanh_form);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "gelu");
    autograd::record("gelu", {out}, {x}, [sx, tanh_form](const std::vector<Tensor>& g) {
      Tensor xv = sx.get();
      Tensor r = empty(xv.shape(), xv.options());
      kernels::gelu_backward().get(xv.device(), xv.dtype())(g[0], xv, r, tanh_form);
      return std::vector<Tensor>{r};
    });
  }
  return out;
}

// silu' = s (1 + x (1 - s)), s = sigmoid(x)
Tensor silu(const Tensor& x) {
  Tensor out = run_unary(kernels::silu_forward(), x);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "silu");
    autograd::record("silu", {out}, {x}, [sx](const std::vector<Tensor>& g) {
      Tensor xv = sx.get();
      Tensor r = empty(xv.shape(), xv.options());
      kernels::silu_backward().get(xv.device(), xv.dtype())(g[0], xv, r, 0.0);
      return std::vector<Tensor>{r};
    });
  }
  return out;
}

// softplus' = sigmoid(beta x), and 1 where beta x > threshold (the linear region)
Tensor softplus(const Tensor& x, double beta, double threshold) {
  MOXING_CHECK(beta != 0.0, "softplus: beta must be non-zero");
  Tensor out = run_unary(kernels::softplus_forward(), x, beta, threshold);
  if (autograd::any_requires_grad({x})) {
    SavedTensor sx(x, "softplus");
    autograd::record("softplus", {out}, {x}, [sx, beta, threshold](const std::vector<Tensor>& g) {
      Tensor bx = mul(sx.get(), beta);
      return std::vector<Tensor>{where(gt(bx, threshold), g[0], mul(g[0], sigmoid(bx)))};
    });
  }
  return out;
}

// ---- operators

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }
Tensor operator-(const Tensor& a) { return neg(a); }

// ---- in-place

Tensor& apply_inplace(Tensor& self, const char* op, const std::vector<Tensor>& others,
                      const std::function<Tensor(const Tensor&)>& out_of_place) {
  for (const Tensor& o : others) {
    if (!o.defined()) continue;
    Shape b = broadcast_shapes(self.shape(), o.shape(), op);
    MOXING_CHECK(b == self.shape(),
                 "{}: the result of shape {} does not fit the tensor of shape {} being updated", op,
                 shape_str(b), shape_str(self.shape()));
  }
  std::vector<Tensor> all = others;
  all.push_back(self);
  if (autograd::any_requires_grad(all)) {
    TensorImpl* s = self.impl();
    if (s->requires_grad && s->grad_fn == nullptr) {
      fail(
          "{}: a leaf tensor that requires grad is used in an in-place operation; do it under "
          "NoGradGuard or use the out-of-place op",
          op);
    }
    if (s->is_view_of_grad_tensor) {
      fail(
          "{}: in-place update of a view of a tensor that requires grad is not supported; use "
          "the out-of-place op",
          op);
    }
    Tensor result = out_of_place(self.clone());
    {
      NoGradGuard no_grad;
      copy_into(self, result);
    }
    self.bump_version();
    s->grad_fn = result.impl()->grad_fn;
    s->output_nr = result.impl()->output_nr;
    s->requires_grad = result.requires_grad();
    return self;
  }
  Tensor result = out_of_place(self);
  copy_into(self, result);
  self.bump_version();
  return self;
}

namespace {

// The no-autograd fast path of add_/sub_/mul_/div_: the kernel writes straight into self.
// Taken when self is contiguous and other has self's dtype, broadcasts to self's shape and
// does not share its storage (a partly overlapping view would be read after it is written).
template <class Table>
bool binary_into_self(Tensor& self, Table& table, const Tensor& other, double p0) {
  if (!self.defined() || !other.defined() || self.dtype() != other.dtype() ||
      self.device() != other.device() || !self.is_contiguous() ||
      autograd::any_requires_grad({self, other}) || self.impl()->storage == other.impl()->storage) {
    return false;
  }
  if (broadcast_shapes(self.shape(), other.shape(), "in-place op") != self.shape()) return false;
  table.get(self.device(), self.dtype())(self, other.expand(self.shape()), self, p0);
  self.bump_version();
  return true;
}

}  // namespace

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  if (binary_into_self(*this, kernels::add_forward(), other, alpha)) return *this;
  return apply_inplace(*this, "add_", {other},
                       [&](const Tensor& s) { return add(s, other, alpha); });
}
Tensor& Tensor::sub_(const Tensor& other) {
  if (binary_into_self(*this, kernels::sub_forward(), other, 1.0)) return *this;
  return apply_inplace(*this, "sub_", {other}, [&](const Tensor& s) { return sub(s, other); });
}
Tensor& Tensor::mul_(const Tensor& other) {
  if (binary_into_self(*this, kernels::mul_forward(), other, 0.0)) return *this;
  return apply_inplace(*this, "mul_", {other}, [&](const Tensor& s) { return mul(s, other); });
}
Tensor& Tensor::mul_(double value) {
  if (defined() &&
      binary_into_self(*this, kernels::mul_forward(), scalar_like(value, *this), 0.0)) {
    return *this;
  }
  return apply_inplace(*this, "mul_", {}, [&](const Tensor& s) { return mul(s, value); });
}
Tensor& Tensor::div_(const Tensor& other) {
  if (binary_into_self(*this, kernels::div_forward(), other, 0.0)) return *this;
  return apply_inplace(*this, "div_", {other}, [&](const Tensor& s) { return div(s, other); });
}
Tensor& Tensor::fill_(double value) {
  return apply_inplace(*this, "fill_", {}, [&](const Tensor& s) {
    return expand_as_copy(scalar_tensor(value, s.options()), s.shape());
  });
}
Tensor& Tensor::zero_() { return fill_(0.0); }
Tensor& Tensor::copy_(const Tensor& src) {
  MOXING_CHECK(broadcast_shapes(shape(), src.shape(), "copy_") == shape(),
               "copy_: source of shape {} does not broadcast to {}", shape_str(src.shape()),
               shape_str(shape()));
  return apply_inplace(*this, "copy_", {src}, [&](const Tensor& s) {
    Tensor v = src.dtype() == s.dtype() ? src : src.to(s.dtype());
    return expand_as_copy(v, s.shape());
  });
}

}  // namespace moxing
