// Kernel tables keyed by (device, dtype): PyTorch's DispatchStub idea without a central switch.
// An op family declares a table per kernel in src/kernels/<family>.h with
// MOXING_DECLARE_KERNEL; each device's kernel file fills it with MOXING_REGISTER_KERNEL.
// The meta device needs no registration: every table answers it with a kernel that does
// nothing, so an op on meta tensors checks its arguments and makes its outputs' shapes only.
#pragma once

#include <array>

#include "moxing/core/dtype.h"
#include "moxing/core/error.h"

namespace moxing::kernels {

/// The meta kernel of a function type: outputs already have their shapes, so nothing to do.
template <class Fn>
struct MetaKernel {
  static constexpr bool kReturnsValue = true;
};
template <class... Args>
struct MetaKernel<void(Args...)> {
  static constexpr bool kReturnsValue = false;
  static void run(Args...) {}
};

template <class Fn>
class KernelTable {
 public:
  explicit KernelTable(const char* name) : name_(name) {}
  void set(DeviceType device, DType dtype, Fn* fn) { table_[index(device, dtype)] = fn; }
  /// The kernel for (device, dtype), or an error naming the op, device and dtype. On meta: a
  /// kernel that does nothing; a kernel that returns a value (it reads the data) is an error.
  Fn* get(Device device, DType dtype) const {
    if (device.type == DeviceType::meta) {
      if constexpr (MetaKernel<Fn>::kReturnsValue) {
        fail("{}: a meta tensor has shapes only, no values to compute {} from", name_, name_);
      } else {
        return &MetaKernel<Fn>::run;
      }
    }
    Fn* fn = table_[index(device.type, dtype)];
    if (fn == nullptr) {
      fail("{}: no kernel for device {} and dtype {}", name_, device_name(device),
           dtype_name(dtype));
    }
    return fn;
  }
  /// True when get(device, dtype) gives a kernel. On meta: when some device has one for the
  /// dtype, so that an op on meta takes the path (fused or composite) a real device takes and
  /// meta measures the memory that path holds.
  bool has(DeviceType device, DType dtype) const {
    if (device != DeviceType::meta) return table_[index(device, dtype)] != nullptr;
    if constexpr (MetaKernel<Fn>::kReturnsValue) return false;
    for (size_t d = 0; d < kNumDeviceTypes; ++d) {
      if (table_[index(static_cast<DeviceType>(d), dtype)] != nullptr) return true;
    }
    return false;
  }

 private:
  static size_t index(DeviceType d, DType t) {
    return static_cast<size_t>(d) * kNumDTypes + static_cast<size_t>(t);
  }
  const char* name_;
  std::array<Fn*, kNumDeviceTypes * kNumDTypes> table_{};
};

}  // namespace moxing::kernels

/// Declares the table `name()` for kernels of function type `fn_type` (in a kernels header).
#define MOXING_DECLARE_KERNEL(name, fn_type) ::moxing::kernels::KernelTable<fn_type>& name()

/// Defines the table (in exactly one .cpp: the op file). Function-local static: no init-order
/// problem with registrations in other translation units.
#define MOXING_DEFINE_KERNEL(name, fn_type)                      \
  ::moxing::kernels::KernelTable<fn_type>& name() {              \
    static ::moxing::kernels::KernelTable<fn_type> table(#name); \
    return table;                                                \
  }

#define MOXING_CONCAT_INNER(a, b) a##b
#define MOXING_CONCAT(a, b) MOXING_CONCAT_INNER(a, b)

/// Registers fn for (device, dtype) in table `name` at static-initialization time.
#define MOXING_REGISTER_KERNEL(name, device, dtype, fn)                                         \
  static const bool MOXING_CONCAT(moxing_reg_, __COUNTER__) [[maybe_unused]] =                  \
      (::moxing::kernels::name().set(::moxing::DeviceType::device, ::moxing::DType::dtype, fn), \
       true)
