// Graph recording: grad mode, saved tensors, edges, and the two node kinds.
#include "moxing/autograd/node.h"

#include "moxing/ops/elementwise.h"

namespace moxing::autograd {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

SavedTensor::SavedTensor(const Tensor& t, const char* op) : op_(op) {
  if (!t.defined()) return;
  tensor_ = t.detach();
  version_ = t.version();
}

Tensor SavedTensor::get() const {
  if (tensor_.defined() && tensor_.version() != version_) {
    fail(
        "{}: a tensor of shape {} saved for backward was modified by an in-place operation "
        "(version {} now, {} when saved); use the out-of-place op or clone() before modifying it",
        op_, shape_str(tensor_.shape()), tensor_.version(), version_);
  }
  return tensor_;
}

Node::~Node() {
  // Without this, freeing the last tensor of a long chain frees node after node recursively.
  // Nodes held only by `pending` lose their edges (and saved state) before they die, so each
  // destructor returns at once.
  std::vector<std::shared_ptr<Node>> pending;
  auto take_edges = [&pending](Node& n) {
    for (Edge& e : n.next) {
      if (e.node) pending.push_back(std::move(e.node));
    }
    n.next.clear();
  };
  take_edges(*this);
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    if (n.use_count() == 1) {
      n->release();
      take_edges(*n);
    }
  }
}

std::vector<Tensor> FunctionNode::apply(const std::vector<Tensor>& grads) {
  if (!fn) {
    fail(
        "{}: trying to backward through the graph a second time (its saved tensors were freed); "
        "pass retain_graph=true to the first backward()",
        name);
  }
  return fn(grads);
}

std::vector<Tensor> AccumulateGrad::apply(const std::vector<Tensor>& grads) {
  const Tensor& g = grads.at(0);
  if (variable->grad) {
    Tensor prev(variable->grad);
    variable->grad = add(prev, g).impl_ptr();
  } else if (g.impl_ptr().use_count() == 1 && g.impl()->storage.use_count() == 1 &&
             !g.requires_grad() && g.is_contiguous() && g.storage_offset() == 0 &&
             g.dtype() == variable->dtype) {
    // nothing else holds this buffer (not another edge, not a view): take it as it is
    variable->grad = g.impl_ptr();
  } else {
    // own the buffer: a graph gradient may be shared with another leaf's .grad
    variable->grad = g.clone().impl_ptr();
  }
  return {};
}

Edge gradient_edge(const Tensor& t) {
  TensorImpl* i = t.impl();
  if (i->grad_fn) return Edge{i->grad_fn, i->output_nr};
  if (!i->requires_grad) return Edge{};
  auto acc = i->grad_accumulator.lock();
  if (!acc) {
    auto a = std::make_shared<AccumulateGrad>();
    a->name = "AccumulateGrad";
    a->variable = t.impl_ptr();
    a->input_shapes = {t.shape()};
    a->output_shapes = {t.shape()};
    a->output_dtypes = {t.dtype()};
    i->grad_accumulator = a;
    acc = a;
  }
  return Edge{acc, 0};
}

void record(const char* op, const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
            FunctionNode::Fn fn) {
  if (!any_requires_grad(inputs)) return;
  auto node = std::make_shared<FunctionNode>();
  node->name = op;
  node->fn = std::move(fn);
  node->next.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    node->next.push_back(in.defined() ? gradient_edge(in) : Edge{});
    node->input_shapes.push_back(in.defined() ? in.shape() : Shape{});
  }
  for (size_t k = 0; k < outputs.size(); ++k) {
    TensorImpl* o = outputs[k].impl();
    node->output_shapes.push_back(o->shape);
    node->output_dtypes.push_back(o->dtype);
    o->grad_fn = node;
    o->output_nr = static_cast<uint32_t>(k);
    o->requires_grad = true;
  }
}

}  // namespace moxing::autograd
