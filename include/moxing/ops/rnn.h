// Recurrent layers as ops: one layer (one or two directions) over a whole sequence, with
// variable lengths, and the single-step cells. Each layer-direction runs the fused kernels of
// src/kernels/cpu/rnn.cpp and records one graph node; the stacking of layers, dropout
// between them and the parameters live in nn::RNN / LSTM / GRU (moxing/nn/recurrent.h).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "moxing/core/tensor.h"

namespace moxing {

/// torch's recurrent modes: RNN with tanh or relu, LSTM (gates i, f, g, o), GRU (r, z, n).
enum class RnnMode { rnn_tanh, rnn_relu, lstm, gru };

/// Gate blocks G of a mode: the weights are (G*H, ·). rnn 1, lstm 4, gru 3.
inline int64_t rnn_gate_count(RnnMode mode) {
  return mode == RnnMode::lstm ? 4 : mode == RnnMode::gru ? 3 : 1;
}

/// One direction's parameters, torch's layout: w_ih (G*H, I), w_hh (G*H, H), b_ih and b_hh
/// (G*H) or undefined (bias=False).
struct RnnWeights {
  Tensor w_ih, w_hh, b_ih, b_hh;
};

/// output (T,B,D*H) (directions side by side, forward first), h_n and c_n (D,B,H); c_n is
/// undefined unless lstm.
struct RnnLayerResult {
  Tensor output, h_n, c_n;
};

/// One recurrent layer over x (T,B,I), D = weights.size() (1, or 2 for bidirectional, the
/// second running from the end). h0, c0 (D,B,H) or undefined (zeros); c0 lstm only.
/// lengths: undefined, or i64 (B) on the cpu with each length in [1, T], any order: sequence b
/// is x[0 .. lengths[b]) and the rest padding, which changes no state, gets output 0, and
/// where the reverse direction starts at the last real step; as torch's
/// pack_padded_sequence(enforce_sorted=False) + pad_packed_sequence(total_length=T).
///   lstm: i, f, g, o = sigmoid, sigmoid, tanh, sigmoid(x W_ih^T + b_ih + h W_hh^T + b_hh);
///         c' = f c + i g, h' = o tanh(c')
///   gru:  r, z = sigmoid(...), n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)),
///         h' = (1 - z) n + z h
///   rnn:  h' = tanh or relu(x W_ih^T + b_ih + h W_hh^T + b_hh)
RnnLayerResult rnn_layer(RnnMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0,
                         const std::vector<RnnWeights>& weights, const Tensor& lengths = Tensor());

/// One step h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh): x (B,I) or (I), h like (B,H) or
/// undefined (zeros); matches torch.rnn_tanh_cell.
Tensor rnn_tanh_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
/// The same with relu; matches torch.rnn_relu_cell.
Tensor rnn_relu_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
/// One LSTM step -> (h', c'); h, c (B,H) or undefined (zeros); matches torch.lstm_cell.
std::pair<Tensor, Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c,
                                    const Tensor& w_ih, const Tensor& w_hh,
                                    const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
/// One GRU step -> h'; matches torch.gru_cell.
Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());

}  // namespace moxing
