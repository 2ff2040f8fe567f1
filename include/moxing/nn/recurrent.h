// Recurrent layers with torch.nn's names, options, parameter names and layouts, so a
// state_dict moves both ways: RNN, LSTM, GRU (stacked, bidirectional, dropout between layers,
// variable lengths) and the one-step cells RNNCell, LSTMCell, GRUCell. No proj_size, no
// PackedSequence type: variable lengths are a lengths tensor beside the padded batch.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "moxing/core/rng.h"
#include "moxing/nn/module.h"
#include "moxing/ops/rnn.h"

namespace moxing::nn {

/// torch.nn.RNN / LSTM / GRU constructor arguments (nonlinearity is RNN's: "tanh" or "relu").
struct RNNOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  std::string nonlinearity = "tanh";
  bool bias = true;
  bool batch_first = false;
  double dropout = 0.0;  // on every layer's output but the last, in training mode
  bool bidirectional = false;
};

/// output (T,B,D*H), or (B,T,D*H) when batch_first, or (T,D*H) unbatched; h_n and c_n
/// (num_layers*D, B, H), or (num_layers*D, H) unbatched; c_n is LSTM's only. D = 2 when
/// bidirectional, else 1.
struct RNNOutput {
  Tensor output, h_n, c_n;
};

/// What RNN, LSTM and GRU share: parameters weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
/// bias_hh_l{k} (suffix _reverse for the backward direction), in torch's order and layout,
/// all ~ U(-1/sqrt(H), 1/sqrt(H)) as torch initializes them.
class RNNBase : public Module {
 public:
  RNNBase(RnnMode mode, RNNOptions options, Generator* gen);
  std::string extra_repr() const override;
  /// The parameters of one layer and direction (0 forward, 1 reverse).
  const RnnWeights& weights(int64_t layer, int64_t direction = 0) const;
  int64_t num_directions() const { return options.bidirectional ? 2 : 1; }

  RNNOptions options;
  RnnMode mode;
  Generator* gen;  // for the dropout between layers; null: default_generator()

 protected:
  /// x (T,B,I) / (B,T,I) / (T,I); h0, c0 (L*D,B,H) / (L*D,H) or undefined (zeros); lengths
  /// i64 (B) in [1, T] or undefined (see rnn_layer).
  RNNOutput run(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& lengths);

 private:
  std::vector<RnnWeights> weights_;  // layer-major, then direction
};

/// Elman RNN, h' = tanh or relu(x W_ih^T + b_ih + h W_hh^T + b_hh); matches nn.RNN.
class RNN : public RNNBase {
 public:
  explicit RNN(RNNOptions options, Generator* gen = nullptr);
  RNN(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, Generator* gen = nullptr);
  /// lengths: i64 (B), each in [1, T], any order; padded steps change nothing and output 0.
  RNNOutput forward(const Tensor& x, const Tensor& h0 = Tensor(), const Tensor& lengths = Tensor());
  std::string type_name() const override { return "RNN"; }
};

/// LSTM with gates i, f, g, o (weights (4H, ·)); matches nn.LSTM (without proj_size).
class LSTM : public RNNBase {
 public:
  explicit LSTM(RNNOptions options, Generator* gen = nullptr);
  LSTM(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, Generator* gen = nullptr);
  RNNOutput forward(const Tensor& x, const Tensor& h0 = Tensor(), const Tensor& c0 = Tensor(),
                    const Tensor& lengths = Tensor());
  std::string type_name() const override { return "LSTM"; }
};

/// GRU with gates r, z, n (weights (3H, ·)), n = tanh(W_in x + b_in + r (W_hn h + b_hn));
/// matches nn.GRU.
class GRU : public RNNBase {
 public:
  explicit GRU(RNNOptions options, Generator* gen = nullptr);
  GRU(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, Generator* gen = nullptr);
  RNNOutput forward(const Tensor& x, const Tensor& h0 = Tensor(), const Tensor& lengths = Tensor());
  std::string type_name() const override { return "GRU"; }
};

/// What the cells share: weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh (G*H),
/// all ~ U(-1/sqrt(H), 1/sqrt(H)).
class RNNCellBase : public Module {
 public:
  RNNCellBase(RnnMode mode, int64_t input_size, int64_t hidden_size, bool bias, Generator* gen);
  std::string extra_repr() const override;
  RnnWeights weights() const { return {weight_ih, weight_hh, bias_ih, bias_hh}; }
  int64_t input_size, hidden_size;
  RnnMode mode;
  Tensor weight_ih, weight_hh, bias_ih, bias_hh;
};

/// One step: x (B,I) or (I), h (B,H) or (H) or undefined (zeros) -> h'; matches nn.RNNCell.
class RNNCell : public RNNCellBase {
 public:
  RNNCell(int64_t input_size, int64_t hidden_size, bool bias = true,
          const std::string& nonlinearity = "tanh", Generator* gen = nullptr);
  Tensor forward(const Tensor& x, const Tensor& h = Tensor());
  std::string type_name() const override { return "RNNCell"; }
};

/// One step -> (h', c'); matches nn.LSTMCell.
class LSTMCell : public RNNCellBase {
 public:
  LSTMCell(int64_t input_size, int64_t hidden_size, bool bias = true, Generator* gen = nullptr);
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& h = Tensor(),
                                    const Tensor& c = Tensor());
  std::string type_name() const override { return "LSTMCell"; }
};

/// One step -> h'; matches nn.GRUCell.
class GRUCell : public RNNCellBase {
 public:
  GRUCell(int64_t input_size, int64_t hidden_size, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x, const Tensor& h = Tensor());
  std::string type_name() const override { return "GRUCell"; }
};

}  // namespace moxing::nn
