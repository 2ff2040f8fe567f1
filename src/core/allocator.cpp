// The allocator registry, the CPU allocator and the meta allocator. CPU: 64-byte aligned
// blocks; large blocks are cached by size class so that a training step reusing the same (or
// nearby) shapes does not page-fault fresh memory every time, the cache bounded by the
// program's peak use. Meta: sizes only, no bytes.
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

// Counters shared by the allocators below; relaxed atomics, read only for statistics.
struct Counters {
  std::atomic<size_t> in_use{0};
  std::atomic<size_t> peak{0};
  std::atomic<size_t> peak_ever{0};  // not reset: what the cache may hold
  std::atomic<uint64_t> allocations{0};

  void on_allocate(size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    size_t now = in_use.fetch_add(n, std::memory_order_relaxed) + n;
    for (std::atomic<size_t>* m : {&peak, &peak_ever}) {
      size_t p = m->load(std::memory_order_relaxed);
      while (now > p && !m->compare_exchange_weak(p, now, std::memory_order_relaxed)) {
      }
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

Counters& cpu_counters() {
  static Counters* c = new Counters();  // never destroyed, as the cache
  return *c;
}

// Bytes kept cached at most: as many as the program has ever had in use at once (a training
// step that frees its activations finds them again in the next one, which would otherwise
// page-fault fresh memory), at least 256 MiB and at most a quarter of the machine's memory.
// So a process holds at most about twice its peak, whatever shapes it goes through.
size_t cache_limit() {
  static const size_t quarter = [] {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t q = pages > 0 && page > 0 ? static_cast<size_t>(pages) * page / 4 : 0;
    return std::max(q, size_t{1} << 30);
  }();
  const size_t peak = cpu_counters().peak_ever.load(std::memory_order_relaxed);
  return std::min(quarter, std::max(peak, size_t{256} << 20));
}

// Free blocks by size class, and by age so that the least recently freed go first when the
// cache is over its limit (variable-length batches make sizes that may never come back).
struct Cache {
  std::mutex mu;
  std::multimap<size_t, std::pair<uint64_t, void*>> free_blocks;  // size -> (stamp, block)
  std::map<uint64_t, std::pair<size_t, void*>> by_age;            // stamp -> (size, block)
  uint64_t next_stamp = 0;
  size_t cached = 0;

  void evict_oldest() {
    auto old = by_age.begin();
    auto [size, block] = old->second;
    auto range = free_blocks.equal_range(size);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second.second == block) {
        free_blocks.erase(it);
        break;
      }
    }
    by_age.erase(old);
    cached -= size;
    std::free(block);
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: storages may outlive static destructors
  return *c;
}

// Small blocks: 64-byte multiples (malloc's). Cached ones: size classes, 8 per doubling above
// 1 MiB (at most 12.5% more than asked) and 4 KiB pages below, so that the many nearby sizes
// of variable-length batches share blocks.
size_t round_size(size_t n) {
  if (n < kCacheMin) return (n + kAlign - 1) / kAlign * kAlign;
  size_t step = 4096;
  if (n > (size_t{1} << 20)) {
    int top = 63 - __builtin_clzll(static_cast<unsigned long long>(n - 1));  // 2^top < n
    step = size_t{1} << (top - 3);
  }
  return (n + step - 1) / step * step;
}

void* cpu_alloc(size_t n) {
  n = round_size(std::max<size_t>(n, 1));
  if (n >= kCacheMin) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.find(n);
    if (it != c.free_blocks.end()) {
      auto [stamp, p] = it->second;
      c.free_blocks.erase(it);
      c.by_age.erase(stamp);
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
    const size_t limit = cache_limit();
    if (n <= limit) {
      while (c.cached + n > limit) c.evict_oldest();
      const uint64_t stamp = c.next_stamp++;
      c.free_blocks.emplace(n, std::make_pair(stamp, p));
      c.by_age.emplace(stamp, std::make_pair(n, p));
      c.cached += n;
      return;
    }
  }
  std::free(p);
}

class CpuAllocator final : public Allocator {
 public:
  std::shared_ptr<void> allocate(size_t nbytes, Device) override {
    void* p = cpu_alloc(nbytes);
    cpu_counters().on_allocate(nbytes);
    return std::shared_ptr<void>(p, [nbytes](void* q) {
      cpu_counters().on_free(nbytes);
      cpu_free(q, nbytes);
    });
  }
  AllocatorStats stats() const override {
    AllocatorStats s = cpu_counters().get();
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    s.cached_bytes = c.cached;
    return s;
  }
  void reset_peak() override { cpu_counters().reset_peak(); }
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
