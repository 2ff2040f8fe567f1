// quantize / dequantize and the products with quantized weights: argument checks, output
// shapes, the kernel calls and the backward wrt the f32 inputs.
#include "moxing/ops/quant.h"

#include <algorithm>
#include <cmath>

#include "kernels/quant.h"
#include "moxing/autograd/node.h"
#include "moxing/core/parallel.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(quantize_rows, QuantizeFn);
MOXING_DEFINE_KERNEL(dequantize_rows, DequantizeFn);
MOXING_DEFINE_KERNEL(quant_matmul, QuantMatmulFn);
MOXING_DEFINE_KERNEL(quant_matmul_grad, QuantMatmulGradFn);
}  // namespace kernels

namespace {

void check_quantized(const char* op, const Tensor& q, const char* what) {
  MOXING_CHECK(q.defined(), "{}: {} is undefined", op, what);
  MOXING_CHECK(is_quantized(q.dtype()),
               "{}: {} must have a quantized dtype (q8_0, q4_0, q4_1, q4_k, q6_k), got {}", op,
               what, dtype_name(q.dtype()));
  MOXING_CHECK(q.is_contiguous(), "{}: {} of shape {} must be contiguous", op, what,
               shape_str(q.shape()));
}

// Records dx = (dy * col_scale) w for out = x w^T (w of dtype w_dtype: a quantized type or i8);
// col_scale may be undefined (none).
void record_input_gradient(const char* op, const Tensor& out, const Tensor& x, const Tensor& w,
                           const Tensor& col_scale, int64_t M, int64_t N, int64_t K) {
  if (!autograd::any_requires_grad({x})) return;
  Tensor wd = w.detach();
  Tensor s = col_scale.defined() ? col_scale.detach() : Tensor();
  Shape x_shape = x.shape();
  autograd::record(op, {out}, {x}, [wd, s, x_shape, M, N, K](const std::vector<Tensor>& g) {
    Tensor gc = contiguous(s.defined() ? mul(g[0], s) : g[0]);
    Tensor dx = empty(x_shape, gc.options());
    if (!dx.is_meta() && dx.numel() > 0) {
      kernels::quant_matmul_grad().get(gc.device(), wd.dtype())(gc.data<float>(), M, N,
                                                                wd.raw_data(), K, dx.data<float>());
    }
    return std::vector<Tensor>{dx};
  });
}

// out + b for a bias of shape [N] (checked), or out without one
Tensor add_bias(const char* op, const Tensor& out, const Tensor& b, const Tensor& w) {
  if (!b.defined()) return out;
  const int64_t N = w.size(0);
  MOXING_CHECK(b.dim() == 1 && b.size(0) == N,
               "{}: bias shape {} does not match weight shape {} (expected [{}])", op,
               shape_str(b.shape()), shape_str(w.shape()), N);
  return add(out, b);
}

}  // namespace

Tensor quantize(const Tensor& x, DType type) {
  MOXING_CHECK(x.defined(), "quantize: undefined tensor");
  MOXING_CHECK(is_quantized(type), "quantize: {} is not a quantized dtype (q8_0, q4_0, q4_1, q4_k)",
               dtype_name(type));
  MOXING_CHECK(x.dim() >= 1 && x.size(-1) % dtype_block_numel(type) == 0,
               "quantize: {} stores blocks of {} values along the last dimension, and shape {} "
               "does not divide into them",
               dtype_name(type), dtype_block_numel(type), shape_str(x.shape()));
  Tensor xf = contiguous(x.detach().to(DType::f32));
  Tensor out = empty(x.shape(), x.options().dtype(type));
  if (out.is_meta() || out.numel() == 0) return out;
  kernels::quantize_rows().get(x.device(), type)(xf.data<float>(), xf.numel(), out.raw_data());
  return out;
}

Tensor dequantize(const Tensor& q) {
  check_quantized("dequantize", q, "the tensor");
  Tensor out = empty(q.shape(), q.options().dtype(DType::f32));
  if (out.is_meta() || out.numel() == 0) return out;
  kernels::dequantize_rows().get(q.device(), q.dtype())(q.raw_data(), q.numel(), out.data<float>());
  return out;
}

Tensor quantized_linear(const Tensor& x, const Tensor& w, const Tensor& b, bool f32_compute) {
  check_quantized("quantized_linear", w, "weight");
  MOXING_CHECK(x.defined() && x.dtype() == DType::f32,
               "quantized_linear: the input must be f32, got {}",
               x.defined() ? dtype_name(x.dtype()) : "an undefined tensor");
  check_same_device("quantized_linear", {x, w, b});
  MOXING_CHECK(w.dim() == 2, "quantized_linear: weight must be 2-D (C_out, C_in), got shape {}",
               shape_str(w.shape()));
  MOXING_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1),
               "quantized_linear: input shape {} does not match weight shape {} (C_in {} vs {})",
               shape_str(x.shape()), shape_str(w.shape()), x.dim() >= 1 ? x.size(-1) : 0,
               w.size(1));
  const int64_t N = w.size(0), K = w.size(1);
  const int64_t M = x.numel() / std::max<int64_t>(K, 1);
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor xc = contiguous(x.detach());
  Tensor out = empty(out_shape, x.options());
  if (!out.is_meta() && out.numel() > 0) {
    kernels::quant_matmul().get(x.device(), w.dtype())(xc.data<float>(), M, K, w.raw_data(), N,
                                                       out.data<float>(), f32_compute);
  }
  record_input_gradient("quantized_linear", out, x, w, Tensor(), M, N, K);
  return add_bias("quantized_linear", out, b, w);
}

Int8Rows quantize_int8_rows(const Tensor& w) {
  MOXING_CHECK(w.defined() && w.dim() == 2, "quantize_int8_rows: w must be 2-D (N, K), got {}",
               w.defined() ? shape_str(w.shape()) : "an undefined tensor");
  Tensor wf = contiguous(w.detach().to(DType::f32));
  const int64_t N = wf.size(0), K = wf.size(1);
  Int8Rows out{empty({N, K}, wf.options().dtype(DType::i8)), empty({N}, wf.options())};
  if (wf.is_meta()) return out;
  const float* p = wf.data<float>();
  auto* q = out.weight.data<int8_t>();
  float* s = out.scale.data<float>();
  parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float amax = 0.f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(p[n * K + k]));
      s[n] = amax / 127.f;
      const float id = amax != 0.f ? 127.f / amax : 0.f;
      for (int64_t k = 0; k < K; ++k) {
        q[n * K + k] = static_cast<int8_t>(std::nearbyint(p[n * K + k] * id));
      }
    }
  });
  return out;
}

Tensor int8_linear(const Tensor& x, const Tensor& weight, const Tensor& scale, const Tensor& b,
                   bool f32_compute) {
  MOXING_CHECK(weight.defined() && weight.dtype() == DType::i8 && weight.dim() == 2 &&
                   weight.is_contiguous(),
               "int8_linear: weight must be a contiguous 2-D i8 tensor, got {}",
               weight.defined()
                   ? dtype_name(weight.dtype()) + std::string(" ") + shape_str(weight.shape())
                   : "an undefined tensor");
  MOXING_CHECK(scale.defined() && scale.dtype() == DType::f32 && scale.dim() == 1 &&
                   scale.size(0) == weight.size(0),
               "int8_linear: scale must be f32 of shape [{}] (one per output row), got {}",
               weight.size(0), scale.defined() ? shape_str(scale.shape()) : "undefined");
  MOXING_CHECK(
      x.defined() && x.dtype() == DType::f32 && x.dim() >= 1 && x.size(-1) == weight.size(1),
      "int8_linear: input {} does not match weight shape {} (C_in {})",
      x.defined() ? shape_str(x.shape()) : "undefined", shape_str(weight.shape()), weight.size(1));
  check_same_device("int8_linear", {x, weight, scale, b});
  const int64_t N = weight.size(0), K = weight.size(1);
  const int64_t M = x.numel() / std::max<int64_t>(K, 1);
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor xc = contiguous(x.detach());
  Tensor out = empty(out_shape, x.options());
  if (!out.is_meta() && out.numel() > 0) {
    kernels::quant_matmul().get(x.device(), DType::i8)(xc.data<float>(), M, K, weight.raw_data(), N,
                                                       out.data<float>(), f32_compute);
  }
  out = mul(out, scale.detach());  // the row scales, broadcast over the outputs' last dim
  record_input_gradient("int8_linear", out, x, weight, scale, M, N, K);
  return add_bias("int8_linear", out, b, weight);
}

Tensor quantized_embedding(const Tensor& table, const Tensor& ids) {
  check_quantized("quantized_embedding", table, "table");
  MOXING_CHECK(ids.defined() && ids.dtype() == DType::i64,
               "quantized_embedding: ids must be i64, got {}",
               ids.defined() ? dtype_name(ids.dtype()) : "an undefined tensor");
  MOXING_CHECK(table.dim() == 2, "quantized_embedding: the table must be 2-D (V, C), got shape {}",
               shape_str(table.shape()));
  check_same_device("quantized_embedding", {table, ids});
  const int64_t V = table.size(0), C = table.size(1);
  Shape out_shape = ids.shape();
  out_shape.push_back(C);
  Tensor out = empty(out_shape, table.options().dtype(DType::f32));
  if (out.is_meta() || out.numel() == 0) return out;
  Tensor ic = contiguous(ids);
  const int64_t* id = ic.data<int64_t>();
  const size_t row_bytes = dtype_nbytes(table.dtype(), C);
  const auto* base = static_cast<const uint8_t*>(table.raw_data());
  kernels::DequantizeFn* deq = kernels::dequantize_rows().get(table.device(), table.dtype());
  float* o = out.data<float>();
  for (int64_t k = 0; k < ic.numel(); ++k) {
    MOXING_CHECK(id[k] >= 0 && id[k] < V,
                 "quantized_embedding: id {} is out of range for a table of {} rows", id[k], V);
    deq(base + static_cast<size_t>(id[k]) * row_bytes, C, o + k * C);
  }
  return out;
}

const char* quantized_products_isa() { return kernels::quant_isa_name(kernels::quant_isa()); }

}  // namespace moxing
