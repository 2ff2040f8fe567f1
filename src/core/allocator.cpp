// CPU allocator: 64-byte aligned blocks; large blocks are cached by size so that a training
// step reusing the same shapes does not page-fault fresh memory every time.
#include <cstdlib>
#include <map>
#include <mutex>

#include "moxing/core/tensor.h"

namespace moxing {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kCacheMin = 1 << 16;            // blocks below this go straight to malloc
constexpr size_t kCacheLimit = size_t{2} << 30;  // bytes kept cached at most

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
    if (c.cached + n <= kCacheLimit) {
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
