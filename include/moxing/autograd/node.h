// The autograd graph: nodes recorded as ops run, the edges between them, saved tensors with
// version checks, and grad mode. Ops include this to record their backward; the engine that
// runs a backward pass is in engine.h.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing::autograd {

struct Node;

/// Where a gradient flows: input slot `input_nr` of `node` (null node: no gradient needed).
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;
};

/// One recorded op. Its apply() maps gradients of its outputs to gradients of its inputs.
struct Node {
  std::string name;
  std::vector<Edge> next;           // one per differentiable input
  std::vector<Shape> input_shapes;  // the engine sums each input gradient to this shape
  std::vector<Shape> output_shapes;
  std::vector<DType> output_dtypes;
  std::vector<std::weak_ptr<TensorImpl>> retained;  // outputs that asked retain_grad()
  /// Frees the nodes only this one keeps alive iteratively, so a deep graph does not
  /// overflow the stack when it is released.
  virtual ~Node();
  /// grads has one defined tensor per output; returns one tensor per input (may be undefined).
  virtual std::vector<Tensor> apply(const std::vector<Tensor>& grads) = 0;
  /// Frees saved tensors after a backward without retain_graph.
  virtual void release() {}
};

/// A node whose backward is a closure written with other ops.
struct FunctionNode : Node {
  using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grads)>;
  Fn fn;
  std::vector<Tensor> apply(const std::vector<Tensor>& grads) override;
  void release() override { fn = nullptr; }
};

/// The sink for a leaf: adds the incoming gradient into the leaf's .grad.
struct AccumulateGrad : Node {
  std::shared_ptr<TensorImpl> variable;
  std::vector<Tensor> apply(const std::vector<Tensor>& grads) override;
};

/// A tensor kept for backward. get() fails clearly when an in-place op changed it since.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t, const char* op);
  Tensor get() const;
  bool defined() const { return tensor_.defined(); }

 private:
  Tensor tensor_;
  uint32_t version_ = 0;
  const char* op_ = "";
};

/// Whether ops record a graph (thread-local; on by default).
bool grad_enabled();
void set_grad_enabled(bool on);

/// True when grad mode is on and any input requires a gradient.
bool any_requires_grad(const std::vector<Tensor>& inputs);

/// Records `fn` as the backward of `outputs` computed from `inputs` (only when
/// any_requires_grad(inputs)). fn returns one gradient per input.
void record(const char* op, const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
            FunctionNode::Fn fn);

/// The edge a gradient for t must follow (its grad_fn, its leaf accumulator, or none).
Edge gradient_edge(const Tensor& t);

}  // namespace moxing::autograd

namespace moxing {

/// Disables graph recording in its scope, like torch.no_grad().
class NoGradGuard {
 public:
  NoGradGuard() : prev_(autograd::grad_enabled()) { autograd::set_grad_enabled(false); }
  ~NoGradGuard() { autograd::set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace moxing
