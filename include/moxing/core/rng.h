// Seeded counter-based RNG (Philox4x32-10). Element i of a draw depends only on the seed,
// the generator offset and i, so results are the same whatever the thread count.
#pragma once

#include <array>
#include <cstdint>

namespace moxing {

/// Philox4x32-10 block: 4 random 32-bit words for (counter, key).
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

/// A random stream: seed plus the number of 4-word blocks already used.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  /// Reserves `blocks` blocks and returns the first block index to use.
  uint64_t advance(uint64_t blocks) {
    uint64_t o = offset_;
    offset_ += blocks;
    return o;
  }
  /// Block `index` of this stream.
  std::array<uint32_t, 4> block(uint64_t index) const;

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

/// The process-wide default generator used when none is passed.
Generator& default_generator();
/// Seeds the default generator, like torch.manual_seed.
void manual_seed(uint64_t seed);

/// Uniform float in [0, 1) from a 32-bit word (24 bits of mantissa).
inline float u32_to_unit_float(uint32_t x) {
  return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
}
/// Uniform double in [0, 1) from two 32-bit words (53 bits).
inline double u64_to_unit_double(uint32_t hi, uint32_t lo) {
  uint64_t v = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(v & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

}  // namespace moxing
