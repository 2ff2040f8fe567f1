// Layer fixtures written by tests/fixtures/nn_transformer.py: load a torch layer's state_dict
// into ours, run the same forward in f32, and compare outputs, input and parameter gradients
// and the buffers after the forward (see the script for the file layout).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "moxing/io/safetensors.h"
#include "moxing/nn/module.h"
#include "op_harness.h"

namespace moxing::testing {

using LayerFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

/// Loads tests/fixtures/nn/<name>.safetensors into m (strict), sets train/eval, calls fn on the
/// fixture inputs and checks every result, gradient and buffer within atol + rtol |ref|.
inline void check_layer_fixture(const std::string& name, nn::Module& m, bool train,
                                const LayerFn& fn, double atol = 1e-5, double rtol = 1e-4) {
  SafetensorsFile f =
      load_safetensors(std::string(MOXING_FIXTURE_DIR) + "/nn/" + name + ".safetensors");
  auto with_prefix = [&](const std::string& prefix) {
    nn::TensorList out;
    for (const auto& [k, t] : f.tensors) {
      if (k.rfind(prefix, 0) == 0) out.emplace_back(k.substr(prefix.size()), t);
    }
    return out;
  };
  m.load_state_dict(with_prefix("state."), true);
  m.train(train);
  std::vector<Tensor> in;
  for (size_t i = 0; f.contains("input." + std::to_string(i)); ++i) {
    Tensor t = f.get("input." + std::to_string(i)).clone();
    if (f.contains("grad.input." + std::to_string(i))) t.requires_grad_();
    in.push_back(t);
  }
  std::vector<Tensor> outs = fn(in);
  Tensor loss;
  for (size_t j = 0; j < outs.size(); ++j) {
    std::string key = "output." + std::to_string(j);
    ASSERT_TRUE(f.contains(key)) << name << ": the layer returned more results than the fixture";
    EXPECT_EQ(compare(outs[j], f.get(key), atol, rtol), "") << name << ": " << key;
    Tensor term = sum(mul(outs[j], f.get("grad_output." + std::to_string(j))));
    loss = loss.defined() ? add(loss, term) : term;
  }
  EXPECT_FALSE(f.contains("output." + std::to_string(outs.size())))
      << name << ": the fixture has more results than the layer returned";
  loss.backward();
  for (size_t i = 0; i < in.size(); ++i) {
    std::string key = "grad.input." + std::to_string(i);
    if (!f.contains(key)) continue;
    ASSERT_TRUE(in[i].grad().defined()) << name << ": no gradient for input " << i;
    EXPECT_EQ(compare(in[i].grad(), f.get(key), atol, rtol), "") << name << ": " << key;
  }
  std::map<std::string, Tensor> params;
  for (const auto& [k, p] : m.named_parameters()) params[k] = p;
  nn::TensorList expected_grads = with_prefix("grad.state.");
  EXPECT_EQ(expected_grads.size(), params.size()) << name << ": parameter count";
  for (const auto& [k, g] : expected_grads) {
    ASSERT_TRUE(params.count(k)) << name << ": no parameter " << k;
    Tensor pg = params[k].grad();
    if (!pg.defined()) pg = zeros_like(params[k]);
    EXPECT_EQ(compare(pg, g, atol, rtol), "") << name << ": gradient of " << k;
  }
  std::map<std::string, Tensor> buffers;
  for (const auto& [k, b] : m.named_buffers()) buffers[k] = b;
  nn::TensorList expected_buffers = with_prefix("after.");
  EXPECT_EQ(expected_buffers.size(), buffers.size()) << name << ": buffer count";
  for (const auto& [k, b] : expected_buffers) {
    ASSERT_TRUE(buffers.count(k)) << name << ": no buffer " << k;
    EXPECT_EQ(compare(buffers[k], b, atol, rtol), "") << name << ": buffer " << k << " after";
  }
}

}  // namespace moxing::testing
