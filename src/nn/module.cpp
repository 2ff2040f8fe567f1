// nn::Module: registration, dotted-name traversal, state_dict / load_state_dict, summary.
#include "moxing/nn/module.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "moxing/autograd/node.h"

namespace moxing::nn {

namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

void Module::check_new_name(const std::string& name, const char* kind) const {
  MOXING_CHECK(!name.empty(), "{}: register_{}: the name is empty", type_name(), kind);
  MOXING_CHECK(name.find('.') == std::string::npos,
               "{}: register_{}: name \"{}\" must not contain '.'", type_name(), kind, name);
  auto taken = [&](const auto& list) {
    for (const auto& [n, v] : list) {
      if (n == name) return true;
    }
    return false;
  };
  MOXING_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_),
               "{}: register_{}: name \"{}\" is already registered", type_name(), kind, name);
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  if (!t.defined()) return t;
  for (auto& [n, p] : parameters_) {
    if (n == name) {
      p = t;
      p.requires_grad_(requires_grad);
      return t;
    }
  }
  check_new_name(name, "parameter");
  MOXING_CHECK(t.is_leaf(), "{}: register_parameter: \"{}\" has autograd history; detach() it",
               type_name(), name);
  if (requires_grad) {
    MOXING_CHECK(is_floating(t.dtype()),
                 "{}: register_parameter: \"{}\" is {}; only floating tensors can require grad",
                 type_name(), name, dtype_name(t.dtype()));
  }
  t.requires_grad_(requires_grad);
  parameters_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  MOXING_CHECK(t.defined(), "{}: register_buffer: \"{}\" is undefined", type_name(), name);
  check_new_name(name, "buffer");
  buffers_.emplace_back(name, t);
  return t;
}

void Module::register_module_impl(const std::string& name, std::shared_ptr<Module> module) {
  MOXING_CHECK(module != nullptr, "{}: register_module: \"{}\" is null", type_name(), name);
  check_new_name(name, "module");
  children_.emplace_back(name, std::move(module));
}

void Module::collect_modules(const std::string& prefix,
                             std::vector<std::pair<std::string, Module*>>& out) const {
  for (const auto& [n, m] : out) {
    if (m == this) return;
  }
  out.emplace_back(prefix, const_cast<Module*>(this));
  for (const auto& [name, child] : children_) child->collect_modules(join(prefix, name), out);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, Module*>> out;
  collect_modules("", out);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [n, m] : children_) out.push_back(m);
  return out;
}

TensorList Module::named_parameters(bool recurse) const {
  if (!recurse) return parameters_;
  TensorList out;
  std::set<const TensorImpl*> seen;
  for (const auto& [prefix, m] : named_modules()) {
    for (const auto& [n, p] : m->parameters_) {
      if (seen.insert(p.impl()).second) out.emplace_back(join(prefix, n), p);
    }
  }
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, p] : named_parameters(recurse)) out.push_back(p);
  return out;
}

TensorList Module::named_buffers(bool recurse) const {
  if (!recurse) return buffers_;
  TensorList out;
  std::set<const TensorImpl*> seen;
  for (const auto& [prefix, m] : named_modules()) {
    for (const auto& [n, b] : m->buffers_) {
      if (seen.insert(b.impl()).second) out.emplace_back(join(prefix, n), b);
    }
  }
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, b] : named_buffers(recurse)) out.push_back(b);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::collect_state(const std::string& prefix, TensorList& out) const {
  for (const auto& [n, p] : parameters_) out.emplace_back(join(prefix, n), p);
  for (const auto& [n, b] : buffers_) out.emplace_back(join(prefix, n), b);
  for (const auto& [n, m] : children_) m->collect_state(join(prefix, n), out);
}

TensorList Module::state_dict() const {
  TensorList out;
  collect_state("", out);
  return out;
}

LoadStateDictResult Module::load_state_dict(const TensorList& state, bool strict) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [n, t] : state) given[n] = &t;
  LoadStateDictResult result;
  std::vector<std::string> mismatched;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  std::set<std::string> known;
  for (const auto& [name, dst] : state_dict()) {
    known.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      result.missing_keys.push_back(name);
      continue;
    }
    const Tensor& src = *it->second;
    if (src.shape() != dst.shape()) {
      mismatched.push_back(fmt::format("{} is {} in the checkpoint but {} in the model", name,
                                       shape_str(src.shape()), shape_str(dst.shape())));
      continue;
    }
    copies.emplace_back(dst, src);
  }
  for (const auto& [n, t] : state) {
    if (!known.count(n)) result.unexpected_keys.push_back(n);
  }
  std::vector<std::string> parts;
  if (strict && !result.missing_keys.empty()) {
    parts.push_back("missing keys: " + join_names(result.missing_keys));
  }
  if (strict && !result.unexpected_keys.empty()) {
    parts.push_back("unexpected keys: " + join_names(result.unexpected_keys));
  }
  if (!mismatched.empty()) parts.push_back("shape mismatch: " + join_names(mismatched));
  if (!parts.empty()) {
    std::string msg = "load_state_dict: ";
    for (size_t i = 0; i < parts.size(); ++i) msg += (i ? "; " : "") + parts[i];
    throw Error(msg);
  }
  NoGradGuard guard;
  for (auto& [dst, src] : copies) {
    Tensor d = dst;
    d.copy_(src.dtype() == dst.dtype() ? src : src.to(dst.dtype()));
  }
  return result;
}

void Module::to(DType dtype) {
  MOXING_CHECK(is_floating(dtype), "{}: to: {} is not a floating dtype", type_name(),
               dtype_name(dtype));
  NoGradGuard guard;
  std::set<TensorImpl*> done;
  for (const auto& [prefix, m] : named_modules()) {
    for (auto* list : {&m->parameters_, &m->buffers_}) {
      for (auto& [n, t] : *list) {
        if (!is_floating(t.dtype()) || t.dtype() == dtype || !done.insert(t.impl()).second) {
          continue;
        }
        // rewrite the impl in place so that every handle to it (the layer's members) follows
        Tensor c = t.to(dtype).contiguous();
        TensorImpl* impl = t.impl();
        impl->storage = c.impl()->storage;
        impl->shape = c.shape();
        impl->strides = c.strides();
        impl->offset = c.storage_offset();
        impl->dtype = dtype;
        impl->grad.reset();
      }
    }
  }
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& p : parameters()) {
    if (!trainable_only || p.requires_grad()) n += p.numel();
  }
  return n;
}

void Module::zero_grad() {
  for (auto& p : parameters()) p.zero_grad();
}

void Module::summary_lines(const std::string& name, int indent, std::string& out) const {
  std::string pad(static_cast<size_t>(indent), ' ');
  std::string head = pad + (name.empty() ? "" : "(" + name + "): ") + type_name();
  std::string params;
  int64_t count = 0;
  for (const auto& [n, p] : parameters_) {
    params += fmt::format("{}{} {}", params.empty() ? "" : ", ", n, shape_str(p.shape()));
    count += p.numel();
  }
  std::string info = params.empty() ? "" : fmt::format("  # {}: {} params", params, count);
  if (children_.empty()) {
    out += head + "(" + extra_repr() + ")" + info + "\n";
    return;
  }
  std::string extra = extra_repr();
  out += head + "(" + (extra.empty() ? "" : extra) + info + "\n";
  for (const auto& [n, m] : children_) m->summary_lines(n, indent + 2, out);
  out += pad + ")\n";
}

std::string Module::summary() const {
  std::string out;
  summary_lines("", 0, out);
  out +=
      fmt::format("Total parameters: {} (trainable: {})\n", num_parameters(), num_parameters(true));
  return out;
}

}  // namespace moxing::nn
