// One allocator per device type, found in a small registry: Storage::allocate asks the one
// registered for its device. The cpu allocator (caching, 64-byte aligned) and the meta
// allocator (records sizes, allocates nothing) register themselves; a CUDA build adds its own.
// Not a memory pool API for users: they create tensors, not blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "moxing/core/dtype.h"

namespace moxing {

/// Counters an allocator keeps; bytes are the sizes storages asked for.
struct AllocatorStats {
  size_t bytes_in_use = 0;   // held by live storages now
  size_t peak_bytes = 0;     // the most bytes_in_use has been
  uint64_t allocations = 0;  // storages allocated since the program started
  size_t cached_bytes = 0;   // freed blocks kept for reuse (cpu: at most max(peak, 256 MiB))
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  /// nbytes on device: the first element's address (null on meta) and its owner, whose
  /// deleter gives the bytes back.
  virtual std::shared_ptr<void> allocate(size_t nbytes, Device device) = 0;
  virtual AllocatorStats stats() const = 0;
  /// Starts peak_bytes over from bytes_in_use (to measure the peak of one piece of work).
  virtual void reset_peak() = 0;
};

/// Makes a the allocator of every device of this type (a lives for the whole program).
void register_allocator(DeviceType type, Allocator* a);
/// The allocator of the device type; an error naming the device when none is registered.
Allocator& allocator_for(DeviceType type);
/// Counters of the allocator for the device type (all zero when none is registered).
AllocatorStats allocator_stats(DeviceType type);
/// Starts the device type's peak_bytes over from its bytes_in_use.
void allocator_reset_peak(DeviceType type);
/// Bytes held by live storages on the device type now (0 on meta, which holds none).
size_t allocator_bytes_in_use(DeviceType type);

}  // namespace moxing
