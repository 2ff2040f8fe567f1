// Central-difference check of a random vector-Jacobian product, in f64.
#include "moxing/autograd/gradcheck.h"

#include <cmath>

#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"

namespace moxing::autograd {
namespace {

std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offs;
  int64_t n = t.numel();
  offs.reserve(static_cast<size_t>(n));
  const Shape& sh = t.shape();
  const Shape& st = t.strides();
  std::vector<int64_t> idx(sh.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t off = 0;
    for (size_t d = 0; d < sh.size(); ++d) off += idx[d] * st[d];
    offs.push_back(off);
    for (size_t d = sh.size(); d-- > 0;) {
      if (++idx[d] < sh[d]) break;
      idx[d] = 0;
    }
  }
  return offs;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  for (const Tensor& x : inputs) {
    if (x.defined() && x.requires_grad()) {
      MOXING_CHECK(x.dtype() == DType::f64, "gradcheck: inputs must be f64, got {}",
                   dtype_name(x.dtype()));
      x.impl()->grad.reset();
    }
  }
  Tensor out = f(inputs);
  MOXING_CHECK(out.dtype() == DType::f64, "gradcheck: output must be f64, got {}",
               dtype_name(out.dtype()));
  Generator gen(opt.seed);
  Tensor v = randn(out.shape(), DType::f64, &gen);
  auto objective = [&](const Tensor& o) { return sum(mul(o, v)); };
  GradcheckResult res;
  if (!out.requires_grad()) {
    res.ok = false;
    res.message = "output does not require grad";
    return res;
  }
  objective(out).backward();

  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor g = x.grad();
    std::vector<double> analytic = g.defined()
                                       ? g.to_vector<double>()
                                       : std::vector<double>(static_cast<size_t>(x.numel()), 0.0);
    auto* base = static_cast<double*>(x.impl()->storage->data) + x.storage_offset();
    std::vector<int64_t> offs = element_offsets(x);
    NoGradGuard no_grad;
    for (size_t j = 0; j < offs.size(); ++j) {
      double orig = base[offs[j]];
      base[offs[j]] = orig + opt.eps;
      double fp = objective(f(inputs)).item<double>();
      base[offs[j]] = orig - opt.eps;
      double fm = objective(f(inputs)).item<double>();
      base[offs[j]] = orig;
      double numeric = (fp - fm) / (2 * opt.eps);
      double a = analytic[j];
      if (!(std::abs(a - numeric) <= opt.atol + opt.rtol * std::abs(numeric))) {
        res.ok = false;
        res.message =
            fmt::format("input {} element {}: analytic {:.8g} vs numeric {:.8g}", i, j, a, numeric);
        return res;
      }
    }
  }
  return res;
}

}  // namespace moxing::autograd
