// CPU allocator: 64-byte aligned blocks; large blocks are cached by size so that a training
// step reusing the same shapes does not page-fault fresh memory every time.
#include <unistd.h>

#include <algorithm>
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

}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  MOXING_CHECK(device.type == DeviceType::cpu, "device {} is not available in this build",
               device_name(device));
  auto s = std::make_shared<Storage>();
  s->nbytes = nbytes;
  s->device = device;
  void* p = cpu_alloc(nbytes);
  s->data = p;
  s->owner = std::shared_ptr<void>(p, [nbytes](void* q) { cpu_free(q, nbytes); });
  return s;
}

}  // namespace moxing
