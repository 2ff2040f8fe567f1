// CPU strided copy and dtype conversion.
#include <cstring>

#include "kernels/copy.h"
#include "kernels/cpu/loops.h"
#include "moxing/core/dtype_visit.h"

namespace moxing::kernels::cpu {
namespace {

template <class D>
void copy(const Tensor& dst, const Tensor& src) {
  Tensor out = dst;
  visit_dtype(src.dtype(), [&](auto tag) {
    using S = decltype(tag);
    if constexpr (std::is_same_v<S, D>) {
      for_each_strided<2>({&out, &src}, [](char* const* p, const int64_t* s, int64_t n) {
        if (s[0] == sizeof(D) && s[1] == sizeof(D)) {
          std::memcpy(p[0], p[1], static_cast<size_t>(n) * sizeof(D));
        } else {
          for (int64_t i = 0; i < n; ++i) {
            *reinterpret_cast<D*>(p[0] + i * s[0]) = *reinterpret_cast<const D*>(p[1] + i * s[1]);
          }
        }
      });
    } else {
      unary_loop<S, D>(src, out, [](S v) { return cast_value<D>(v); });
    }
  });
}

}  // namespace

MOXING_REGISTER_KERNEL(copy_forward, cpu, f32, copy<float>);
MOXING_REGISTER_KERNEL(copy_forward, cpu, f64, copy<double>);
MOXING_REGISTER_KERNEL(copy_forward, cpu, bf16, copy<BFloat16>);
MOXING_REGISTER_KERNEL(copy_forward, cpu, f16, copy<Half>);
MOXING_REGISTER_KERNEL(copy_forward, cpu, i64, copy<int64_t>);
MOXING_REGISTER_KERNEL(copy_forward, cpu, i32, copy<int32_t>);
MOXING_REGISTER_KERNEL(copy_forward, cpu, u8, copy<uint8_t>);
MOXING_REGISTER_KERNEL(copy_forward, cpu, i8, copy<int8_t>);
MOXING_REGISTER_KERNEL(copy_forward, cpu, boolean, copy<bool>);

}  // namespace moxing::kernels::cpu
