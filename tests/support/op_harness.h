// One harness for every op family: each row of a family's case table becomes four tests:
//   values      - f32 output and input gradients against the PyTorch fixture
//   gradcheck   - f64 central differences on the fixture inputs
//   noncontig   - the same gradcheck, and the same output, on non-contiguous copies
//   meta        - the inputs on the meta device: the output (and each input gradient) has the
//                 cpu result's shape and dtype; a row that needs values expects the meta error
// Fixture files are tests/fixtures/<family>.json, written by tests/fixtures/<family>.py.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "moxing/moxing.h"

namespace moxing::testing {

struct OpCase {
  std::string name;  // key in the fixture file
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  double atol = 1e-5;  // f32 value tolerance: |ours - ref| <= atol + rtol |ref|
  double rtol = 1e-4;
  bool gradcheck = true;  // false for ops without a gradient (comparisons, argmax)
  double gradcheck_atol = 1e-5;
  bool needs_values = false;  // the op reads its inputs' values (index checks): meta refuses it
};

/// The row c marked as reading its inputs' values (index range checks): on meta it must fail
/// with the meta error.
inline OpCase needs_values(OpCase c) {
  c.needs_values = true;
  return c;
}

/// Registers the gtest cases for a family's table (call from a static initializer).
bool register_op_cases(const std::string& family, const std::vector<OpCase>& cases);

/// Loads one tensor from a fixture JSON object {"shape", "dtype", "data"}.
Tensor tensor_from_json_text(const std::string& json_object);

/// A non-contiguous tensor with the same values (every other element of a larger buffer).
Tensor noncontiguous_copy(const Tensor& t);

/// The message of the moxing::Error that f throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f);
/// True when s contains part.
inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

/// Largest |a - b| violation of atol + rtol |b| as a message, or "" when all close.
std::string compare(const Tensor& actual, const Tensor& expected, double atol, double rtol);

}  // namespace moxing::testing

#define MOXING_OP_CASES(family, ...)                                             \
  static const bool MOXING_CONCAT(moxing_cases_, __COUNTER__) [[maybe_unused]] = \
      ::moxing::testing::register_op_cases(family, __VA_ARGS__)

#ifndef MOXING_CONCAT
#define MOXING_CONCAT_INNER(a, b) a##b
#define MOXING_CONCAT(a, b) MOXING_CONCAT_INNER(a, b)
#endif
