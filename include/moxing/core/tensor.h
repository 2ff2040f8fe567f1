// Tensor: a cheap shared handle over TensorImpl (shape, strides, offset, dtype, storage,
// autograd fields). Views share Storage and its version counter.
// This header holds no math; ops are free functions in include/moxing/ops, and the member
// shortcuts below forward to them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "moxing/core/dtype.h"
#include "moxing/core/error.h"

namespace moxing {

using Shape = std::vector<int64_t>;

/// The device tensor creation uses when none is given: cpu unless a DeviceGuard on this thread
/// says otherwise.
Device default_device();

/// Sets this thread's default device for its lifetime, then restores the previous one, as
/// `with torch.device("meta"):`. Building a model under DeviceGuard(kMeta) makes every tensor
/// its constructors create a meta tensor: shapes, no memory, no random draws.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device d);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  Device previous_;
};

/// What a creation function makes: a dtype (f32 unless given) and a device (this thread's
/// default_device() unless given). Converts from a DType or a Device, so `zeros({2}, DType::i64)`
/// and `zeros({2}, kMeta)` both work; chain for both: `TensorOptions(DType::f64).device(kMeta)`.
class TensorOptions {
 public:
  TensorOptions() = default;
  TensorOptions(DType dtype) : dtype_(dtype) {}      // NOLINT(google-explicit-constructor)
  TensorOptions(Device device) : device_(device) {}  // NOLINT(google-explicit-constructor)
  /// A copy with the dtype set.
  TensorOptions dtype(DType d) const {
    TensorOptions o = *this;
    o.dtype_ = d;
    return o;
  }
  /// A copy with the device set.
  TensorOptions device(Device d) const {
    TensorOptions o = *this;
    o.device_ = d;
    return o;
  }
  DType dtype() const { return dtype_; }
  /// The device given, or nullopt when creation should use default_device().
  const std::optional<Device>& device_opt() const { return device_; }
  /// The device given, else this thread's default_device().
  Device device() const { return device_ ? *device_ : default_device(); }

 private:
  DType dtype_ = DType::f32;
  std::optional<Device> device_;
};

namespace autograd {
struct Node;
}

/// Bytes on one device. All views of one storage share its version counter, which every
/// in-place op bumps so that backward can detect a saved tensor that was modified.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device = kCPU;
  std::shared_ptr<void> owner;  // frees the bytes (or keeps a borrowed buffer's owner alive)
  uint32_t version = 0;
  /// New uninitialized storage of nbytes from the allocator registered for the device's type
  /// (core/allocator.h); on meta, data stays null and nothing is allocated.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves only
  // set on a view created while grad was enabled; in-place ops on such views are refused
  bool is_view_of_grad_tensor = false;
};

/// Contiguous (row-major) strides for a shape.
Shape contiguous_strides(const Shape& shape);
/// Product of the dims (1 for a 0-d shape).
int64_t shape_numel(const Shape& shape);
/// "[2, 3]".
std::string shape_str(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  /// False for a default-constructed (null) tensor.
  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata
  const Shape& shape() const { return checked()->shape; }
  const Shape& strides() const { return checked()->strides; }
  /// Size of dim d (negative d counts from the end).
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return checked()->dtype; }
  Device device() const { return checked()->storage->device; }
  /// True on the meta device: shape, strides and dtype, no values.
  bool is_meta() const { return device().type == DeviceType::meta; }
  /// This tensor's dtype and device, for creating tensors like it: `zeros(s, x.options())`.
  TensorOptions options() const { return TensorOptions(dtype()).device(device()); }
  int64_t storage_offset() const { return checked()->offset; }
  bool is_contiguous() const;
  /// Version counter shared with every view of the same storage.
  uint32_t version() const { return checked()->storage->version; }
  void bump_version() const { ++checked()->storage->version; }
  /// True when the two tensors view the same storage.
  bool shares_storage(const Tensor& other) const;

  // ---- data access (cpu); each is an error on a meta tensor, which has no values
  /// Fails naming op when this tensor is on meta (it has shapes only).
  void check_has_values(const char* op) const;
  /// Typed pointer to the first element (storage data + offset). T must match dtype().
  template <class T>
  T* data() const;
  void* raw_data() const;
  /// The value of a one-element tensor, converted to T.
  template <class T>
  T item() const;
  /// All elements in row-major order, converted to T.
  template <class T>
  std::vector<T> to_vector() const;

  // ---- autograd
  bool requires_grad() const { return checked()->requires_grad; }
  /// Marks a leaf as needing a gradient (in place); returns *this.
  Tensor& requires_grad_(bool on = true);
  /// The accumulated gradient, or an undefined tensor.
  Tensor grad() const;
  void set_grad(const Tensor& g);
  /// Clears .grad (sets it undefined), as optimizer.zero_grad(set_to_none=True).
  void zero_grad();
  std::shared_ptr<autograd::Node> grad_fn() const { return checked()->grad_fn; }
  bool is_leaf() const { return checked()->grad_fn == nullptr; }
  /// Keeps .grad on a non-leaf after backward.
  void retain_grad();
  /// Backpropagates from this tensor. A non-scalar needs an explicit gradient.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  /// Same data, no history, requires_grad false.
  Tensor detach() const;

  // ---- shortcuts to ops (defined in src/ops)
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor squeeze(std::optional<int64_t> dim = std::nullopt) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  /// Last two dims swapped (matrix transpose); 0-d and 1-d tensors are returned as is, as torch.
  Tensor t() const { return dim() < 2 ? *this : transpose(-2, -1); }
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor expand(const Shape& shape) const;
  std::vector<Tensor> chunk(int64_t chunks, int64_t dim = 0) const;
  std::vector<Tensor> split(int64_t split_size, int64_t dim = 0) const;
  Tensor contiguous() const;
  Tensor clone() const;
  /// Converted copy (or *this when the dtype already matches).
  Tensor to(DType dtype) const;
  /// Copy on another device (or *this when already there). cpu -> meta keeps the shape only;
  /// meta -> cpu is an error: a meta tensor has no values to copy.
  Tensor to(Device device) const;
  /// Copy on another device with another dtype (or *this when both already match).
  Tensor to(Device device, DType dtype) const;
  Tensor sum() const;
  Tensor mean() const;

  // in-place (bump the version counter)
  Tensor& zero_();
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& sub_(const Tensor& other);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double value);
  Tensor& div_(const Tensor& other);

 private:
  TensorImpl* checked() const {
    if (!impl_) fail("use of an undefined tensor");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

/// Prints values, shape and dtype (values summarized past 1000 elements); a meta tensor prints
/// its shape, dtype and device only.
std::ostream& operator<<(std::ostream& os, const Tensor& t);
std::string to_string(const Tensor& t);

/// The error for reading values of a meta tensor in op (used by ops that need values).
void check_has_values(const char* op, const Tensor& t);
/// Fails naming op and two devices when the defined tensors are not all on one device:
/// "add: tensors on different devices (cpu and meta)". Every multi-input op calls it.
void check_same_device(const char* op, std::initializer_list<Tensor> tensors);
void check_same_device(const char* op, const std::vector<Tensor>& tensors);

// ---- creation: each takes TensorOptions (a DType, a Device or both); no device means
// default_device()
/// Uninitialized tensor.
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
/// Like t: same shape, dtype and device.
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
/// 0-d tensor holding value.
Tensor scalar_tensor(double value, TensorOptions options = {});
/// [start, end) with step, as torch.arange (i64 unless a dtype is given).
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = DType::i64);
Tensor arange(int64_t end, TensorOptions options = DType::i64);
/// steps evenly spaced values from start to end inclusive.
Tensor linspace(double start, double end, int64_t steps, TensorOptions options = {});
/// n x m identity (m defaults to n).
Tensor eye(int64_t n, int64_t m = -1, TensorOptions options = {});
// The functions below copy host values, so they always make cpu tensors.
/// Copies values into a new tensor of the given shape (inferred 1-d when shape is empty).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape = {});
Tensor tensor(std::initializer_list<float> values, const Shape& shape = {});
/// Copies a raw buffer of shape x dtype.
Tensor from_blob_copy(const void* data, const Shape& shape, DType dtype);
/// Wraps a raw buffer without copying; owner (may be null) is kept alive with the tensor.
Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner = {});

// ---- dtype helpers
template <class T>
struct dtype_of;
#define MOXING_DTYPE_OF(e, T, name, st, torch, fl) \
  template <>                                      \
  struct dtype_of<T> {                             \
    static constexpr DType value = DType::e;       \
  };
MOXING_FORALL_DTYPES(MOXING_DTYPE_OF)
#undef MOXING_DTYPE_OF

template <class T>
T* Tensor::data() const {
  if (dtype_of<T>::value != dtype()) {
    fail("data<{}>() called on a {} tensor", dtype_name(dtype_of<T>::value), dtype_name(dtype()));
  }
  return static_cast<T*>(raw_data());
}

}  // namespace moxing
