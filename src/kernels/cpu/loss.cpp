// CPU nll_loss: a gather of one class per target and its scatter. Both are serial: they touch
// one element per target, and checking targets in order keeps the first bad one in the error.
#include "kernels/loss.h"

namespace moxing::kernels::cpu {
namespace {

template <class T>
void nll_loss_forward(const Tensor& logp, const Tensor& target, int64_t B, int64_t C, int64_t D,
                      int64_t ignore_index, Tensor& loss) {
  const T* lp = logp.data<T>();
  const int64_t* t = target.data<int64_t>();
  T* out = loss.data<T>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t d = 0; d < D; ++d) {
      int64_t k = t[b * D + d];
      if (k == ignore_index) {
        out[b * D + d] = T(0);
        continue;
      }
      if (k < 0 || k >= C) {
        fail("nll_loss: target {} is out of range for C = {} classes (valid: 0 to {})", k, C,
             C - 1);
      }
      out[b * D + d] = -lp[(b * C + k) * D + d];
    }
  }
}

template <class T>
void nll_loss_backward(const Tensor& g, const Tensor& target, int64_t B, int64_t C, int64_t D,
                       int64_t ignore_index, Tensor& dlogp) {
  const T* pg = g.data<T>();
  const int64_t* t = target.data<int64_t>();
  T* dl = dlogp.data<T>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t d = 0; d < D; ++d) {
      int64_t k = t[b * D + d];
      if (k != ignore_index) dl[(b * C + k) * D + d] = -pg[b * D + d];
    }
  }
}

}  // namespace

MOXING_REGISTER_KERNEL(nll_loss_forward, cpu, f32, nll_loss_forward<float>);
MOXING_REGISTER_KERNEL(nll_loss_forward, cpu, f64, nll_loss_forward<double>);
MOXING_REGISTER_KERNEL(nll_loss_backward, cpu, f32, nll_loss_backward<float>);
MOXING_REGISTER_KERNEL(nll_loss_backward, cpu, f64, nll_loss_backward<double>);

}  // namespace moxing::kernels::cpu
