// A tiny data set in Fashion-MNIST's file layout (uncompressed IDX files of 28x28 u8 images and
// their labels, train and t10k), for tests that run the fashion-mnist data source on a few
// images: image i of class i % 10 is a bright horizontal band at rows 2k..2k+8 over seeded noise.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "moxing/core/rng.h"

namespace moxing::testing {

inline void write_idx(const std::string& path, const std::vector<uint32_t>& dims,
                      const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> b = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  }
  b.insert(b.end(), payload.begin(), payload.end());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// Writes dir/{train,t10k}-{images-idx3,labels-idx1}-ubyte with n_train and n_test images.
inline void write_tiny_fashion(const std::string& dir, uint32_t n_train, uint32_t n_test,
                               uint64_t seed = 1) {
  std::filesystem::create_directories(dir);
  Generator gen(seed);
  uint64_t block = 0;
  for (const auto& [prefix, n] : {std::pair<std::string, uint32_t>{"train", n_train},
                                  std::pair<std::string, uint32_t>{"t10k", n_test}}) {
    std::vector<uint8_t> pixels, labels;
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t k = i % 10;
      labels.push_back(static_cast<uint8_t>(k));
      for (uint32_t p = 0; p < 28 * 28; ++p) {
        const uint32_t row = p / 28;
        const uint8_t noise = static_cast<uint8_t>(gen.block(block++)[0] % 40);
        pixels.push_back(row >= 2 * k && row < 2 * k + 8 ? static_cast<uint8_t>(200 + noise / 2)
                                                         : noise);
      }
    }
    write_idx(dir + "/" + prefix + "-images-idx3-ubyte", {n, 28, 28}, pixels);
    write_idx(dir + "/" + prefix + "-labels-idx1-ubyte", {n}, labels);
  }
}

}  // namespace moxing::testing
