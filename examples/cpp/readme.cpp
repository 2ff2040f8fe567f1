// The example from README.md, built and run by the tests so that it stays true.
#include <iostream>
#include "moxing/moxing.h"
using namespace moxing;

int main() {
  manual_seed(0);
  Tensor x = randn({64, 3});                            // (B, C_in)
  Tensor y = sum(x * x, {1}, /*keepdim=*/true);         // target (B, 1)
  Tensor w1 = (randn({16, 3}) * 0.5).requires_grad_();  // (H, C_in)
  Tensor w2 = (randn({1, 16}) * 0.5).requires_grad_();  // (1, H)
  float first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    Tensor loss = mse_loss(linear(relu(linear(x, w1)), w2), y);
    loss.backward();  // fills w1.grad(), w2.grad()
    NoGradGuard no_grad;
    for (Tensor* w : {&w1, &w2}) {
      w->add_(w->grad(), -0.01);  // SGD step, in place
      w->zero_grad();
    }
    last = loss.item<float>();
    if (step == 0) first = last;
  }
  std::cout << "loss " << first << " -> " << last << "\n";
  return last < first / 4 ? 0 : 1;
}
