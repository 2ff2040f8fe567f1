// dropout: y = x * mask / (1 - p), mask = (u >= p) with u uniform in [0, 1). The gradient,
// mask / (1 - p), comes from mul.
#include "moxing/ops/dropout.h"

#include "moxing/ops/elementwise.h"
#include "moxing/ops/random.h"

namespace moxing {

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  MOXING_CHECK(x.defined(), "dropout: undefined input");
  MOXING_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got {}", p);
  MOXING_CHECK(is_floating(x.dtype()), "dropout: input must be floating-point, got {}",
               dtype_name(x.dtype()));
  if (!training || p == 0.0) return x;
  if (p == 1.0) return mul(x, 0.0);
  Tensor keep = ge(rand(x.shape(), x.options(), gen), p);
  return mul(x, mul(keep.to(x.dtype()), 1.0 / (1.0 - p)));
}

}  // namespace moxing
