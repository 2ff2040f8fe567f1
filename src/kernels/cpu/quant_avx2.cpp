// The quantized products for AVX2 + FMA + F16C (CMakeLists.txt compiles this file with those
// flags; kernels/cpu/quant.cpp calls it only on a CPU that has them).
#if defined(__x86_64__)
#define QS_SUFFIX avx2
#define QS_VNNI 0
#include "kernels/cpu/quant_simd.inc"
#endif
