// Recurrent-layer kernels: one layer-direction over a whole sequence, forward and backward.
// The input projection of every step is one GEMM; each step is one GEMM of the state by
// W_hh^T and one fused pass over the gates. Not a cell-by-cell composite of other ops.
#pragma once

#include <cstdint>

#include "kernels/registry.h"
#include "moxing/core/tensor.h"
#include "moxing/ops/rnn.h"

namespace moxing::kernels {

using moxing::RnnMode;  // gate blocks in torch's order: lstm i, f, g, o; gru r, z, n

/// One direction of one layer, G gates, hidden size H, all tensors of one floating dtype.
/// Step t reads the state at h[t + prev] and writes the new one at h[t + next], with
/// (prev, next) = (0, 1) forward and (1, 0) reverse, so the states entering steps 0..T-1 are
/// the contiguous rows h[prev .. prev + T) in both directions (the dW_hh GEMM reads them).
/// Step t of sequence b is active when t < lengths[b] (every step when lengths is null); an
/// inactive step keeps the state, writes y = 0 and passes gradients through unchanged.
struct RnnDirection {
  RnnMode mode = RnnMode::lstm;
  bool reverse = false;
  const int64_t* lengths = nullptr;  // (B) in [1, T], or null
  Tensor x;                          // (T,B,I) contiguous
  Tensor w_ih, w_hh;                 // (G*H, I), (G*H, H) contiguous
  Tensor b_ih, b_hh;                 // (G*H) contiguous, or undefined
  Tensor h0, c0;                     // (B,H) contiguous, or undefined (zeros); c0 lstm only
  Tensor y;                          // (T,B,H) out: stride (B*ld, ld, 1), a slice of (T,B,D*H)
  Tensor h_n, c_n;                   // (B,H) contiguous out; c_n lstm only
  Tensor gates;                      // (T,B,G*H) contiguous out: the activated gates
  Tensor h;                          // (T+1,B,H) contiguous out: every state, as above
  Tensor c;                          // (T+1,B,H) lstm: every cell state
  Tensor hn;                         // (T,B,H) gru: W_hn h + b_hn of each step
};

/// Fills y, h_n, c_n and the saved tensors gates, h, c, hn from x, the weights and h0, c0.
///   lstm: i, f, o = sigmoid, g = tanh of (x W_ih^T + b_ih + h W_hh^T + b_hh) blocks;
///         c' = f c + i g, h' = o tanh(c')
///   gru:  r, z = sigmoid, n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)); h' = (1-z) n + z h
///   rnn:  h' = tanh or relu(x W_ih^T + b_ih + h W_hh^T + b_hh)
using RnnForwardFn = void(const RnnDirection& d);

/// Gradients of one direction; dy (T,B,H) strided like y. dh, dc (B,H) contiguous: dh_n, dc_n
/// on entry, dh0, dc0 on return. dx (T,B,I) contiguous is overwritten, or added to when
/// accumulate_dx (the second direction). dw_ih, dw_hh, db_ih, db_hh are overwritten (db_*
/// undefined when the layer has no bias).
struct RnnGrads {
  Tensor dy, dh, dc, dx, dw_ih, dw_hh, db_ih, db_hh;
  bool accumulate_dx = false;
};
using RnnBackwardFn = void(const RnnDirection& d, RnnGrads& g);

MOXING_DECLARE_KERNEL(rnn_forward, RnnForwardFn);
MOXING_DECLARE_KERNEL(rnn_backward, RnnBackwardFn);

}  // namespace moxing::kernels
