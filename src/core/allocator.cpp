// The allocator registry, the CPU allocator and the meta allocator. CPU: 64-byte aligned
// blocks; large blocks are cached by size so that a training step reusing the same shapes does
// not page-fault fresh memory every time. Meta: sizes only, no bytes.
#include "moxing/core/allocator.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>

#include "moxing/core/tensor.h"

namespace moxing {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kCacheMin = 1 << 16;  // blocks below this go straight to malloc

// Bytes kept cached at most: a quarter of the machine's memory (at least 2 GiB), enough for
// the activations of a GPT-2-small training step, which would otherwise be unmapped and
// page-faulted again every step.
size_t cache_limit() {
  static const size_t limit = [] {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t quarter = pages > 0 && page > 0 ? static_cast<size_t>(pages) * page / 4 : 0;
    return std::max(quarter, size_t{2} << 30);
  }();
  return limit;
}

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;
  size_t cached = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: storages may outlive static destructors
  return *c;
}

size_t round_size(size_t n) {
  if (n < kCacheMin) return (n + kAlign - 1) / kAlign * kAlign;
  size_t page = 4096;
  return (n + page - 1) / page * page;
}

void* cpu_alloc(size_t n) {
  n = round_size(std::max<size_t>(n, 1));
  if (n >= kCacheMin) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.find(n);
    if (it != c.free_blocks.end()) {
      void* p = it->second;
      c.free_blocks.erase(it);
      c.cached -= n;
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlign, n);
  if (p == nullptr) fail("out of memory allocating {} bytes", n);
  return p;
}

void cpu_free(void* p, size_t n) {
  n = round_size(std::max<size_t>(n, 1));
  if (n >= kCacheMin) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.cached + n <= cache_limit()) {
      c.free_blocks.emplace(n, p);
      c.cached += n;
      return;
    }
  }
  std::free(p);
}

// Counters shared by the allocators below; relaxed atomics, read only for statistics.
struct Counters {
  std::atomic<size_t> in_use{0};
  std::atomic<size_t> peak{0};
  std::atomic<uint64_t> allocations{0};

  void on_allocate(size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    size_t now = in_use.fetch_add(n, std::memory_order_relaxed) + n;
    size_t p = peak.load(std::memory_order_relaxed);
    while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
    }
  }
  void on_free(size_t n) { in_use.fetch_sub(n, std::memory_order_relaxed); }
  void reset_peak() {
    peak.store(in_use.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  AllocatorStats get() const {
    return {in_use.load(std::memory_order_relaxed), peak.load(std::memory_order_relaxed),
            allocations.load(std::memory_order_relaxed)};
  }
};

class CpuAllocator final : public Allocator {
 public:
  std::shared_ptr<void> allocate(size_t nbytes, Device) override {
    void* p = cpu_alloc(nbytes);
    counters_.on_allocate(nbytes);
    return std::shared_ptr<void>(p, [this, nbytes](void* q) {
      cpu_free(q, nbytes);
      counters_.on_free(nbytes);
    });
  }
  AllocatorStats stats() const override { return counters_.get(); }
  void reset_peak() override { counters_.reset_peak(); }

 private:
  Counters counters_;
};

// A meta storage keeps its nbytes (so views and sizes work as on any device) and a null data
// pointer. Its counters count the bytes the storages would hold, so that running a model on
// meta measures the memory a real run would need.
class MetaAllocator final : public Allocator {
 public:
  std::shared_ptr<void> allocate(size_t nbytes, Device) override {
    counters_.on_allocate(nbytes);
    return std::shared_ptr<void>(nullptr, [this, nbytes](void*) { counters_.on_free(nbytes); });
  }
  AllocatorStats stats() const override { return counters_.get(); }
  void reset_peak() override { counters_.reset_peak(); }

 private:
  Counters counters_;
};

std::array<Allocator*, kNumDeviceTypes>& registry() {
  static std::array<Allocator*, kNumDeviceTypes> r{};
  return r;
}

// never destroyed: storages may outlive static destructors
const bool kRegistered [[maybe_unused]] = [] {
  register_allocator(DeviceType::cpu, new CpuAllocator());
  register_allocator(DeviceType::meta, new MetaAllocator());
  return true;
}();

}  // namespace

void register_allocator(DeviceType type, Allocator* a) {
  registry()[static_cast<size_t>(type)] = a;
}

Allocator& allocator_for(DeviceType type) {
  Allocator* a = registry()[static_cast<size_t>(type)];
  if (a == nullptr) {
    fail("device {} is not available in this build (no allocator registered)",
         device_name(Device{type, 0}));
  }
  return *a;
}

AllocatorStats allocator_stats(DeviceType type) {
  Allocator* a = registry()[static_cast<size_t>(type)];
  return a != nullptr ? a->stats() : AllocatorStats{};
}

void allocator_reset_peak(DeviceType type) {
  if (Allocator* a = registry()[static_cast<size_t>(type)]; a != nullptr) a->reset_peak();
}

size_t allocator_bytes_in_use(DeviceType type) { return allocator_stats(type).bytes_in_use; }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  Allocator& a = allocator_for(device.type);
  auto s = std::make_shared<Storage>();
  s->nbytes = nbytes;
  s->device = device;
  s->owner = a.allocate(nbytes, device);
  s->data = s->owner.get();
  return s;
}

}  // namespace moxing
