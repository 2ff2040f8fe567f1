// rnn_layer and the cells: argument checks, the buffers the kernels fill (gates and every
// state, kept for backward), and one graph node per layer whose backward runs the backward
// kernel of each direction. The cells are layers of one step.
#include "moxing/ops/rnn.h"

#include <memory>
#include <string>

#include "kernels/rnn.h"
#include "moxing/autograd/node.h"
#include "moxing/ops/shape.h"

namespace moxing {

namespace kernels {
MOXING_DEFINE_KERNEL(rnn_forward, RnnForwardFn)
MOXING_DEFINE_KERNEL(rnn_backward, RnnBackwardFn)
}  // namespace kernels

namespace {

const char* layer_name(RnnMode mode) {
  return mode == RnnMode::lstm ? "LSTM" : mode == RnnMode::gru ? "GRU" : "RNN";
}

const char* cell_name(RnnMode mode) {
  return mode == RnnMode::lstm ? "LSTMCell" : mode == RnnMode::gru ? "GRUCell" : "RNNCell";
}

// The lengths as host values, after checking them: i64 (B) on the cpu, each in [1, T].
// Empty when undefined (every sequence is T long) or on meta (no values to read).
std::vector<int64_t> checked_lengths(const char* who, const Tensor& lengths, int64_t B, int64_t T) {
  if (!lengths.defined()) return {};
  MOXING_CHECK(lengths.dtype() == DType::i64 && lengths.dim() == 1 && lengths.size(0) == B,
               "{}: lengths must be an i64 tensor of shape (B) = ({}), one length per sequence, "
               "got {} {}",
               who, B, dtype_name(lengths.dtype()), shape_str(lengths.shape()));
  if (lengths.device().type == DeviceType::meta) return {};
  MOXING_CHECK(lengths.device().type == DeviceType::cpu,
               "{}: lengths must be on the cpu (as torch's pack_padded_sequence), got {}; pass "
               "lengths.to(kCpu)",
               who, device_name(lengths.device()));
  std::vector<int64_t> v = lengths.to_vector<int64_t>();
  for (size_t b = 0; b < v.size(); ++b) {
    MOXING_CHECK(v[b] >= 1 && v[b] <= T,
                 "{}: lengths[{}] = {} is outside [1, T = {}]: each length counts the real "
                 "(unpadded) steps of its sequence, at least 1 and at most the input's time dim",
                 who, b, v[b], T);
  }
  return v;
}

void check_state(const char* who, const char* name, const Tensor& s, const Shape& want,
                 DType dtype) {
  if (!s.defined()) return;
  MOXING_CHECK(s.shape() == want, "{}: {} must be (D, B, H) = {}, got {}", who, name,
               shape_str(want), shape_str(s.shape()));
  MOXING_CHECK(s.dtype() == dtype, "{}: {} is {} but the input is {}; convert it with .to()", who,
               name, dtype_name(s.dtype()), dtype_name(dtype));
}

void check_weights(const char* who, RnnMode mode, const RnnWeights& w, int64_t I, DType dtype) {
  const int64_t G = rnn_gate_count(mode);
  MOXING_CHECK(w.w_ih.defined() && w.w_hh.defined(), "{}: w_ih and w_hh are required", who);
  MOXING_CHECK(w.w_hh.dim() == 2 && w.w_hh.size(0) == G * w.w_hh.size(1),
               "{}: w_hh must be (G*H, H) with G = {} gate blocks, got {}", who, G,
               shape_str(w.w_hh.shape()));
  const int64_t H = w.w_hh.size(1);
  MOXING_CHECK(w.w_ih.dim() == 2 && w.w_ih.size(0) == G * H,
               "{}: w_ih must be (G*H, I) = ({}, I), got {}", who, G * H,
               shape_str(w.w_ih.shape()));
  MOXING_CHECK(w.w_ih.size(1) == I,
               "{}: the input has {} features (last dim) but w_ih expects {} (input_size)", who, I,
               w.w_ih.size(1));
  MOXING_CHECK(w.b_ih.defined() == w.b_hh.defined(),
               "{}: give both biases b_ih and b_hh or neither", who);
  for (const Tensor* b : {&w.b_ih, &w.b_hh}) {
    if (!b->defined()) continue;
    MOXING_CHECK(b->shape() == Shape{G * H}, "{}: biases must be (G*H) = ({}), got {}", who, G * H,
                 shape_str(b->shape()));
  }
  for (const Tensor* t : {&w.w_ih, &w.w_hh, &w.b_ih, &w.b_hh}) {
    if (!t->defined()) continue;
    MOXING_CHECK(t->dtype() == dtype, "{}: the weights are {} but the input is {}", who,
                 dtype_name(t->dtype()), dtype_name(dtype));
  }
}

Tensor detached_contiguous(const Tensor& t) {
  return t.defined() ? contiguous(t.detach()) : Tensor();
}

RnnLayerResult layer(const char* who, RnnMode mode, const Tensor& x, const Tensor& h0,
                     const Tensor& c0, const std::vector<RnnWeights>& weights,
                     const Tensor& lengths) {
  MOXING_CHECK(x.defined() && x.dim() == 3, "{}: input must be (T, B, I), got {}", who,
               x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  MOXING_CHECK(is_floating(x.dtype()), "{}: input must be floating (f32 or f64), got {}", who,
               dtype_name(x.dtype()));
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2);
  MOXING_CHECK(T >= 1 && B >= 1, "{}: input {} needs at least one step and one sequence", who,
               shape_str(x.shape()));
  const int64_t D = static_cast<int64_t>(weights.size());
  MOXING_CHECK(D == 1 || D == 2, "{}: weights for 1 or 2 directions, got {}", who, D);
  for (const RnnWeights& w : weights) check_weights(who, mode, w, I, x.dtype());
  const int64_t H = weights[0].w_hh.size(1), G = rnn_gate_count(mode);
  MOXING_CHECK(D == 1 || weights[1].w_hh.size(1) == H,
               "{}: both directions need the same hidden size, got {} and {}", who, H,
               weights[1].w_hh.size(1));
  check_state(who, "h0", h0, {D, B, H}, x.dtype());
  MOXING_CHECK(mode == RnnMode::lstm || !c0.defined(), "{}: c0 is for LSTM only", who);
  check_state(who, "c0", c0, {D, B, H}, x.dtype());
  {
    std::vector<Tensor> all = {x, h0, c0, lengths};
    for (const RnnWeights& w : weights) all.insert(all.end(), {w.w_ih, w.w_hh, w.b_ih, w.b_hh});
    check_same_device(who, all);
  }
  auto lens = std::make_shared<const std::vector<int64_t>>(checked_lengths(who, lengths, B, T));
  const int64_t* lens_ptr = lens->empty() ? nullptr : lens->data();

  const bool lstm = mode == RnnMode::lstm;
  const TensorOptions opt = x.options();
  Tensor xd = detached_contiguous(x);
  Tensor y = empty({T, B, D * H}, opt);
  Tensor h_n = empty({D, B, H}, opt);
  Tensor c_n = lstm ? empty({D, B, H}, opt) : Tensor();
  Tensor h0d = detached_contiguous(h0), c0d = detached_contiguous(c0);
  std::vector<kernels::RnnDirection> dirs(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d) {
    kernels::RnnDirection& k = dirs[static_cast<size_t>(d)];
    const RnnWeights& w = weights[static_cast<size_t>(d)];
    k.mode = mode;
    k.reverse = d == 1;
    k.lengths = lens_ptr;
    k.x = xd;
    k.w_ih = detached_contiguous(w.w_ih);
    k.w_hh = detached_contiguous(w.w_hh);
    k.b_ih = detached_contiguous(w.b_ih);
    k.b_hh = detached_contiguous(w.b_hh);
    if (h0d.defined()) k.h0 = h0d.select(0, d);
    if (c0d.defined()) k.c0 = c0d.select(0, d);
    k.y = y.narrow(2, d * H, H);
    k.h_n = h_n.select(0, d);
    if (lstm) k.c_n = c_n.select(0, d);
    k.gates = empty({T, B, G * H}, opt);
    k.h = empty({T + 1, B, H}, opt);
    if (lstm) k.c = empty({T + 1, B, H}, opt);
    if (mode == RnnMode::gru) k.hn = empty({T, B, H}, opt);
    kernels::rnn_forward().get(x.device(), x.dtype())(k);
  }

  std::vector<Tensor> inputs = {x, h0, c0};
  for (const RnnWeights& w : weights) inputs.insert(inputs.end(), {w.w_ih, w.w_hh, w.b_ih, w.b_hh});
  if (autograd::any_requires_grad(inputs)) {
    // x and the weights are checked against in-place changes before backward reads them
    std::vector<autograd::SavedTensor> saved;
    for (auto& k : dirs) {
      for (Tensor* t : {&k.x, &k.w_ih, &k.w_hh}) saved.emplace_back(*t, who);
      k.y = k.h_n = k.c_n = k.h0 = k.c0 = Tensor();
    }
    const bool has_h0 = h0.defined(), has_c0 = c0.defined(), has_bias = weights[0].b_ih.defined();
    std::vector<Tensor> outputs = {y, h_n};
    if (lstm) outputs.push_back(c_n);
    autograd::record(
        who, outputs, inputs,
        [dirs, saved, lens, has_h0, has_c0, has_bias, lstm, D, T, B, I,
         H](const std::vector<Tensor>& g) mutable {
          Tensor dy = contiguous(g[0]);
          const TensorOptions opt = dy.options();
          Tensor dh = contiguous(g[1]).clone();  // dh_n in, dh0 out
          Tensor dc = lstm ? contiguous(g[2]).clone() : Tensor();
          Tensor dx = empty({T, B, I}, opt);
          std::vector<Tensor> out = {dx, has_h0 ? dh : Tensor(), has_c0 ? dc : Tensor()};
          for (int64_t d = 0; d < D; ++d) {
            kernels::RnnDirection k = dirs[static_cast<size_t>(d)];
            k.x = saved[static_cast<size_t>(3 * d)].get();
            k.w_ih = saved[static_cast<size_t>(3 * d + 1)].get();
            k.w_hh = saved[static_cast<size_t>(3 * d + 2)].get();
            k.lengths = lens->empty() ? nullptr : lens->data();
            kernels::RnnGrads gr;
            gr.dy = dy.narrow(2, d * H, H);
            gr.dh = dh.select(0, d);
            if (lstm) gr.dc = dc.select(0, d);
            gr.dx = dx;
            gr.accumulate_dx = d > 0;
            gr.dw_ih = empty(k.w_ih.shape(), opt);
            gr.dw_hh = empty(k.w_hh.shape(), opt);
            if (has_bias) {
              gr.db_ih = empty({k.w_hh.size(0)}, opt);
              gr.db_hh = empty({k.w_hh.size(0)}, opt);
            }
            kernels::rnn_backward().get(dy.device(), dy.dtype())(k, gr);
            out.insert(out.end(), {gr.dw_ih, gr.dw_hh, gr.db_ih, gr.db_hh});
          }
          return out;
        });
  }
  return {y, h_n, c_n};
}

// A cell is a one-step layer: x (B,I) or (I), h and c (B,H) or (H), or undefined
RnnLayerResult cell(RnnMode mode, const Tensor& x, const Tensor& h, const Tensor& c,
                    const RnnWeights& w) {
  const char* who = cell_name(mode);
  MOXING_CHECK(x.defined() && (x.dim() == 1 || x.dim() == 2),
               "{}: input must be (B, input_size) or unbatched (input_size), got {}", who,
               x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  const bool batched = x.dim() == 2;
  auto state = [&](const Tensor& s, const char* name) {
    if (!s.defined()) return Tensor();
    MOXING_CHECK(s.dim() == x.dim(), "{}: {} must be {} like the input, got {}", who, name,
                 batched ? "(B, hidden_size)" : "(hidden_size)", shape_str(s.shape()));
    return batched ? s.unsqueeze(0) : s.unsqueeze(0).unsqueeze(0);
  };
  Tensor x3 = batched ? x.unsqueeze(0) : x.unsqueeze(0).unsqueeze(0);
  RnnLayerResult r = layer(who, mode, x3, state(h, "h"), state(c, "c"), {w}, Tensor());
  auto out = [&](const Tensor& s) {
    if (!s.defined()) return s;
    return batched ? s.squeeze(0) : s.squeeze(0).squeeze(0);
  };
  return {Tensor(), out(r.h_n), out(r.c_n)};
}

}  // namespace

RnnLayerResult rnn_layer(RnnMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0,
                         const std::vector<RnnWeights>& weights, const Tensor& lengths) {
  return layer(layer_name(mode), mode, x, h0, c0, weights, lengths);
}

Tensor rnn_tanh_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih, const Tensor& b_hh) {
  return cell(RnnMode::rnn_tanh, x, h, Tensor(), {w_ih, w_hh, b_ih, b_hh}).h_n;
}

Tensor rnn_relu_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih, const Tensor& b_hh) {
  return cell(RnnMode::rnn_relu, x, h, Tensor(), {w_ih, w_hh, b_ih, b_hh}).h_n;
}

std::pair<Tensor, Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c,
                                    const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                    const Tensor& b_hh) {
  RnnLayerResult r = cell(RnnMode::lstm, x, h, c, {w_ih, w_hh, b_ih, b_hh});
  return {r.h_n, r.c_n};
}

Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih, const Tensor& b_hh) {
  return cell(RnnMode::gru, x, h, Tensor(), {w_ih, w_hh, b_ih, b_hh}).h_n;
}

}  // namespace moxing
