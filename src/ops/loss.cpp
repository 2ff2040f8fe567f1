// Losses: checks and shapes, nll_loss through its gather kernel, the rest as composites whose
// gradients come from the ops they are written with.
#include "moxing/ops/loss.h"

#include "kernels/loss.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"
#include "moxing/ops/softmax.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(nll_loss_forward, NllLossFn)
MOXING_DEFINE_KERNEL(nll_loss_backward, NllLossBackwardFn)
}  // namespace kernels

namespace {

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::none:
      return loss;
    case Reduction::sum:
      return sum(loss);
    case Reduction::mean:
      return mean(loss);
  }
  fail("unknown reduction {}", static_cast<int>(r));
}

// mean over the targets that are not ignored (0/0 = nan when all are, as in torch)
Tensor reduce_targets(const Tensor& loss, const Tensor& target, int64_t ignore_index, Reduction r) {
  if (r != Reduction::mean) return reduce(loss, r);
  // the count stays a tensor: no host read
  Tensor count =
      sum(ne(target, scalar_tensor(static_cast<double>(ignore_index), target.options())));
  return div(sum(loss), count.to(loss.dtype()));
}

void check_floating(const Tensor& t, const char* op, const char* what) {
  MOXING_CHECK(t.defined(), "{}: {} is an undefined tensor", op, what);
  MOXING_CHECK(is_floating(t.dtype()), "{}: {} must be floating-point, got {} of shape {}", op,
               what, dtype_name(t.dtype()), shape_str(t.shape()));
}

void check_same_shape(const Tensor& input, const Tensor& target, const char* op) {
  check_floating(input, op, "input");
  check_floating(target, op, "target");
  check_same_device(op, {input, target});
  MOXING_CHECK(input.shape() == target.shape(),
               "{}: input shape {} and target shape {} differ; they must match", op,
               shape_str(input.shape()), shape_str(target.shape()));
  MOXING_CHECK(input.dtype() == target.dtype(), "{}: input dtype {} and target dtype {} differ", op,
               dtype_name(input.dtype()), dtype_name(target.dtype()));
}

}  // namespace

// loss[b, ...] = -logp[b, target[b, ...], ...]; logp (B,C,d...) viewed as (B,C,D)
Tensor nll_loss(const Tensor& logp, const Tensor& target, Reduction r, int64_t ignore_index) {
  check_floating(logp, "nll_loss", "input");
  MOXING_CHECK(target.defined(), "nll_loss: target is an undefined tensor");
  check_same_device("nll_loss", {logp, target});
  // the kernel checks every target against C; on meta it runs nothing (as torch's meta
  // kernels, which skip value checks)
  MOXING_CHECK(target.dtype() == DType::i64, "nll_loss: target must be i64 class indices, got {}",
               dtype_name(target.dtype()));
  MOXING_CHECK(logp.dim() >= 1, "nll_loss: input must have a class dim, got shape {}",
               shape_str(logp.shape()));
  int64_t cd = logp.dim() == 1 ? 0 : 1;
  int64_t C = logp.size(cd);
  Shape expected = logp.shape();
  expected.erase(expected.begin() + cd);
  MOXING_CHECK(target.shape() == expected,
               "nll_loss: target shape {} does not match input shape {} (expected {})",
               shape_str(target.shape()), shape_str(logp.shape()), shape_str(expected));
  int64_t B = cd == 0 ? 1 : logp.size(0);
  int64_t D = B == 0 ? 0 : shape_numel(expected) / B;

  Tensor lc = contiguous(logp.detach());
  Tensor tc = contiguous(target);
  Tensor loss = empty(expected, logp.options());
  kernels::nll_loss_forward().get(logp.device(), logp.dtype())(lc, tc, B, C, D, ignore_index, loss);
  Shape in_shape = logp.shape();
  autograd::SavedTensor st(tc, "nll_loss");
  autograd::record("nll_loss", {loss}, {logp},
                   [st, in_shape, B, C, D, ignore_index](const std::vector<Tensor>& g) {
                     Tensor gc = contiguous(g[0]);
                     Tensor tc = st.get();
                     Tensor dl = zeros(in_shape, gc.options());
                     kernels::nll_loss_backward().get(gc.device(), gc.dtype())(gc, tc, B, C, D,
                                                                               ignore_index, dl);
                     return std::vector<Tensor>{dl};
                   });
  return reduce_targets(loss, tc, ignore_index, r);
}

// With smoothing e over C classes the target distribution is (1 - e) onehot + e / C, so
// loss = (1 - e) nll + (e / C) sum_c(-logp_c), ignored targets contributing nothing to either.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction r, int64_t ignore_index,
                     double label_smoothing) {
  check_floating(logits, "cross_entropy", "input");
  MOXING_CHECK(logits.dim() >= 1, "cross_entropy: input must have a class dim, got shape {}",
               shape_str(logits.shape()));
  MOXING_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
               "cross_entropy: label_smoothing must be in [0, 1], got {}", label_smoothing);
  int64_t cd = logits.dim() == 1 ? 0 : 1;
  Tensor logp = log_softmax(logits, cd);
  Tensor nll = nll_loss(logp, target, r, ignore_index);
  if (label_smoothing == 0.0) return nll;
  auto C = static_cast<double>(logits.size(cd));
  Tensor ignored = eq(target, scalar_tensor(static_cast<double>(ignore_index), target.options()));
  Tensor smooth = masked_fill(neg(sum(logp, {cd})), ignored, 0.0);
  smooth = reduce_targets(smooth, target, ignore_index, r);
  return add(mul(nll, 1.0 - label_smoothing), mul(smooth, label_smoothing / C));
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same_shape(input, target, "mse_loss");
  Tensor d = sub(input, target);
  return reduce(mul(d, d), r);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same_shape(input, target, "l1_loss");
  return reduce(abs(sub(input, target)), r);
}

// loss = (1 - t) x + (1 + (pw - 1) t) softplus(-x): the log-sigmoid terms rewritten with
// softplus(-x) = -log sigmoid(x), which never overflows (torch's formula, same values).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, Reduction r,
                                        const Tensor& pos_weight) {
  const char* op = "binary_cross_entropy_with_logits";
  check_same_shape(logits, target, op);
  Tensor one = scalar_tensor(1.0, logits.options());
  Tensor linear = mul(sub(one, target), logits);
  if (!pos_weight.defined()) return reduce(add(linear, softplus(neg(logits))), r);
  check_floating(pos_weight, op, "pos_weight");
  MOXING_CHECK(pos_weight.dtype() == logits.dtype(), "{}: pos_weight dtype {} differs from {}", op,
               dtype_name(pos_weight.dtype()), dtype_name(logits.dtype()));
  Shape s = broadcast_shapes(logits.shape(), pos_weight.shape(), op);
  MOXING_CHECK(s == logits.shape(), "{}: pos_weight of shape {} does not broadcast to {}", op,
               shape_str(pos_weight.shape()), shape_str(logits.shape()));
  Tensor log_weight = add(mul(sub(pos_weight, 1.0), target), 1.0);
  return reduce(add(linear, mul(log_weight, softplus(neg(logits)))), r);
}

}  // namespace moxing
