// `moxing bench`: the machine's roofline measured in the same run as moxing's own ops.
// Compute: FP32 FMA peak from a register-only loop (AVX2 and AVX-512 where present; the
// higher is the peak) against sgemm through moxing::matmul. Memory: a STREAM-style triad
// against elementwise add and softmax, counting the bytes each must move at least once.
#include "command.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#ifdef __x86_64__
#include <immintrin.h>
#endif
#include <omp.h>

#include "moxing/moxing.h"
#include "moxing/ops/linalg.h"
#include "moxing/ops/softmax.h"
#include "timing.h"

extern "C" char* openblas_get_corename(void);

namespace moxing::tools {
namespace {

struct BenchOptions {
  bool json = false;
  int threads = 0;  // 0: keep the configured pool size
  bool quick = false;
};

constexpr int kChains = 12;  // independent FMA chains: enough to cover latency x ports

#ifdef __x86_64__
__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t iters) {
  __m256 acc[kChains];
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(1.0f + static_cast<float>(i));
  for (int64_t k = 0; k < iters; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0];
}

__attribute__((target("avx512f"))) float fma_loop_avx512(int64_t iters) {
  __m512 acc[kChains];
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(1.0f + static_cast<float>(i));
  for (int64_t k = 0; k < iters; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  return out[0];
}
#endif

// GFLOP/s of `lanes`-wide FMA loops on every thread.
double fma_gflops(int threads, int lanes, int64_t iters, float (*loop)(int64_t)) {
  volatile float sink = 0;
  double t = best_time(3, [&] {
    float s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
    s += loop(iters);
    sink = sink + s;
  });
  return static_cast<double>(threads) * static_cast<double>(iters) * kChains * lanes * 2 / t / 1e9;
}

struct Peak {
  double gflops = 0;
  std::string isa = "scalar";
  double avx2_gflops = 0;  // the peak of 256-bit FMA alone, what an AVX2 GEMM kernel can reach
};

Peak measure_fma_peak(int threads, bool quick) {
  Peak p;
  int64_t iters = quick ? 2000000 : 20000000;
#ifdef __x86_64__
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    double g = fma_gflops(threads, 8, iters, fma_loop_avx2);
    p.avx2_gflops = g;
    if (g > p.gflops) {
      p.gflops = g;
      p.isa = "avx2";
    }
  }
  if (__builtin_cpu_supports("avx512f")) {
    double g = fma_gflops(threads, 16, iters / 2, fma_loop_avx512);
    if (g > p.gflops) {
      p.gflops = g;
      p.isa = "avx512";
    }
  }
#endif
  return p;
}

double add_gbps(int64_t n, int reps) {
  Tensor a = rand({n}), b = rand({n});
  double t = best_time(reps, [&] { Tensor c = add(a, b); });
  return 3.0 * static_cast<double>(n) * sizeof(float) / t / 1e9;
}

// softmax over rows of 1024: one read and one write of the tensor at the least
double softmax_gbps(int64_t n, int reps) {
  const int64_t cols = 1024;
  Tensor x = randn({n / cols, cols});
  double t = best_time(reps, [&] { Tensor y = softmax(x, -1); });
  return 2.0 * static_cast<double>(n) * sizeof(float) / t / 1e9;
}

struct Gemm {
  double gflops = 0;
  double max_rel_error = 0;  // sampled entries against f64 dot products
};

Gemm sgemm(int64_t n, bool quick) {
  Tensor a = randn({n, n}), b = randn({n, n});
  int reps = quick ? 1 : (n <= 512 ? 20 : n <= 1024 ? 8 : 3);
  Tensor c;
  double t = best_time(reps, [&] { c = matmul(a, b); });
  Gemm g;
  g.gflops = 2.0 * static_cast<double>(n) * n * n / t / 1e9;
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const float* pc = c.data<float>();
  for (int64_t s = 0; s < 64; ++s) {
    int64_t i = (s * 7919) % n, j = (s * 104729 + 13) % n;
    double ref = 0, mag = 0;
    for (int64_t k = 0; k < n; ++k) {
      ref += static_cast<double>(pa[i * n + k]) * pb[k * n + j];
      mag += std::abs(static_cast<double>(pa[i * n + k]) * pb[k * n + j]);
    }
    g.max_rel_error = std::max(g.max_rel_error, std::abs(pc[i * n + j] - ref) / mag);
  }
  return g;
}

}  // namespace

int run_bench(const BenchOptions& opt) {
  if (opt.threads > 0) set_num_threads(opt.threads);
  NoGradGuard no_grad;
  int threads = num_threads();
  Peak peak = measure_fma_peak(threads, opt.quick);
  std::vector<int64_t> sizes = {256, 512, 1024, 2048};
  std::vector<double> gemm;
  double gemm_error = 0;
  for (int64_t n : sizes) {
    Gemm g = sgemm(n, opt.quick);
    gemm.push_back(g.gflops);
    gemm_error = std::max(gemm_error, g.max_rel_error);
  }
  int64_t n = opt.quick ? (int64_t{1} << 20) : (int64_t{1} << 25);  // 128 MiB per f32 array
  int reps = opt.quick ? 2 : 5;
  double triad = triad_gbps(n, reps);
  double add_bw = add_gbps(n, reps);
  double softmax_bw = softmax_gbps(n, reps);
  const char* core = openblas_get_corename();

  if (opt.json) {
    nlohmann::json j;
    j["threads"] = threads;
    j["fma_peak_gflops"] = peak.gflops;
    j["fma_isa"] = peak.isa;
    j["fma_peak_avx2_gflops"] = peak.avx2_gflops;
    j["openblas_core"] = core ? core : "unknown";
    for (size_t i = 0; i < sizes.size(); ++i) {
      j["sgemm_gflops"][std::to_string(sizes[i])] = gemm[i];
      j["sgemm_peak_ratio"][std::to_string(sizes[i])] =
          peak.gflops > 0 ? gemm[i] / peak.gflops : 0.0;
    }
    j["sgemm_max_rel_error"] = gemm_error;
    j["triad_gbps"] = triad;
    j["add_gbps"] = add_bw;
    j["softmax_gbps"] = softmax_bw;
    j["add_triad_ratio"] = add_bw / triad;
    j["softmax_triad_ratio"] = softmax_bw / triad;
    j["quick"] = opt.quick;
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("moxing bench: %d threads, OpenBLAS core %s%s\n\n", threads, core ? core : "unknown",
              opt.quick ? " (quick: numbers are not meaningful)" : "");
  std::printf("%-28s %10s %12s\n", "compute (f32)", "GFLOP/s", "of peak");
  std::printf("%-28s %10.1f %11.0f%%\n", ("FMA peak (" + peak.isa + ")").c_str(), peak.gflops,
              100.0);
  if (peak.isa == "avx512") {
    std::printf("%-28s %10.1f %11.0f%%\n", "FMA peak (avx2 only)", peak.avx2_gflops,
                100.0 * peak.avx2_gflops / peak.gflops);
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string label = "sgemm " + std::to_string(sizes[i]);
    std::printf("%-28s %10.1f %11.0f%%\n", label.c_str(), gemm[i],
                peak.gflops > 0 ? 100.0 * gemm[i] / peak.gflops : 0.0);
  }
  std::printf("sgemm results checked against f64 dot products: max relative error %.2g%s\n",
              gemm_error, gemm_error < 1e-4 ? "" : "  <-- WRONG RESULTS");
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  // the CLI sets SkylakeX itself where OpenBLAS fell back to Prescott (tools/moxing/main.cpp)
  if (forced != nullptr && *forced != '\0' && peak.isa == "avx512" &&
      std::string(forced) != "SkylakeX") {
    std::printf(
        "note: OPENBLAS_CORETYPE=%s limits OpenBLAS to that kernel while this CPU has "
        "AVX-512;\n      unset it (and OPENBLAS_L2_SIZE) to let OpenBLAS pick its own.\n",
        forced);
  }
  std::printf("\n%-28s %10s %12s\n", "memory (f32, 128 MiB arrays)", "GB/s", "of triad");
  std::printf("%-28s %10.1f %11.0f%%\n", "triad a = b + s*c", triad, 100.0);
  std::printf("%-28s %10.1f %11.0f%%\n", "add c = a + b", add_bw, 100.0 * add_bw / triad);
  std::printf("%-28s %10.1f %11.0f%%\n", "softmax rows of 1024", softmax_bw,
              100.0 * softmax_bw / triad);
  return 0;
}

namespace {

Command add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd =
      app.add_subcommand("bench", "Measure GEMM, FMA peak and memory bandwidth on this machine");
  cmd->add_flag("--json", o->json, "Print the results as one JSON object on stdout");
  cmd->add_option("--threads", o->threads,
                  "Threads to use (default: MOXING_NUM_THREADS or all cores)");
  cmd->add_flag("--quick", o->quick, "Fewer repetitions (for smoke tests)");
  return {cmd, [o] { return run_bench(*o); }};
}

MOXING_CLI_COMMAND(add_bench_command);

}  // namespace

}  // namespace moxing::tools
