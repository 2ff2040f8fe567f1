// The backward engine: implicit and explicit root gradients, accumulation, retain_graph,
// detach, grad mode, retain_grad, deep and diamond graphs, and gradcheck itself.
#include <gtest/gtest.h>

#include <pthread.h>
#include <cmath>

#include <functional>

#include "moxing/moxing.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;

namespace {

Tensor f64(std::vector<double> v, const Shape& shape = {}) { return from_vector(v, shape); }

}  // namespace

TEST(Backward, ScalarRootGetsAnImplicitGradientOfOne) {
  Tensor x = f64({1, 2, 3}).requires_grad_();
  Tensor y = sum(mul(x, x));  // dy/dx = 2x
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  EXPECT_EQ(y.grad_fn()->name, "sum");
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({2, 4, 6}));
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  // a one-element non-0-d root is also fine
  Tensor z = f64({3}).requires_grad_();
  mul(z, 4.0).backward();
  EXPECT_EQ(z.grad().to_vector<double>(), std::vector<double>({4}));
}

TEST(Backward, NonScalarRootNeedsAnExplicitGradient) {
  Tensor x = f64({1, 2, 3}).requires_grad_();
  Tensor y = mul(x, 2.0);
  std::string m = error_of([&] { y.backward(); });
  EXPECT_TRUE(contains(m, "gradient can be implicitly created only for scalar outputs")) << m;
  EXPECT_TRUE(contains(m, "[3]")) << m;
  std::string wrong = error_of([&] { y.backward(f64({1, 1})); });
  EXPECT_TRUE(contains(wrong, "gradient shape [2] differs from output shape [3]")) << wrong;
  y.backward(f64({1, 10, 100}));
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({2, 20, 200}));
  // a gradient of another dtype is converted to the output's, as torch does
  Tensor a = ones({2}).requires_grad_();
  mul(a, 3.0).backward(f64({1, 2}));
  EXPECT_EQ(a.grad().dtype(), DType::f32);
  EXPECT_EQ(a.grad().to_vector<float>(), std::vector<float>({3, 6}));
}

TEST(Backward, TensorWithoutGradIsAnError) {
  Tensor x = f64({1, 2});
  std::string m = error_of([&] { sum(x).backward(); });
  EXPECT_TRUE(contains(m, "does not require grad")) << m;
}

TEST(Backward, GradientsAccumulateAcrossCalls) {
  Tensor x = f64({1, 2}).requires_grad_();
  sum(mul(x, 3.0)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({3, 3}));
  sum(mul(x, x)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({5, 7}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({1, 1}));
}

TEST(Backward, AccumulatedGradIsNotAliasedWithOtherTensors) {
  // x and w both receive the same incoming gradient buffer from add; updating one .grad in
  // place must not change the other
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor w = f64({5, 5}).requires_grad_();
  sum(add(x, w)).backward();
  {
    NoGradGuard no_grad;
    x.grad().mul_(10.0);
  }
  EXPECT_EQ(w.grad().to_vector<double>(), std::vector<double>({1, 1}));
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({10, 10}));
}

TEST(Backward, RetainGraph) {
  Tensor x = f64({0.5, -1}).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward();
  std::string m = error_of([&] { y.backward(); });
  EXPECT_TRUE(contains(m, "backward through the graph a second time")) << m;
  EXPECT_TRUE(contains(m, "retain_graph")) << m;

  Tensor x2 = f64({0.5, -1}).requires_grad_();
  Tensor y2 = sum(exp(x2));
  y2.backward(Tensor(), /*retain_graph=*/true);
  std::vector<double> once = x2.grad().to_vector<double>();
  EXPECT_NEAR(once[0], std::exp(0.5), 1e-12);
  y2.backward();
  std::vector<double> twice = x2.grad().to_vector<double>();
  EXPECT_NEAR(twice[0], 2 * once[0], 1e-12);
  EXPECT_NEAR(twice[1], 2 * once[1], 1e-12);
  // the second backward did not retain: a third one fails
  EXPECT_THROW(y2.backward(), Error);
}

TEST(Backward, DetachCutsHistoryButSharesData) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = mul(x, 2.0);
  Tensor d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_TRUE(d.shares_storage(y));
  Tensor z = add(mul(d, x), y);  // d is a constant: dz/dx = d + 2
  sum(z).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({4, 6}));
  {
    NoGradGuard no_grad;
    d.fill_(0);
  }
  EXPECT_EQ(y.to_vector<double>(), std::vector<double>({0, 0}));
}

TEST(Backward, RequiresGradOnlyForFloatingLeaves) {
  Tensor i = zeros({2}, DType::i64);
  std::string m = error_of([&] { i.requires_grad_(); });
  EXPECT_TRUE(contains(m, "only floating-point tensors can require gradients, not i64")) << m;
  EXPECT_THROW(zeros({2}, DType::boolean).requires_grad_(), Error);
  EXPECT_NO_THROW(zeros({2}, DType::bf16).requires_grad_());
  Tensor x = zeros({2}).requires_grad_();
  EXPECT_TRUE(x.requires_grad());
  x.requires_grad_(false);
  EXPECT_FALSE(x.requires_grad());
  Tensor y = mul(zeros({2}).requires_grad_(), 2.0);
  EXPECT_TRUE(contains(error_of([&] { y.requires_grad_(false); }), "non-leaf"));
  EXPECT_FALSE(zeros({2}).requires_grad());
}

TEST(GradMode, NoGradGuardRecordsNothingAndRestores) {
  Tensor x = f64({1}).requires_grad_();
  EXPECT_TRUE(autograd::grad_enabled());
  {
    NoGradGuard outer;
    EXPECT_FALSE(autograd::grad_enabled());
    Tensor y = mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    {
      NoGradGuard inner;
      EXPECT_FALSE(autograd::grad_enabled());
    }
    EXPECT_FALSE(autograd::grad_enabled()) << "the inner guard restores the outer state";
    Tensor v = x.view({1, 1});
    EXPECT_FALSE(v.requires_grad());
  }
  EXPECT_TRUE(autograd::grad_enabled());
  EXPECT_TRUE(mul(x, 2.0).requires_grad());
}

TEST(GradMode, NoGradInsideBackwardIsRestored) {
  Tensor x = f64({1}).requires_grad_();
  sum(exp(x)).backward();
  EXPECT_TRUE(autograd::grad_enabled()) << "backward leaves grad mode as it found it";
  Tensor y = f64({1}).requires_grad_();
  Tensor bad = mul(y, f64({1, 2}));
  EXPECT_THROW(bad.backward(), Error);
  EXPECT_TRUE(autograd::grad_enabled()) << "also when backward throws";
}

TEST(RetainGrad, NonLeafKeepsItsGradOnlyWhenAsked) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor h = mul(x, 3.0);
  Tensor k = mul(x, 5.0);
  h.retain_grad();
  Tensor y = sum(mul(h, k));  // dy/dh = k = 5x, dy/dk = h
  y.backward();
  ASSERT_TRUE(h.grad().defined());
  EXPECT_EQ(h.grad().to_vector<double>(), std::vector<double>({5, 10}));
  EXPECT_FALSE(k.grad().defined()) << "non-leaf grads are not kept by default";
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({30, 60}));
  EXPECT_THROW(f64({1}).retain_grad(), Error);
}

namespace {

void deep_chain_body() {
  Tensor x = f64({0.5}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add(y, 1.0);
  EXPECT_EQ(y.item<double>(), 100000.5);
  y.backward();
  EXPECT_EQ(x.grad().item<double>(), 1.0);
  y = Tensor();  // releasing the chain must not recurse either
  Tensor z = x;
  for (int i = 0; i < 100000; ++i) z = mul(z, 1.0);
  z = Tensor();  // a graph that never ran backward
}

// Runs f on a thread whose stack is `bytes` large.
void run_with_small_stack(std::function<void()> f, size_t bytes) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, bytes);
  pthread_t th;
  auto tramp = [](void* p) -> void* {
    (*static_cast<std::function<void()>*>(p))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&th, &attr, tramp, &f), 0);
  pthread_join(th, nullptr);
  pthread_attr_destroy(&attr);
}

}  // namespace

TEST(Graph, DeepChainDoesNotOverflowTheStack) {
  // 512 KiB of stack: a recursive backward or a recursive release of 100000 nodes overflows it
  std::string failure;
  run_with_small_stack(
      [&failure] {
        try {
          deep_chain_body();
        } catch (const std::exception& e) {
          failure = e.what();
        }
      },
      512 * 1024);
  EXPECT_EQ(failure, "");
}

TEST(Graph, DiamondSumsBothPaths) {
  // a = exp(x); y = 2a + 3a * a  => dy/dx = (2 + 6a) a
  Tensor x = f64({0.1, -0.4, 1.2}).requires_grad_();
  Tensor a = exp(x);
  Tensor y = sum(add(mul(a, 2.0), mul(mul(a, 3.0), a)));
  y.backward();
  std::vector<double> g = x.grad().to_vector<double>();
  for (size_t i = 0; i < 3; ++i) {
    double av = std::exp(std::vector<double>({0.1, -0.4, 1.2})[i]);
    EXPECT_NEAR(g[i], (2 + 6 * av) * av, 1e-12);
  }
  // x used twice directly
  Tensor u = f64({3}).requires_grad_();
  sum(mul(u, u)).backward();
  EXPECT_EQ(u.grad().item<double>(), 6.0);
  Tensor w = f64({3}).requires_grad_();
  sum(add(w, w)).backward();
  EXPECT_EQ(w.grad().item<double>(), 2.0);
}

TEST(Graph, SeveralRootsAtOnce) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = mul(x, 2.0);
  Tensor z = sum(mul(y, y));  // z depends on y: y's node must wait for z's contribution
  autograd::backward({z, y}, {Tensor(), f64({1, 1})});
  // dz/dx = 8x, dy/dx . [1, 1] = 2
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({10, 18}));
  EXPECT_THROW(autograd::backward({z}, {}), Error);
}

TEST(Graph, GradientFlowsThroughFloatConversionsOnly) {
  Tensor x = from_vector<float>({0.5f, 1.5f}).requires_grad_();
  Tensor y = x.to(DType::bf16).to(DType::f64);
  EXPECT_TRUE(y.requires_grad());
  sum(mul(y, 3.0)).backward();
  EXPECT_EQ(x.grad().dtype(), DType::f32);
  EXPECT_EQ(x.grad().to_vector<float>(), std::vector<float>({3, 3}));
  // an integer result has no gradient
  EXPECT_FALSE(x.to(DType::i64).requires_grad());
}

namespace {

// a = 2x, b = 3x recorded as one node with two outputs
std::pair<Tensor, Tensor> two_outputs(const Tensor& x) {
  Tensor a, b;
  {
    NoGradGuard no_grad;
    a = mul(x, 2.0);
    b = mul(x, 3.0);
  }
  autograd::record("two_outputs", {a, b}, {x}, [](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{add(mul(g[0], 2.0), mul(g[1], 3.0))};
  });
  return {a, b};
}

}  // namespace

TEST(Graph, MultiOutputNodeGetsZerosForUnusedOutputs) {
  Tensor x = f64({1, 2}).requires_grad_();
  auto [a, b] = two_outputs(x);
  EXPECT_EQ(a.grad_fn(), b.grad_fn());
  EXPECT_EQ(b.impl()->output_nr, 1u);
  sum(a).backward();  // b's gradient is missing: zeros
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>({2, 2}));
  Tensor x2 = f64({1, 2}).requires_grad_();
  auto [a2, b2] = two_outputs(x2);
  b2.retain_grad();
  sum(add(mul(a2, 10.0), b2)).backward();
  EXPECT_EQ(x2.grad().to_vector<double>(), std::vector<double>({23, 23}));
  EXPECT_EQ(b2.grad().to_vector<double>(), std::vector<double>({1, 1}));
}

TEST(Graph, UnusedInputGetsNoGradient) {
  Tensor x = f64({1}).requires_grad_();
  Tensor unused = f64({1}).requires_grad_();
  sum(mul(x, 2.0)).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(unused.grad().defined());
}

namespace {

// y = x^2 recorded with a chosen backward: right (2 g x) or wrong (g x)
Tensor square_with_backward(const Tensor& x, bool right) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = mul(x, x);
  }
  autograd::SavedTensor sx(x, "square");
  autograd::record("square", {out}, {x}, [sx, right](const std::vector<Tensor>& g) {
    Tensor d = mul(g[0], sx.get());
    return std::vector<Tensor>{right ? mul(d, 2.0) : d};
  });
  return out;
}

}  // namespace

TEST(Gradcheck, AcceptsARightGradientAndCatchesAWrongOne) {
  Tensor x = f64({0.3, -1.2, 2.0, 0.7}, {2, 2}).requires_grad_();
  auto right = autograd::gradcheck(
      [](const std::vector<Tensor>& in) { return square_with_backward(in[0], true); }, {x});
  EXPECT_TRUE(right.ok) << right.message;
  auto wrong = autograd::gradcheck(
      [](const std::vector<Tensor>& in) { return square_with_backward(in[0], false); }, {x});
  EXPECT_FALSE(wrong.ok);
  EXPECT_TRUE(contains(wrong.message, "input 0 element")) << wrong.message;
  // the engine-built gradient of the same function passes too
  auto builtin =
      autograd::gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0]); }, {x});
  EXPECT_TRUE(builtin.ok) << builtin.message;
  // only inputs that require grad are checked; the others are constants
  Tensor c = f64({2, 2, 2, 2}, {2, 2});
  auto partial = autograd::gradcheck(
      [](const std::vector<Tensor>& in) { return mul(square_with_backward(in[0], true), in[1]); },
      {x, c});
  EXPECT_TRUE(partial.ok) << partial.message;
}

TEST(Gradcheck, RefusesNonF64Inputs) {
  Tensor x = ones({2}).requires_grad_();
  std::string m = error_of([&] {
    (void)autograd::gradcheck([](const std::vector<Tensor>& in) { return exp(in[0]); }, {x});
  });
  EXPECT_TRUE(contains(m, "gradcheck: inputs must be f64, got f32")) << m;
}

TEST(Errors, NameTheOpAndShapes) {
  Tensor a = zeros({2, 3}).requires_grad_();
  std::string m = error_of([&] { (void)add(a, zeros({4})); });
  EXPECT_TRUE(contains(m, "add: shapes [2, 3] and [4] cannot be broadcast")) << m;
  std::string s = error_of([&] { (void)mul(a, zeros({3, 2})); });
  EXPECT_TRUE(contains(s, "mul: shapes [2, 3] and [3, 2]")) << s;
  std::string d = error_of([&] { (void)sum(a, {5}); });
  EXPECT_TRUE(contains(d, "sum: dim 5 is out of range")) << d;
}
