// View ops (shared storage) and copies, with their backward formulas.
#include "moxing/ops/shape.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "kernels/copy.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/quant.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(copy_forward, CopyFn)
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);
  int64_t w = dim < 0 ? dim + n : dim;
  if (w < 0 || w >= n) {
    fail("{}: dim {} is out of range for a tensor with {} dims (valid: {} to {})", op, dim, ndim,
         -n, n - 1);
  }
  return w;
}

void copy_into(const Tensor& dst, const Tensor& src) {
  // a broadcast (stride 0) destination would have several elements written to one place
  for (int64_t d = 0; d < dst.dim(); ++d) {
    MOXING_CHECK(
        dst.shape()[static_cast<size_t>(d)] <= 1 || dst.strides()[static_cast<size_t>(d)] != 0,
        "cannot write into a broadcast (expanded) tensor of shape {}: several of its "
        "elements share one memory location; clone() it first",
        shape_str(dst.shape()));
  }
  Tensor s = src.shape() == dst.shape() ? src : expand(src, dst.shape());
  if (dst.device() != src.device()) {
    copy_between_devices(dst, s);
    return;
  }
  kernels::copy_forward().get(dst.device(), dst.dtype())(dst, s);
}

// The copy routine for a pair of devices. A meta destination holds no values, so anything
// copies into it; a meta source has none to give. A CUDA build adds host <-> device copies.
void copy_between_devices(const Tensor& dst, const Tensor& src) {
  if (dst.is_meta()) return;
  if (src.is_meta()) {
    fail(
        "cannot copy the values of a meta tensor to {}: it holds shapes only; materialize it "
        "first (load weights)",
        device_name(dst.device()));
  }
  fail("copy from {} to {} is not available in this build", device_name(src.device()),
       device_name(dst.device()));
}

namespace {

// A new impl sharing x's storage with the given geometry.
Tensor make_view(const Tensor& x, Shape shape, Shape strides, int64_t offset) {
  auto v = std::make_shared<TensorImpl>();
  v->storage = x.impl()->storage;
  v->shape = std::move(shape);
  v->strides = std::move(strides);
  v->offset = offset;
  v->dtype = x.dtype();
  v->is_view_of_grad_tensor = x.requires_grad() || x.impl()->is_view_of_grad_tensor;
  return Tensor(v);
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Shape& from) {
  Shape out = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      MOXING_CHECK(infer < 0, "{}: only one dim can be -1 in shape {}", op, shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      MOXING_CHECK(out[i] >= 0, "{}: invalid size {} in shape {}", op, out[i], shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    MOXING_CHECK(known != 0 && numel % known == 0,
                 "{}: shape {} is invalid for input of shape {} ({} elements)", op,
                 shape_str(shape), shape_str(from), numel);
    out[static_cast<size_t>(infer)] = numel / known;
  }
  MOXING_CHECK(shape_numel(out) == numel,
               "{}: shape {} is invalid for input of shape {} ({} elements)", op, shape_str(shape),
               shape_str(from), numel);
  return out;
}

// Strides for viewing x as `shape` without a copy, if possible (torch's computeStride).
bool view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& shape,
                  Shape& out) {
  out.assign(shape.size(), 0);
  if (shape_numel(old_shape) == 0 || old_shape.empty()) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1;
  int64_t view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[static_cast<size_t>(d)];
    if (d == 0 || (old_shape[static_cast<size_t>(d - 1)] != 1 &&
                   old_strides[static_cast<size_t>(d - 1)] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 &&
             (view_numel < tensor_numel || shape[static_cast<size_t>(view_d)] == 1)) {
        out[static_cast<size_t>(view_d)] = view_numel * chunk_base_stride;
        view_numel *= shape[static_cast<size_t>(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[static_cast<size_t>(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape) {
  Shape s = infer_shape(shape, x.numel(), "view", x.shape());
  Shape st;
  if (!view_strides(x.shape(), x.strides(), s, st)) {
    fail(
        "view: shape {} is not compatible with the strides of the input of shape {}; use "
        "reshape() (which copies) or call contiguous() first",
        shape_str(s), shape_str(x.shape()));
  }
  Tensor out = make_view(x, s, st, x.storage_offset());
  Shape in_shape = x.shape();
  autograd::record("view", {out}, {x}, [in_shape](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{reshape(g[0], in_shape)};
  });
  return out;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape s = infer_shape(shape, x.numel(), "reshape", x.shape());
  Shape st;
  if (view_strides(x.shape(), x.strides(), s, st)) return view(x, s);
  return view(contiguous(x), s);
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  int64_t a = wrap_dim(start_dim, x.dim(), "flatten");
  int64_t b = wrap_dim(end_dim, x.dim(), "flatten");
  MOXING_CHECK(a <= b, "flatten: start_dim {} comes after end_dim {}", start_dim, end_dim);
  Shape s;
  for (int64_t d = 0; d < a; ++d) s.push_back(x.shape()[static_cast<size_t>(d)]);
  int64_t m = 1;
  for (int64_t d = a; d <= b; ++d) m *= x.shape()[static_cast<size_t>(d)];
  s.push_back(m);
  for (int64_t d = b + 1; d < x.dim(); ++d) s.push_back(x.shape()[static_cast<size_t>(d)]);
  return reshape(x, s);
}

Tensor squeeze(const Tensor& x, std::optional<int64_t> dim) {
  Shape s;
  if (dim) {
    if (x.dim() == 0) return view(x, {});
    int64_t d = wrap_dim(*dim, x.dim(), "squeeze");
    s = x.shape();
    if (s[static_cast<size_t>(d)] == 1) s.erase(s.begin() + d);
  } else {
    for (int64_t v : x.shape()) {
      if (v != 1) s.push_back(v);
    }
  }
  return view(x, s);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + d, 1);
  Shape st = x.strides();
  int64_t stv =
      d < x.dim() ? x.strides()[static_cast<size_t>(d)] * x.shape()[static_cast<size_t>(d)] : 1;
  st.insert(st.begin() + d, stv);
  Tensor out = make_view(x, s, st, x.storage_offset());
  autograd::record("unsqueeze", {out}, {x}, [d](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{squeeze(g[0], d)};
  });
  return out;
}

Tensor permute(const Tensor& x, const Shape& dims) {
  MOXING_CHECK(static_cast<int64_t>(dims.size()) == x.dim(),
               "permute: {} dims given for a tensor with {} dims", dims.size(), x.dim());
  Shape s(dims.size()), st(dims.size()), inverse(dims.size());
  std::vector<bool> used(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], x.dim(), "permute");
    MOXING_CHECK(!used[static_cast<size_t>(d)], "permute: dim {} repeated in {}", d,
                 shape_str(dims));
    used[static_cast<size_t>(d)] = true;
    s[i] = x.shape()[static_cast<size_t>(d)];
    st[i] = x.strides()[static_cast<size_t>(d)];
    inverse[static_cast<size_t>(d)] = static_cast<int64_t>(i);
  }
  Tensor out = make_view(x, s, st, x.storage_offset());
  autograd::record("permute", {out}, {x}, [inverse](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{permute(g[0], inverse)};
  });
  return out;
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  if (x.dim() == 0) return x;
  Shape dims(static_cast<size_t>(x.dim()));
  std::iota(dims.begin(), dims.end(), 0);
  int64_t a = wrap_dim(d0, x.dim(), "transpose"), b = wrap_dim(d1, x.dim(), "transpose");
  std::swap(dims[static_cast<size_t>(a)], dims[static_cast<size_t>(b)]);
  return permute(x, dims);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  int64_t d = wrap_dim(dim, x.dim(), "slice");
  MOXING_CHECK(step > 0, "slice: step must be positive, got {}", step);
  int64_t n = x.shape()[static_cast<size_t>(d)];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = x.shape(), st = x.strides();
  s[static_cast<size_t>(d)] = (end - start + step - 1) / step;
  st[static_cast<size_t>(d)] *= step;
  Tensor out =
      make_view(x, s, st, x.storage_offset() + start * x.strides()[static_cast<size_t>(d)]);
  Shape in_shape = x.shape();
  autograd::record("slice", {out}, {x},
                   [in_shape, d, start, end, step](const std::vector<Tensor>& g) {
                     Tensor r = zeros(in_shape, g[0].options());
                     copy_into(slice(r, d, start, end, step), g[0]);
                     return std::vector<Tensor>{r};
                   });
  return out;
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  MOXING_CHECK(x.dim() > 0, "select: cannot select from a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "select");
  int64_t n = x.shape()[static_cast<size_t>(d)];
  MOXING_CHECK(index >= -n && index < n, "select: index {} is out of range for dim {} of size {}",
               index, dim, n);
  if (index < 0) index += n;
  Tensor s = slice(x, d, index, index + 1);
  return squeeze(s, d);
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  int64_t d = wrap_dim(dim, x.dim(), "narrow");
  int64_t n = x.shape()[static_cast<size_t>(d)];
  if (start < 0) start += n;
  MOXING_CHECK(start >= 0 && length >= 0 && start + length <= n,
               "narrow: start {} + length {} exceeds dim {} of size {}", start, length, dim, n);
  return slice(x, d, start, start + length);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  if (shape == x.shape()) return x;
  MOXING_CHECK(shape.size() >= x.shape().size(),
               "expand: cannot expand shape {} to {} (fewer dims)", shape_str(x.shape()),
               shape_str(shape));
  size_t lead = shape.size() - x.shape().size();
  Shape s(shape.size()), st(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      MOXING_CHECK(shape[i] >= 0, "expand: size -1 not allowed in new leading dim {}", i);
      s[i] = shape[i];
      st[i] = 0;
      continue;
    }
    int64_t have = x.shape()[i - lead];
    int64_t want = shape[i] == -1 ? have : shape[i];
    if (have == want) {
      s[i] = have;
      st[i] = x.strides()[i - lead];
    } else {
      MOXING_CHECK(have == 1, "expand: cannot expand shape {} to {} (dim {}: {} is not 1)",
                   shape_str(x.shape()), shape_str(shape), i, have);
      s[i] = want;
      st[i] = 0;
    }
  }
  Tensor out = make_view(x, s, st, x.storage_offset());
  // the engine sums the gradient back to x's shape
  autograd::record("expand", {out}, {x},
                   [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  MOXING_CHECK(total == x.shape()[static_cast<size_t>(d)],
               "split: sizes add up to {} but dim {} has size {}", total, dim,
               x.shape()[static_cast<size_t>(d)]);
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(slice(x, d, start, start + s));
    start += s;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  MOXING_CHECK(split_size > 0, "split: split_size must be positive, got {}", split_size);
  int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t n = x.shape()[static_cast<size_t>(d)];
  std::vector<int64_t> sizes;
  for (int64_t s = 0; s < n; s += split_size) sizes.push_back(std::min(split_size, n - s));
  if (n == 0) sizes.push_back(0);  // an empty dim gives one empty piece, as torch
  return split(x, sizes, d);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  MOXING_CHECK(chunks > 0, "chunk: chunks must be positive, got {}", chunks);
  int64_t d = wrap_dim(dim, x.dim(), "chunk");
  int64_t n = x.shape()[static_cast<size_t>(d)];
  // an empty dim gives `chunks` empty pieces, as torch
  if (n == 0) return split(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), d);
  int64_t size = (n + chunks - 1) / chunks;
  return split(x, size, d);
}

namespace {

// A quantized tensor copies whole rows of blocks: any view whose last dim is contiguous.
Tensor clone_quantized(const Tensor& x) {
  MOXING_CHECK(x.is_contiguous() || (x.dim() >= 1 && x.stride(-1) == 1),
               "clone: a {} view of shape {} with strides {} splits its blocks; only whole rows "
               "of a quantized tensor can be rearranged",
               dtype_name(x.dtype()), shape_str(x.shape()), shape_str(x.strides()));
  Tensor out = empty(x.shape(), x.options());
  if (out.is_meta() || out.numel() == 0) return out;
  if (x.is_contiguous()) {
    std::memcpy(out.raw_data(), x.raw_data(), dtype_nbytes(x.dtype(), x.numel()));
    return out;
  }
  const size_t row_bytes = dtype_nbytes(x.dtype(), x.size(-1));
  const int64_t lead = x.dim() - 1, rows = x.numel() / x.size(-1);
  const auto* src = static_cast<const char*>(x.raw_data());
  auto* dst = static_cast<char*>(out.raw_data());
  std::vector<int64_t> idx(static_cast<size_t>(lead), 0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off = 0;
    for (int64_t d = 0; d < lead; ++d) off += idx[static_cast<size_t>(d)] * x.stride(d);
    std::memcpy(dst + static_cast<size_t>(r) * row_bytes, src + dtype_nbytes(x.dtype(), off),
                row_bytes);
    for (int64_t d = lead - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < x.size(d)) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
  return out;
}

}  // namespace

Tensor clone(const Tensor& x) {
  if (is_quantized(x.dtype())) return clone_quantized(x);
  Tensor out = empty(x.shape(), x.options());
  copy_into(out, x);
  autograd::record("clone", {out}, {x},
                   [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
  return out;
}

Tensor contiguous(const Tensor& x) { return x.is_contiguous() ? x : clone(x); }

Tensor to_device(const Tensor& x, Device device, DType dtype) {
  if (x.device() == device) return to_dtype(x, dtype);
  Tensor out = empty(x.shape(), TensorOptions(dtype).device(device));
  copy_into(out, x);
  if (is_floating(dtype) && is_floating(x.dtype())) {
    Device in_device = x.device();
    DType in = x.dtype();
    autograd::record("to", {out}, {x}, [in_device, in](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{to_device(g[0], in_device, in)};
    });
  }
  return out;
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  // quantized types convert through f32: dequantize, quantize (neither differentiable)
  if (is_quantized(x.dtype())) return to_dtype(dequantize(contiguous(x)), dtype);
  if (is_quantized(dtype)) return quantize(x, dtype);
  Tensor out = empty(x.shape(), x.options().dtype(dtype));
  copy_into(out, x);
  if (is_floating(dtype) && is_floating(x.dtype())) {
    DType in = x.dtype();
    autograd::record("to", {out}, {x}, [in](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{to_dtype(g[0], in)};
    });
  }
  return out;
}

Tensor expand_as_copy(const Tensor& x, const Shape& shape) { return clone(expand(x, shape)); }

// ---- Tensor member shortcuts

Tensor Tensor::view(const Shape& s) const { return moxing::view(*this, s); }
Tensor Tensor::reshape(const Shape& s) const { return moxing::reshape(*this, s); }
Tensor Tensor::flatten(int64_t a, int64_t b) const { return moxing::flatten(*this, a, b); }
Tensor Tensor::squeeze(std::optional<int64_t> d) const { return moxing::squeeze(*this, d); }
Tensor Tensor::unsqueeze(int64_t d) const { return moxing::unsqueeze(*this, d); }
Tensor Tensor::permute(const Shape& d) const { return moxing::permute(*this, d); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return moxing::transpose(*this, a, b); }
Tensor Tensor::slice(int64_t d, int64_t s, int64_t e, int64_t st) const {
  return moxing::slice(*this, d, s, e, st);
}
Tensor Tensor::select(int64_t d, int64_t i) const { return moxing::select(*this, d, i); }
Tensor Tensor::narrow(int64_t d, int64_t s, int64_t l) const {
  return moxing::narrow(*this, d, s, l);
}
Tensor Tensor::expand(const Shape& s) const { return moxing::expand(*this, s); }
std::vector<Tensor> Tensor::chunk(int64_t c, int64_t d) const { return moxing::chunk(*this, c, d); }
std::vector<Tensor> Tensor::split(int64_t s, int64_t d) const { return moxing::split(*this, s, d); }
Tensor Tensor::contiguous() const { return moxing::contiguous(*this); }
Tensor Tensor::clone() const { return moxing::clone(*this); }
Tensor Tensor::to(DType t) const { return moxing::to_dtype(*this, t); }
Tensor Tensor::to(Device d) const { return moxing::to_device(*this, d, dtype()); }
Tensor Tensor::to(Device d, DType t) const { return moxing::to_device(*this, d, t); }

}  // namespace moxing
