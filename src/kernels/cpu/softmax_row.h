// The f32 softmax of one contiguous row, shared by the softmax and attention kernels.
#pragma once

#include <cstdint>

namespace moxing::kernels::cpu {

/// y = softmax(x) (or log_softmax with log) over R contiguous floats, vectorized for the CPU's
/// widest ISA. y may be x (in place). A row of all -inf gives zeros (log: -inf).
void softmax_row_f32(const float* x, float* y, int64_t R, bool log);

}  // namespace moxing::kernels::cpu
