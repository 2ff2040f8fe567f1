// RNN, LSTM, GRU and their cells: parameters as torch names, lays them out and initializes
// them; forward stacks rnn_layer calls with dropout between layers.
#include "moxing/nn/recurrent.h"

#include <cmath>

#include "moxing/nn/init.h"
#include "moxing/ops/dropout.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/shape.h"

namespace moxing::nn {

namespace {

const char* mode_name(RnnMode mode) {
  return mode == RnnMode::lstm ? "LSTM" : mode == RnnMode::gru ? "GRU" : "RNN";
}

void init_uniform(const std::vector<Tensor*>& params, int64_t hidden_size, Generator* gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  for (Tensor* p : params) {
    if (p->defined()) init::uniform_(*p, -bound, bound, gen);
  }
}

RnnMode rnn_mode(const std::string& nonlinearity, const char* who) {
  MOXING_CHECK(nonlinearity == "tanh" || nonlinearity == "relu",
               "{}: nonlinearity must be \"tanh\" or \"relu\", got \"{}\"", who, nonlinearity);
  return nonlinearity == "tanh" ? RnnMode::rnn_tanh : RnnMode::rnn_relu;
}

RNNOptions sizes(int64_t input_size, int64_t hidden_size, int64_t num_layers) {
  RNNOptions o;
  o.input_size = input_size;
  o.hidden_size = hidden_size;
  o.num_layers = num_layers;
  return o;
}

}  // namespace

// ---- RNNBase

RNNBase::RNNBase(RnnMode mode_, RNNOptions options_, Generator* gen_)
    : options(std::move(options_)), mode(mode_), gen(gen_) {
  const char* who = mode_name(mode);
  MOXING_CHECK(options.input_size > 0 && options.hidden_size > 0,
               "{}: input_size and hidden_size must be positive, got {} and {}", who,
               options.input_size, options.hidden_size);
  MOXING_CHECK(options.num_layers >= 1, "{}: num_layers must be at least 1, got {}", who,
               options.num_layers);
  MOXING_CHECK(options.dropout >= 0.0 && options.dropout <= 1.0,
               "{}: dropout must be in [0, 1], got {}", who, options.dropout);
  const int64_t H = options.hidden_size, GH = rnn_gate_count(mode) * H, D = num_directions();
  for (int64_t l = 0; l < options.num_layers; ++l) {
    const int64_t in = l == 0 ? options.input_size : D * H;
    for (int64_t d = 0; d < D; ++d) {
      const std::string suffix = fmt::format("_l{}{}", l, d == 1 ? "_reverse" : "");
      RnnWeights w;
      w.w_ih = register_parameter("weight_ih" + suffix, empty({GH, in}));
      w.w_hh = register_parameter("weight_hh" + suffix, empty({GH, H}));
      if (options.bias) {
        w.b_ih = register_parameter("bias_ih" + suffix, empty({GH}));
        w.b_hh = register_parameter("bias_hh" + suffix, empty({GH}));
      }
      init_uniform({&w.w_ih, &w.w_hh, &w.b_ih, &w.b_hh}, H, gen);
      weights_.push_back(w);
    }
  }
}

const RnnWeights& RNNBase::weights(int64_t layer, int64_t direction) const {
  MOXING_CHECK(
      layer >= 0 && layer < options.num_layers && direction >= 0 && direction < num_directions(),
      "{}: no layer {} direction {} (num_layers {}, directions {})", type_name(), layer, direction,
      options.num_layers, num_directions());
  return weights_[static_cast<size_t>(layer * num_directions() + direction)];
}

std::string RNNBase::extra_repr() const {
  std::string s = fmt::format("{}, {}", options.input_size, options.hidden_size);
  if (options.num_layers != 1) s += fmt::format(", num_layers={}", options.num_layers);
  if (mode == RnnMode::rnn_relu) s += ", nonlinearity='relu'";
  if (!options.bias) s += ", bias=False";
  if (options.batch_first) s += ", batch_first=True";
  if (options.dropout != 0.0) s += fmt::format(", dropout={}", options.dropout);
  if (options.bidirectional) s += ", bidirectional=True";
  return s;
}

RNNOutput RNNBase::run(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& lengths) {
  const std::string name = type_name();
  const char* who = name.c_str();
  const int64_t L = options.num_layers, D = num_directions(), H = options.hidden_size;
  MOXING_CHECK(x.defined() && (x.dim() == 2 || x.dim() == 3),
               "{}: input must be {} or unbatched (T, input_size), got {}", who,
               options.batch_first ? "(B, T, input_size) with batch_first"
                                   : "(T, B, input_size) (or (B, T, input_size) with batch_first)",
               x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  const bool batched = x.dim() == 3;
  Tensor xs = !batched ? x.unsqueeze(1) : options.batch_first ? x.transpose(0, 1) : x;
  MOXING_CHECK(xs.size(2) == options.input_size,
               "{}: the input has {} features (last dim) but input_size is {}", who, xs.size(2),
               options.input_size);
  const int64_t B = xs.size(1);
  auto state = [&](const Tensor& s, const char* what) {
    if (!s.defined()) return Tensor();
    const Shape want = batched ? Shape{L * D, B, H} : Shape{L * D, H};
    MOXING_CHECK(s.shape() == want,
                 "{}: {} must be (num_layers * num_directions, {}hidden_size) = {}, got {}", who,
                 what, batched ? "B, " : "", shape_str(want), shape_str(s.shape()));
    return batched ? s : s.unsqueeze(1);
  };
  Tensor h = state(h0, "h0"), c = state(c0, "c0");

  Tensor input = xs;
  std::vector<Tensor> hs, cs;
  for (int64_t l = 0; l < L; ++l) {
    std::vector<RnnWeights> w(weights_.begin() + l * D, weights_.begin() + (l + 1) * D);
    RnnLayerResult r = rnn_layer(mode, input, h.defined() ? h.narrow(0, l * D, D) : Tensor(),
                                 c.defined() ? c.narrow(0, l * D, D) : Tensor(), w, lengths);
    hs.push_back(r.h_n);
    if (r.c_n.defined()) cs.push_back(r.c_n);
    input = r.output;
    if (l + 1 < L && options.dropout > 0.0 && is_training()) {
      input = dropout(input, options.dropout, true, gen);
    }
  }
  RNNOutput out;
  out.output = !batched ? input.squeeze(1) : options.batch_first ? input.transpose(0, 1) : input;
  out.h_n = L == 1 ? hs[0] : cat(hs, 0);
  if (!cs.empty()) out.c_n = L == 1 ? cs[0] : cat(cs, 0);
  if (!batched) {
    out.h_n = out.h_n.squeeze(1);
    if (out.c_n.defined()) out.c_n = out.c_n.squeeze(1);
  }
  return out;
}

// ---- RNN, LSTM, GRU

RNN::RNN(RNNOptions o, Generator* gen) : RNNBase(rnn_mode(o.nonlinearity, "RNN"), o, gen) {}
RNN::RNN(int64_t input_size, int64_t hidden_size, int64_t num_layers, Generator* gen)
    : RNN(sizes(input_size, hidden_size, num_layers), gen) {}
RNNOutput RNN::forward(const Tensor& x, const Tensor& h0, const Tensor& lengths) {
  return run(x, h0, Tensor(), lengths);
}

LSTM::LSTM(RNNOptions o, Generator* gen) : RNNBase(RnnMode::lstm, std::move(o), gen) {}
LSTM::LSTM(int64_t input_size, int64_t hidden_size, int64_t num_layers, Generator* gen)
    : LSTM(sizes(input_size, hidden_size, num_layers), gen) {}
RNNOutput LSTM::forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                        const Tensor& lengths) {
  return run(x, h0, c0, lengths);
}

GRU::GRU(RNNOptions o, Generator* gen) : RNNBase(RnnMode::gru, std::move(o), gen) {}
GRU::GRU(int64_t input_size, int64_t hidden_size, int64_t num_layers, Generator* gen)
    : GRU(sizes(input_size, hidden_size, num_layers), gen) {}
RNNOutput GRU::forward(const Tensor& x, const Tensor& h0, const Tensor& lengths) {
  return run(x, h0, Tensor(), lengths);
}

// ---- cells

RNNCellBase::RNNCellBase(RnnMode mode_, int64_t input_size_, int64_t hidden_size_, bool bias,
                         Generator* gen)
    : input_size(input_size_), hidden_size(hidden_size_), mode(mode_) {
  MOXING_CHECK(input_size > 0 && hidden_size > 0,
               "{}Cell: input_size and hidden_size must be positive, got {} and {}",
               mode_name(mode), input_size, hidden_size);
  const int64_t GH = rnn_gate_count(mode) * hidden_size;
  weight_ih = register_parameter("weight_ih", empty({GH, input_size}));
  weight_hh = register_parameter("weight_hh", empty({GH, hidden_size}));
  if (bias) {
    bias_ih = register_parameter("bias_ih", empty({GH}));
    bias_hh = register_parameter("bias_hh", empty({GH}));
  }
  init_uniform({&weight_ih, &weight_hh, &bias_ih, &bias_hh}, hidden_size, gen);
}

std::string RNNCellBase::extra_repr() const {
  std::string s = fmt::format("{}, {}", input_size, hidden_size);
  if (!bias_ih.defined()) s += ", bias=False";
  if (mode == RnnMode::rnn_relu) s += ", nonlinearity='relu'";
  return s;
}

RNNCell::RNNCell(int64_t input_size, int64_t hidden_size, bool bias,
                 const std::string& nonlinearity, Generator* gen)
    : RNNCellBase(rnn_mode(nonlinearity, "RNNCell"), input_size, hidden_size, bias, gen) {}

Tensor RNNCell::forward(const Tensor& x, const Tensor& h) {
  return mode == RnnMode::rnn_tanh ? rnn_tanh_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
                                   : rnn_relu_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh);
}

LSTMCell::LSTMCell(int64_t input_size, int64_t hidden_size, bool bias, Generator* gen)
    : RNNCellBase(RnnMode::lstm, input_size, hidden_size, bias, gen) {}

std::pair<Tensor, Tensor> LSTMCell::forward(const Tensor& x, const Tensor& h, const Tensor& c) {
  return lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh);
}

GRUCell::GRUCell(int64_t input_size, int64_t hidden_size, bool bias, Generator* gen)
    : RNNCellBase(RnnMode::gru, input_size, hidden_size, bias, gen) {}

Tensor GRUCell::forward(const Tensor& x, const Tensor& h) {
  return gru_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh);
}

}  // namespace moxing::nn
