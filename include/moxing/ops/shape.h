// Views that share storage (view, reshape, permute, slice, expand, ...), copies (contiguous,
// clone, to), and the raw strided copy every other family builds on. All differentiable.
#pragma once

#include <optional>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing {

/// Same storage, new shape; needs compatible strides (one dim may be -1).
Tensor view(const Tensor& x, const Shape& shape);
/// view when possible, otherwise a contiguous copy.
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
/// Removes size-1 dims (all, or only `dim`).
Tensor squeeze(const Tensor& x, std::optional<int64_t> dim = std::nullopt);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor permute(const Tensor& x, const Shape& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
/// x[start:end:step] along dim (negative and out-of-range bounds clamp as in Python).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
/// x[..., index, ...] along dim; removes the dim.
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
/// Broadcast view (stride 0); -1 keeps a dim.
Tensor expand(const Tensor& x, const Shape& shape);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
/// x itself when already contiguous, otherwise a contiguous copy.
Tensor contiguous(const Tensor& x);
/// A contiguous copy that owns its storage.
Tensor clone(const Tensor& x);
/// Converted copy (x itself when dtype already matches).
Tensor to_dtype(const Tensor& x, DType dtype);
/// Copy on device with dtype (x itself when both match); differentiable like to_dtype.
Tensor to_device(const Tensor& x, Device device, DType dtype);
/// x broadcast to shape, materialized as a new contiguous tensor.
Tensor expand_as_copy(const Tensor& x, const Shape& shape);

/// Raw copy of src (broadcast to dst's shape, converted to dst's dtype) into dst's memory.
/// No autograd, no version bump: the building block of the ops above. Across devices it goes
/// through copy_between_devices.
void copy_into(const Tensor& dst, const Tensor& src);
/// The per-device-pair copy: into meta copies nothing; out of meta is an error (no values).
void copy_between_devices(const Tensor& dst, const Tensor& src);

/// Wraps a possibly negative dim into [0, ndim), or an error naming the op.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace moxing
