// Backward pass: Kahn's algorithm over the recorded graph (iterative, so deep graphs do not
// overflow the stack). Gradients arriving at the same input slot are summed.
#include "moxing/autograd/engine.h"

#include <unordered_map>
#include <unordered_set>

#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/reduction.h"

namespace moxing::autograd {

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
              bool retain_graph) {
  MOXING_CHECK(roots.size() == grads.size(), "backward: {} roots but {} gradients", roots.size(),
               grads.size());
  NoGradGuard no_grad;
  std::vector<Edge> root_edges;
  std::vector<Tensor> root_grads;
  for (size_t k = 0; k < roots.size(); ++k) {
    const Tensor& r = roots[k];
    MOXING_CHECK(r.requires_grad(),
                 "backward: the tensor does not require grad and has no grad_fn; call "
                 "requires_grad_() on the leaves it was computed from");
    Tensor g = grads[k];
    if (!g.defined()) {
      MOXING_CHECK(r.numel() == 1,
                   "backward: gradient can be implicitly created only for scalar outputs, "
                   "this one has shape {}; pass a gradient of that shape",
                   shape_str(r.shape()));
      g = ones(r.shape(), r.options());
    } else {
      MOXING_CHECK(g.shape() == r.shape(),
                   "backward: gradient shape {} differs from output shape {}", shape_str(g.shape()),
                   shape_str(r.shape()));
      // as torch, a gradient of another dtype is converted to the output's
      if (g.dtype() != r.dtype()) g = g.to(r.dtype());
    }
    root_edges.push_back(gradient_edge(r));
    root_grads.push_back(g);
  }

  // dependencies: how many edges point at each node
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  for (auto& e : root_edges) {
    if (e.node && seen.insert(e.node.get()).second) stack.push_back(e.node.get());
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& e : n->next) {
      if (!e.node) continue;
      deps[e.node.get()] += 1;
      if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
    }
  }

  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  auto add_to_buffer = [&](Node* n, uint32_t slot, const Tensor& g) {
    auto& buf = buffers[n];
    if (buf.size() < n->output_shapes.size()) buf.resize(n->output_shapes.size());
    if (buf[slot].defined()) {
      buf[slot] = add(buf[slot], g);
    } else {
      buf[slot] = g;
    }
  };
  std::vector<std::shared_ptr<Node>> ready;
  for (size_t k = 0; k < root_edges.size(); ++k) {
    if (!root_edges[k].node) continue;
    add_to_buffer(root_edges[k].node.get(), root_edges[k].input_nr, root_grads[k]);
  }
  for (auto& e : root_edges) {
    if (e.node && deps[e.node.get()] == 0) {
      bool queued = false;
      for (auto& r : ready) queued = queued || r == e.node;
      if (!queued) ready.push_back(e.node);
    }
  }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.back();
    ready.pop_back();
    std::vector<Tensor> in = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    in.resize(node->output_shapes.size());
    Device device = default_device();  // of the gradients that did arrive
    for (const Tensor& t : in) {
      if (t.defined()) {
        device = t.device();
        break;
      }
    }
    for (size_t k = 0; k < in.size(); ++k) {
      if (!in[k].defined()) {
        in[k] = zeros(node->output_shapes[k], TensorOptions(node->output_dtypes[k]).device(device));
      }
      if (k < node->retained.size()) {
        if (auto t = node->retained[k].lock()) {
          Tensor prev = t->grad ? Tensor(t->grad) : Tensor();
          t->grad = (prev.defined() ? add(prev, in[k]) : in[k].clone()).impl_ptr();
        }
      }
    }
    std::vector<Tensor> out = node->apply(in);
    if (!retain_graph) node->release();
    for (size_t k = 0; k < node->next.size(); ++k) {
      const Edge& e = node->next[k];
      if (!e.node) continue;
      if (k < out.size() && out[k].defined()) {
        Tensor g = out[k];
        if (g.shape() != node->input_shapes[k]) g = sum_to(g, node->input_shapes[k]);
        add_to_buffer(e.node.get(), e.input_nr, g);
      }
      if (--deps[e.node.get()] == 0) ready.push_back(e.node);
    }
  }
}

}  // namespace moxing::autograd
