// Calls a generic lambda with a value of the C++ type matching a DType, and converts
// between element types (bf16/f16 through f32). Used by creation, conversion and printing,
// never for per-op dispatch (that goes through kernel tables).
#pragma once

#include <cstdint>
#include <type_traits>

#include "moxing/core/dtype.h"
#include "moxing/core/error.h"

namespace moxing {

/// Calls f(T{}) with T the element type of t (from MOXING_FORALL_DTYPES); an error for a
/// quantized type.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
#define MOXING_DTYPE_VISIT(e, T, name, st, torch, fl) \
  case DType::e:                                      \
    return f(T{});
    MOXING_FORALL_DTYPES(MOXING_DTYPE_VISIT)
#undef MOXING_DTYPE_VISIT
    default:
      break;
  }
  if (is_quantized(t)) {
    fail("{} is a quantized block type, not an element type: dequantize it with .to(f32) first",
         dtype_name(t));
  }
  fail("unknown dtype {}", static_cast<int>(t));
}

/// Element conversion with C++ semantics, bf16/f16 going through f32.
template <class To, class From>
To cast_value(From v) {
  if constexpr (std::is_same_v<From, BFloat16>) {
    return cast_value<To>(from_bf16(v));
  } else if constexpr (std::is_same_v<From, Half>) {
    return cast_value<To>(from_f16(v));
  } else if constexpr (std::is_same_v<To, BFloat16>) {
    return to_bf16(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, Half>) {
    return to_f16(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From{};
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace moxing
