// The quantized products for AVX-512 with VNNI (vpdpbusd on 256-bit vectors: AVX512VL +
// AVX512VNNI). CMakeLists.txt compiles this file with those flags; kernels/cpu/quant.cpp calls
// it only on a CPU that has them.
#if defined(__x86_64__)
#define QS_SUFFIX avx512
#define QS_VNNI 1
#include "kernels/cpu/quant_simd.inc"
#endif
