// nn::Module: registration, dotted-name traversal, module surgery, state_dict /
// load_state_dict, summary.
#include "moxing/nn/module.h"

#include <cxxabi.h>
#include <fmt/format.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <set>

#include "moxing/autograd/node.h"

namespace moxing::nn {

namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// names joined with ", ", the first 20 of a longer list and how many more (a model of another
// family can miss hundreds)
std::string join_names(const std::vector<std::string>& names) {
  constexpr size_t kShown = 20;
  std::string s;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) s += (s.empty() ? "" : ", ") + names[i];
  if (names.size() > kShown) s += fmt::format(", and {} more", names.size() - kShown);
  return s;
}

// "moxing::nn::UnaryModule" -> "UnaryModule", for messages about slot interfaces.
std::string short_type_name(const std::type_info& type) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled != nullptr ? demangled : type.name();
  std::free(demangled);
  size_t colon = name.rfind("::");
  return colon == std::string::npos ? name : name.substr(colon + 2);
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
  bool child_taken = false;
  for (const auto& c : children_) child_taken = child_taken || c.name == name;
  MOXING_CHECK(!taken(parameters_) && !taken(buffers_) && !child_taken,
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

size_t Module::register_child(const std::string& name, std::shared_ptr<Module> module,
                              Accepts accepts, const std::type_info& interface, bool fixed) {
  const char* kind = fixed ? "module" : "slot";
  MOXING_CHECK(module != nullptr, "{}: register_{}: \"{}\" is null", type_name(), kind, name);
  check_new_name(name, kind);
  children_.push_back({name, std::move(module), accepts, &interface, fixed});
  return children_.size() - 1;
}

void Module::fail_slot_type(size_t index, const std::type_info& wanted) const {
  const Child& c = children_[index];
  fail("{}: child \"{}\" is a {}, not a {}", type_name(), c.name, c.module->type_name(),
       short_type_name(wanted));
}

std::shared_ptr<Module> Module::get_submodule(const std::string& path) const {
  MOXING_CHECK(!path.empty(), "get_submodule: the path is empty");
  const Module* parent = this;
  std::shared_ptr<Module> found;
  std::string walked;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    found = nullptr;
    for (const auto& c : parent->children_) {
      if (c.name == part) found = c.module;
    }
    if (found == nullptr) {
      std::vector<std::string> names;
      for (const auto& c : parent->children_) names.push_back(c.name);
      fail("get_submodule(\"{}\"): {} has no child \"{}\" ({})", path,
           walked.empty() ? "the model (" + parent->type_name() + ")"
                          : "\"" + walked + "\" (" + parent->type_name() + ")",
           part, names.empty() ? "it has no children" : "children: " + join_names(names));
    }
    if (dot == std::string::npos) return found;
    walked = join(walked, part);
    parent = found.get();
    start = dot + 1;
  }
}

void Module::check_replacement(size_t i, const Module& module, const std::string& path) const {
  const Child& c = children_[i];
  MOXING_CHECK(!c.fixed,
               "replace_module: \"{}\" is held by {} as a plain pointer (register_module); "
               "register it with register_slot to make it replaceable",
               path, type_name());
  MOXING_CHECK(c.accepts(module),
               "replace_module: \"{}\" must be a {} ({} calls it as one); a {} is not", path,
               short_type_name(*c.interface), type_name(), module.type_name());
}

void Module::replace_module(const std::string& path, std::shared_ptr<Module> module) {
  MOXING_CHECK(module != nullptr, "replace_module: the module for \"{}\" is null", path);
  MOXING_CHECK(!path.empty(), "replace_module: the path is empty (a module cannot replace itself)");
  size_t dot = path.rfind('.');
  std::shared_ptr<Module> owner;
  Module* parent = this;
  if (dot != std::string::npos) {
    owner = get_submodule(path.substr(0, dot));
    parent = owner.get();
  }
  std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  for (size_t i = 0; i < parent->children_.size(); ++i) {
    if (parent->children_[i].name != name) continue;
    parent->check_replacement(i, *module, path);
    parent->children_[i].module = std::move(module);
    return;
  }
  get_submodule(path);  // throws, naming what is missing
}

int Module::replace_modules_impl(const std::function<std::shared_ptr<Module>(
                                     const std::string&, const std::shared_ptr<Module>&)>& fn) {
  // every (path, parent, index) depth first, a module shared by two parents under both paths
  struct Place {
    std::string path;
    Module* parent;
    size_t index;
  };
  std::vector<Place> places;
  std::vector<const Module*> ancestors;
  std::function<void(Module*, const std::string&)> walk = [&](Module* m,
                                                              const std::string& prefix) {
    ancestors.push_back(m);
    for (size_t i = 0; i < m->children_.size(); ++i) {
      Module* child = m->children_[i].module.get();
      bool cycle = false;
      for (const Module* a : ancestors) cycle = cycle || a == child;
      if (cycle) continue;
      std::string path = join(prefix, m->children_[i].name);
      places.push_back({path, m, i});
      walk(child, path);
    }
    ancestors.pop_back();
  };
  walk(this, "");

  std::map<const Module*, std::shared_ptr<Module>> decided;  // fn called once per module
  std::vector<std::pair<Place, std::shared_ptr<Module>>> plan;
  std::vector<std::string> replaced;
  auto under_replaced = [&](const std::string& path) {
    for (const auto& r : replaced) {
      if (path.size() > r.size() && path.compare(0, r.size(), r) == 0 && path[r.size()] == '.') {
        return true;
      }
    }
    return false;
  };
  for (const Place& p : places) {
    if (under_replaced(p.path)) continue;
    const std::shared_ptr<Module>& old = p.parent->children_[p.index].module;
    auto it = decided.find(old.get());
    if (it == decided.end()) it = decided.emplace(old.get(), fn(p.path, old)).first;
    if (it->second == nullptr || it->second == old) continue;
    p.parent->check_replacement(p.index, *it->second, p.path);
    plan.emplace_back(p, it->second);
    replaced.push_back(p.path);
  }
  for (auto& [p, m] : plan) p.parent->children_[p.index].module = m;
  return static_cast<int>(plan.size());
}

void Module::collect_modules(const std::string& prefix,
                             std::vector<std::pair<std::string, Module*>>& out) const {
  for (const auto& [n, m] : out) {
    if (m == this) return;
  }
  out.emplace_back(prefix, const_cast<Module*>(this));
  for (const auto& c : children_) c.module->collect_modules(join(prefix, c.name), out);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, Module*>> out;
  collect_modules("", out);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& c : children_) out.emplace_back(c.name, c.module);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& c : children_) out.push_back(c.module);
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
  for (auto& c : children_) c.module->train(on);
}

void Module::collect_state(const std::string& prefix, TensorList& out) const {
  for (const auto& [n, p] : parameters_) out.emplace_back(join(prefix, n), p);
  for (const auto& [n, b] : buffers_) out.emplace_back(join(prefix, n), b);
  for (const auto& c : children_) c.module->collect_state(join(prefix, c.name), out);
}

TensorList Module::state_dict() const {
  TensorList out;
  collect_state("", out);
  return out;
}

LoadStateDictResult Module::load_state_dict(const TensorList& state, const LoadOptions& options) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [n, t] : state) given[n] = &t;
  LoadStateDictResult result;
  std::vector<std::string> bad_shapes, bad_dtypes;
  std::vector<std::pair<Tensor, Tensor>> loads;  // (destination, source)
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
      bad_shapes.push_back(fmt::format("{} is {} in the checkpoint but {} in the model", name,
                                       shape_str(src.shape()), shape_str(dst.shape())));
    } else if (src.dtype() != dst.dtype() && !options.convert_dtype) {
      bad_dtypes.push_back(fmt::format("{} is {} in the checkpoint but {} in the model", name,
                                       dtype_name(src.dtype()), dtype_name(dst.dtype())));
    } else {
      loads.emplace_back(dst, src);
    }
  }
  for (const auto& [n, t] : state) {
    if (!known.count(n)) result.unexpected_keys.push_back(n);
  }
  std::vector<std::string> parts;
  if (options.strict && !result.missing_keys.empty()) {
    parts.push_back("missing keys: " + join_names(result.missing_keys));
  }
  if (options.strict && !result.unexpected_keys.empty()) {
    parts.push_back("unexpected keys: " + join_names(result.unexpected_keys));
  }
  if (!bad_shapes.empty()) parts.push_back("shape mismatch: " + join_names(bad_shapes));
  if (!bad_dtypes.empty()) {
    parts.push_back("dtype mismatch: " + join_names(bad_dtypes) +
                    " (pass convert_dtype to convert them to the model's dtypes)");
  }
  if (!parts.empty()) {
    std::string msg = "load_state_dict: ";
    for (size_t i = 0; i < parts.size(); ++i) msg += (i ? "; " : "") + parts[i];
    throw Error(msg);
  }
  NoGradGuard guard;
  std::set<const TensorImpl*> done;  // a tied parameter loads once, from its first name
  for (auto& [dst, src] : loads) {
    if (!done.insert(dst.impl()).second) continue;
    Tensor value = src.dtype() == dst.dtype() ? src : src.to(dst.dtype());
    if (!options.assign) {
      Tensor d = dst;
      d.copy_(value);
      continue;
    }
    // rewrite the impl in place so that every handle to it (the layer's members) follows
    TensorImpl* impl = dst.impl();
    const TensorImpl* from = value.impl();
    impl->storage = from->storage;
    impl->strides = from->strides;
    impl->offset = from->offset;
    impl->grad.reset();
    impl->is_view_of_grad_tensor = false;
  }
  return result;
}

void Module::convert_tensors(const std::function<bool(const Tensor&)>& needs,
                             const std::function<Tensor(const Tensor&)>& convert) {
  NoGradGuard guard;
  std::set<TensorImpl*> done;
  for (const auto& [prefix, m] : named_modules()) {
    for (auto* list : {&m->parameters_, &m->buffers_}) {
      for (auto& [n, t] : *list) {
        if (!needs(t) || !done.insert(t.impl()).second) continue;
        // rewrite the impl in place so that every handle to it (the layer's members) follows
        Tensor c = convert(t).contiguous();
        TensorImpl* impl = t.impl();
        impl->storage = c.impl()->storage;
        impl->shape = c.shape();
        impl->strides = c.strides();
        impl->offset = c.storage_offset();
        impl->dtype = c.dtype();
        impl->grad.reset();
      }
    }
  }
}

void Module::to(DType dtype) {
  MOXING_CHECK(is_floating(dtype), "{}: to: {} is not a floating dtype", type_name(),
               dtype_name(dtype));
  convert_tensors([dtype](const Tensor& t) { return is_floating(t.dtype()) && t.dtype() != dtype; },
                  [dtype](const Tensor& t) { return t.to(dtype); });
}

void Module::to(Device device) {
  convert_tensors([device](const Tensor& t) { return t.device() != device; },
                  [device](const Tensor& t) { return t.to(device); });
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
  for (const auto& c : children_) c.module->summary_lines(c.name, indent + 2, out);
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
