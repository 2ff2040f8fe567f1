// Tensor metadata, raw data access, creation and printing.
#include "moxing/core/tensor.h"

#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>

#include "moxing/autograd/engine.h"
#include "moxing/autograd/node.h"
#include "moxing/core/dtype_visit.h"
#include "moxing/core/parallel.h"

namespace moxing {

namespace {
thread_local Device t_default_device = kCPU;

// A quantized tensor holds whole blocks along its last dimension.
void check_block_shape(const Shape& shape, DType dtype) {
  const int64_t block = dtype_block_numel(dtype);
  if (block == 1) return;
  MOXING_CHECK(!shape.empty() && shape.back() % block == 0,
               "a {} tensor holds blocks of {} weights along its last dimension, and shape {} "
               "does not divide into them (keep such a tensor in f32, or pick a type with a "
               "smaller block such as q8_0)",
               dtype_name(dtype), block, shape_str(shape));
}
}  // namespace

Device default_device() { return t_default_device; }

DeviceGuard::DeviceGuard(Device d) : previous_(t_default_device) { t_default_device = d; }
DeviceGuard::~DeviceGuard() { t_default_device = previous_; }

Shape contiguous_strides(const Shape& shape) {
  Shape s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return s;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

static int64_t wrap_dim(int64_t d, int64_t ndim, const char* what) {
  int64_t w = d < 0 ? d + ndim : d;
  if (w < 0 || w >= ndim) {
    fail("{}: dim {} is out of range for a tensor with {} dims", what, d, ndim);
  }
  return w;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  const auto& sh = shape();
  const auto& st = strides();
  // no elements: nothing to lay out (torch's rule; contiguous_strides gives (5,0) strides (1,1))
  for (int64_t d : sh) {
    if (d == 0) return true;
  }
  int64_t expected = 1;
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

void check_has_values(const char* op, const Tensor& t) {
  if (t.is_meta()) {
    fail(
        "{}: a meta tensor has shapes only, no values (shape {}, dtype {}); materialize it first "
        "(load weights or create it on cpu)",
        op, shape_str(t.shape()), dtype_name(t.dtype()));
  }
}

namespace {
template <class Range>
void check_same_device_in(const char* op, const Range& tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (first == nullptr) {
      first = &t;
    } else if (t.device() != first->device()) {
      fail("{}: tensors on different devices ({} and {}); move one with .to(device)", op,
           device_name(first->device()), device_name(t.device()));
    }
  }
}
}  // namespace

void check_same_device(const char* op, std::initializer_list<Tensor> tensors) {
  check_same_device_in(op, tensors);
}
void check_same_device(const char* op, const std::vector<Tensor>& tensors) {
  check_same_device_in(op, tensors);
}

void Tensor::check_has_values(const char* op) const { moxing::check_has_values(op, *this); }

void* Tensor::raw_data() const {
  auto* i = checked();
  check_has_values("data");
  return static_cast<char*>(i->storage->data) + dtype_nbytes(i->dtype, i->offset);
}

namespace {

// Calls f(element_offset) for every element in row-major order.
template <class F>
void for_each_offset(const Shape& shape, const Shape& strides, int64_t base, F f) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t off = base;
  for (int64_t k = 0; k < n; ++k) {
    f(off);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

}  // namespace

template <class T>
std::vector<T> Tensor::to_vector() const {
  check_has_values("to_vector");
  std::vector<T> out;
  out.reserve(static_cast<size_t>(numel()));
  auto* i = checked();
  visit_dtype(i->dtype, [&](auto tag) {
    using S = decltype(tag);
    const S* base = static_cast<const S*>(i->storage->data);
    for_each_offset(i->shape, i->strides, i->offset,
                    [&](int64_t off) { out.push_back(cast_value<T>(base[off])); });
  });
  return out;
}

template <class T>
T Tensor::item() const {
  check_has_values("item");
  MOXING_CHECK(numel() == 1, "item(): tensor of shape {} has {} elements, not 1",
               shape_str(shape()), numel());
  return to_vector<T>()[0];
}

#define MOXING_INSTANTIATE_ACCESS(T)                 \
  template std::vector<T> Tensor::to_vector() const; \
  template T Tensor::item() const;
MOXING_INSTANTIATE_ACCESS(float)
MOXING_INSTANTIATE_ACCESS(double)
MOXING_INSTANTIATE_ACCESS(int64_t)
MOXING_INSTANTIATE_ACCESS(int32_t)
MOXING_INSTANTIATE_ACCESS(uint8_t)
MOXING_INSTANTIATE_ACCESS(bool)
#undef MOXING_INSTANTIATE_ACCESS

// ---- autograd members

Tensor& Tensor::requires_grad_(bool on) {
  auto* i = checked();
  if (!on && i->grad_fn) {
    fail(
        "requires_grad_(false) on a non-leaf tensor; use detach() to get a tensor without history");
  }
  if (on && !is_floating(i->dtype)) {
    fail("only floating-point tensors can require gradients, not {}", dtype_name(i->dtype));
  }
  i->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  auto* i = checked();
  return i->grad ? Tensor(i->grad) : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  auto* i = checked();
  if (g.defined()) {
    MOXING_CHECK(g.shape() == shape(), "set_grad: gradient shape {} differs from tensor shape {}",
                 shape_str(g.shape()), shape_str(shape()));
    i->grad = g.impl_ptr();
  } else {
    i->grad.reset();
  }
}

void Tensor::zero_grad() { checked()->grad.reset(); }

void Tensor::retain_grad() {
  auto* i = checked();
  MOXING_CHECK(i->requires_grad, "retain_grad() on a tensor that does not require grad");
  if (!i->grad_fn) return;  // leaves keep .grad anyway
  i->retains_grad = true;
  auto& r = i->grad_fn->retained;
  if (r.size() <= i->output_nr) r.resize(i->output_nr + 1);
  r[i->output_nr] = impl_;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::backward({*this}, {gradient}, retain_graph);
}

Tensor Tensor::detach() const {
  auto* i = checked();
  auto d = std::make_shared<TensorImpl>();
  d->storage = i->storage;
  d->shape = i->shape;
  d->strides = i->strides;
  d->offset = i->offset;
  d->dtype = i->dtype;
  return Tensor(d);
}

// ---- creation

static Tensor make_tensor(const Shape& shape, const TensorOptions& options) {
  for (int64_t d : shape) {
    MOXING_CHECK(d >= 0, "cannot create a tensor with negative dimension in shape {}",
                 shape_str(shape));
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype();
  check_block_shape(shape, options.dtype());
  impl->storage =
      Storage::allocate(dtype_nbytes(options.dtype(), shape_numel(shape)), options.device());
  return Tensor(impl);
}

// Host-side fills below write through raw_data(); a meta tensor has nothing to fill.
Tensor empty(const Shape& shape, TensorOptions options) { return make_tensor(shape, options); }

Tensor full(const Shape& shape, double value, TensorOptions options) {
  Tensor t = make_tensor(shape, options);
  if (t.is_meta()) return t;
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = cast_value<T>(value);
    T* p = static_cast<T*>(t.raw_data());
    parallel_for(0, t.numel(), 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) p[k] = v;
    });
  });
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions options) {
  Tensor t = make_tensor(shape, options);
  if (t.is_meta()) return t;
  std::memset(t.raw_data(), 0, dtype_nbytes(options.dtype(), t.numel()));
  return t;
}
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.options()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.options()); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.options()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.options()); }
Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }

Tensor arange(double start, double end, double step, TensorOptions options) {
  MOXING_CHECK(step != 0.0, "arange: step must be non-zero");
  MOXING_CHECK((end - start) / step >= 0 || start == end,
               "arange: start {} cannot reach end {} with step {}", start, end, step);
  auto n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t = make_tensor({std::max<int64_t>(n, 0)}, options);
  if (t.is_meta()) return t;
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    for (int64_t k = 0; k < n; ++k) p[k] = cast_value<T>(start + static_cast<double>(k) * step);
  });
  return t;
}
Tensor arange(int64_t end, TensorOptions options) {
  return arange(0.0, static_cast<double>(end), 1.0, options);
}

Tensor linspace(double start, double end, int64_t steps, TensorOptions options) {
  MOXING_CHECK(steps >= 0, "linspace: steps must be >= 0, got {}", steps);
  Tensor t = make_tensor({steps}, options);
  if (t.is_meta()) return t;
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    double h = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
    // fill from both ends so that the last value is exactly `end`, as torch does; a single
    // step is `start`
    for (int64_t k = 0; k < steps; ++k) {
      double v = k < steps / 2 || steps == 1 ? start + h * static_cast<double>(k)
                                             : end - h * static_cast<double>(steps - 1 - k);
      p[k] = cast_value<T>(v);
    }
  });
  return t;
}

Tensor eye(int64_t n, int64_t m, TensorOptions options) {
  if (m < 0) m = n;
  Tensor t = zeros({n, m}, options);
  if (t.is_meta()) return t;
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    for (int64_t k = 0; k < std::min(n, m); ++k) p[k * m + k] = cast_value<T>(1.0);
  });
  return t;
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  MOXING_CHECK(shape_numel(s) == static_cast<int64_t>(values.size()),
               "from_vector: {} values do not fill shape {} ({} elements)", values.size(),
               shape_str(s), shape_numel(s));
  Tensor t = make_tensor(s, TensorOptions(dtype_of<T>::value).device(kCPU));
  T* p = static_cast<T*>(t.raw_data());
  for (size_t k = 0; k < values.size(); ++k) p[k] = values[k];
  return t;
}
template Tensor from_vector(const std::vector<float>&, const Shape&);
template Tensor from_vector(const std::vector<double>&, const Shape&);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor from_vector(const std::vector<uint8_t>&, const Shape&);
template Tensor from_vector(const std::vector<int8_t>&, const Shape&);
template Tensor from_vector(const std::vector<bool>&, const Shape&);

Tensor tensor(std::initializer_list<float> values, const Shape& shape) {
  return from_vector(std::vector<float>(values), shape);
}

Tensor from_blob_copy(const void* data, const Shape& shape, DType dtype) {
  Tensor t = make_tensor(shape, TensorOptions(dtype).device(kCPU));
  std::memcpy(t.raw_data(), data, dtype_nbytes(dtype, t.numel()));
  return t;
}

Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  auto s = std::make_shared<Storage>();
  s->data = data;
  check_block_shape(shape, dtype);
  s->nbytes = dtype_nbytes(dtype, shape_numel(shape));
  s->owner = std::move(owner);
  impl->storage = s;
  return Tensor(impl);
}

// ---- printing

namespace {

// Elements are printed from i64 for integer tensors (a double would round values past 2^53).
struct PrintValues {
  std::vector<double> floats;
  std::vector<int64_t> ints;
  DType dtype;
};

void print_value(std::ostream& os, const PrintValues& vals, int64_t i) {
  if (vals.dtype == DType::boolean) {
    os << (vals.ints[static_cast<size_t>(i)] != 0 ? "true" : "false");
    return;
  }
  if (!is_floating(vals.dtype)) {
    os << vals.ints[static_cast<size_t>(i)];
    return;
  }
  double v = vals.floats[static_cast<size_t>(i)];
  if (std::isnan(v) || std::isinf(v)) {
    os << (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
  } else {
    os << fmt::format("{:.4f}", v);
  }
}

void print_rec(std::ostream& os, const PrintValues& vals, const Shape& shape, size_t d,
               int64_t base, bool summarize, int indent) {
  const int64_t edge = 3;
  int64_t n = shape[d];
  int64_t inner = 1;
  for (size_t k = d + 1; k < shape.size(); ++k) inner *= shape[k];
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * edge && i == edge) {
      os << (d + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - edge;
    }
    if (d + 1 == shape.size()) {
      print_value(os, vals, base + i);
    } else {
      print_rec(os, vals, shape, d + 1, base + i * inner, summarize, indent + 1);
    }
    if (i + 1 < n) os << (d + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  if (t.is_meta()) {
    os << "tensor(..., shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype())
       << ", device=meta";
    if (t.requires_grad()) os << ", requires_grad=true";
    return os << ")";
  }
  PrintValues vals;
  vals.dtype = t.dtype();
  if (is_floating(t.dtype())) {
    vals.floats = t.to_vector<double>();
  } else {
    vals.ints = t.to_vector<int64_t>();
  }
  bool summarize = t.numel() > 1000;
  os << "tensor(";
  if (t.dim() == 0) {
    print_value(os, vals, 0);
  } else {
    print_rec(os, vals, t.shape(), 0, 0, summarize, 7);
  }
  os << ", shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (t.requires_grad()) os << ", requires_grad=true";
  return os << ")";
}

std::string to_string(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

}  // namespace moxing
