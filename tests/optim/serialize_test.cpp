// optimizer.safetensors round trip: 5 steps, save, load into a fresh optimizer, 5 more steps
// give bitwise the same parameters as 10 uninterrupted steps.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "moxing/moxing.h"
#include "moxing/optim/serialize.h"

using namespace moxing;

namespace {

// loss = sum((A p - b)^2) over a fixed problem
Tensor loss_of(const Tensor& p) {
  Tensor a = arange(0, 12, 1, DType::f32).reshape({4, 3}) / 7.0;
  Tensor b = from_vector<float>({1, -2, 0.5f, 3});
  Tensor r = matmul(a, p) - b;
  return sum(r * r);
}

void run_steps(optim::Optimizer& opt, Tensor& p, int n) {
  for (int i = 0; i < n; ++i) {
    opt.zero_grad();
    loss_of(p).backward();
    opt.step();
  }
}

}  // namespace

TEST(OptimizerFile, ResumeIsBitwiseIdentical) {
  for (const char* name : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}) {
    optim::Hyper h = {{"lr", 0.05}};
    if (std::string(name) == "sgd") h["momentum"] = 0.9;
    Tensor p_ref = from_vector<float>({0.3f, -0.2f, 0.1f}).requires_grad_();
    auto ref = optim::make_optimizer(name, std::vector<Tensor>{p_ref}, h);
    run_steps(*ref, p_ref, 10);

    Tensor p = from_vector<float>({0.3f, -0.2f, 0.1f}).requires_grad_();
    auto first = optim::make_optimizer(name, std::vector<Tensor>{p}, h);
    run_steps(*first, p, 5);
    std::string path = ::testing::TempDir() + "/optimizer_" + name + ".safetensors";
    optim::save_optimizer(*first, path);

    Tensor q = p.detach().clone().requires_grad_();
    auto second = optim::make_optimizer(name, std::vector<Tensor>{q}, {{"lr", 1.0}});
    optim::load_optimizer(*second, path);
    EXPECT_DOUBLE_EQ(second->param_groups()[0].lr(), 0.05) << name;
    run_steps(*second, q, 5);
    EXPECT_EQ(q.to_vector<float>(), p_ref.to_vector<float>()) << name;
  }
}

TEST(OptimizerFile, MissingMetadataIsAClearError) {
  std::string path = ::testing::TempDir() + "/plain.safetensors";
  save_safetensors(path, {{"x", zeros({2})}});
  Tensor p = zeros({2}).requires_grad_();
  auto opt = optim::make_optimizer("adam", std::vector<Tensor>{p});
  try {
    optim::load_optimizer(*opt, path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an optimizer state file"), std::string::npos)
        << e.what();
  }
}

TEST(OptimizerFile, WrongParameterShapesNameTheFile) {
  Tensor p = zeros({3}).requires_grad_();
  auto opt = optim::make_optimizer("adam", std::vector<Tensor>{p});
  opt->zero_grad();
  sum(p * p + p).backward();
  opt->step();
  std::string path = ::testing::TempDir() + "/adam3.safetensors";
  optim::save_optimizer(*opt, path);
  Tensor q = zeros({4}).requires_grad_();
  auto other = optim::make_optimizer("adam", std::vector<Tensor>{q});
  try {
    optim::load_optimizer(*other, path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}
