// RNN, LSTM, GRU and the cells against torch (tests/fixtures/nn_recurrent.py): outputs, final
// states and the gradients of inputs, initial states and every parameter, for stacked,
// bidirectional, batch_first and variable-length cases; f64 gradchecks; padding, dropout,
// threads, meta, names and errors.
#include <gtest/gtest.h>

#include "expect_error.h"
#include "moxing/autograd/gradcheck.h"
#include "moxing/core/parallel.h"
#include "moxing/nn/recurrent.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/random.h"
#include "nn_transformer_fixture.h"

using namespace moxing;
using moxing::testing::check_layer_fixture;
using moxing::testing::compare;
using moxing::testing::expect_error;
using V = std::vector<Tensor>;

namespace {

// the fixture's sizes: T 5, B 3, input 4, hidden 5
nn::RNNOptions opts(nn::RNNOptions o = {}) {
  o.input_size = 4;
  o.hidden_size = 5;
  return o;
}

V flat(const nn::RNNOutput& r) {
  V v = {r.output, r.h_n};
  if (r.c_n.defined()) v.push_back(r.c_n);
  return v;
}

std::vector<std::string> names(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [k, t] : m.state_dict()) out.push_back(k);
  return out;
}

// output, h_n and c_n flattened into one tensor, for gradcheck
Tensor joined(const nn::RNNOutput& r) {
  V parts = {r.output.reshape({-1}), r.h_n.reshape({-1})};
  if (r.c_n.defined()) parts.push_back(r.c_n.reshape({-1}));
  return cat(parts, 0);
}

// f64 inputs and parameters of m that require grad: what gradcheck perturbs
V with_params(V inputs, const nn::Module& m) {
  for (const auto& [k, p] : m.named_parameters()) inputs.push_back(p);
  return inputs;
}

Tensor randn64(const Shape& s, Generator& gen) {
  return randn(s, DType::f64, &gen).requires_grad_();
}

}  // namespace

// ---- against torch

TEST(RNN, TanhMatchesTorch) {
  nn::RNN m(4, 5);
  check_layer_fixture("rnn_tanh", m, false, [&m](const V& x) { return flat(m.forward(x[0])); });
}

TEST(RNN, ReluTwoLayersBidirectionalBatchFirstLengthsMatchTorch) {
  nn::RNN m(
      opts({.num_layers = 2, .nonlinearity = "relu", .batch_first = true, .bidirectional = true}));
  check_layer_fixture("rnn_relu_2layer_bidir_batch_first_lengths", m, false,
                      [&m](const V& x) { return flat(m.forward(x[0], x[1], x[2])); });
}

TEST(RNN, BidirectionalLengthsShorterThanTMatchTorch) {
  nn::RNN m(opts({.bidirectional = true}));
  check_layer_fixture("rnn_tanh_bidir_short_lengths", m, false,
                      [&m](const V& x) { return flat(m.forward(x[0], Tensor(), x[1])); });
}

TEST(LSTM, MatchesTorch) {
  nn::LSTM m(4, 5);
  check_layer_fixture("rnn_lstm", m, false, [&m](const V& x) { return flat(m.forward(x[0])); });
}

TEST(LSTM, TwoLayersBidirectionalStatesLengthsMatchTorch) {
  nn::LSTM m(opts({.num_layers = 2, .bidirectional = true}));
  check_layer_fixture("rnn_lstm_2layer_bidir_states_lengths", m, false,
                      [&m](const V& x) { return flat(m.forward(x[0], x[1], x[2], x[3])); });
}

TEST(LSTM, TwoLayersBatchFirstStatesMatchTorch) {
  nn::LSTM m(opts({.num_layers = 2, .batch_first = true}));
  check_layer_fixture("rnn_lstm_2layer_batch_first_states", m, false,
                      [&m](const V& x) { return flat(m.forward(x[0], x[1], x[2])); });
}

TEST(LSTM, NoBiasBidirectionalBatchFirstShortLengthsMatchTorch) {
  nn::LSTM m(opts({.bias = false, .batch_first = true, .bidirectional = true}));
  check_layer_fixture("rnn_lstm_nobias_bidir_batch_first_short_lengths", m, false,
                      [&m](const V& x) { return flat(m.forward(x[0], {}, {}, x[1])); });
}

TEST(GRU, MatchesTorch) {
  nn::GRU m(4, 5);
  check_layer_fixture("rnn_gru", m, false,
                      [&m](const V& x) { return flat(m.forward(x[0], x[1])); });
}

TEST(GRU, TwoLayersBidirectionalBatchFirstLengthsMatchTorch) {
  nn::GRU m(opts({.num_layers = 2, .batch_first = true, .bidirectional = true}));
  check_layer_fixture("rnn_gru_2layer_bidir_batch_first_lengths", m, false,
                      [&m](const V& x) { return flat(m.forward(x[0], x[1], x[2])); });
}

TEST(GRU, TwoLayersShortLengthsMatchTorch) {
  nn::GRU m(4, 5, 2);
  check_layer_fixture("rnn_gru_2layer_lengths", m, false,
                      [&m](const V& x) { return flat(m.forward(x[0], {}, x[1])); });
}

TEST(RNNCell, TanhAndReluMatchTorch) {
  nn::RNNCell tanh_cell(4, 5);
  check_layer_fixture("rnn_cell_tanh", tanh_cell, false,
                      [&](const V& x) { return V{tanh_cell.forward(x[0], x[1])}; });
  nn::RNNCell relu_cell(4, 5, false, "relu");
  check_layer_fixture("rnn_cell_relu_nobias", relu_cell, false,
                      [&](const V& x) { return V{relu_cell.forward(x[0], x[1])}; });
}

TEST(LSTMCell, MatchesTorch) {
  nn::LSTMCell m(4, 5);
  check_layer_fixture("rnn_lstm_cell", m, false, [&m](const V& x) {
    auto [h, c] = m.forward(x[0], x[1], x[2]);
    return V{h, c};
  });
  nn::LSTMCell m2(4, 5);
  check_layer_fixture("rnn_lstm_cell_zero_state", m2, false, [&m2](const V& x) {
    auto [h, c] = m2.forward(x[0]);
    return V{h, c};
  });
}

TEST(GRUCell, BatchedAndUnbatchedMatchTorch) {
  nn::GRUCell m(4, 5);
  check_layer_fixture("rnn_gru_cell", m, false,
                      [&m](const V& x) { return V{m.forward(x[0], x[1])}; });
  nn::GRUCell m2(4, 5);
  check_layer_fixture("rnn_gru_cell_unbatched", m2, false,
                      [&m2](const V& x) { return V{m2.forward(x[0], x[1])}; });
}

// ---- f64 gradcheck: inputs, initial states and every parameter

TEST(Recurrent, GradcheckEveryModeStackedBidirectionalWithLengths) {
  Generator gen(5);
  Tensor lengths = from_vector<int64_t>({2, 3, 1});
  for (std::string kind : {"tanh", "relu", "lstm", "gru"}) {
    nn::RNNOptions o{.input_size = 3, .hidden_size = 2, .num_layers = 2, .bidirectional = true};
    std::shared_ptr<nn::RNNBase> m;
    if (kind == "lstm") {
      m = std::make_shared<nn::LSTM>(o, &gen);
    } else if (kind == "gru") {
      m = std::make_shared<nn::GRU>(o, &gen);
    } else {
      o.nonlinearity = kind;
      m = std::make_shared<nn::RNN>(o, &gen);
    }
    m->to(DType::f64);
    const bool lstm = kind == "lstm";
    Tensor x = randn64({3, 3, 3}, gen), h0 = randn64({4, 3, 2}, gen);
    Tensor c0 = lstm ? randn64({4, 3, 2}, gen) : Tensor();
    V in = with_params({x, h0, c0}, *m);
    auto f = [&](const V& v) {
      if (lstm) return joined(static_cast<nn::LSTM&>(*m).forward(v[0], v[1], v[2], lengths));
      if (kind == "gru") return joined(static_cast<nn::GRU&>(*m).forward(v[0], v[1], lengths));
      return joined(static_cast<nn::RNN&>(*m).forward(v[0], v[1], lengths));
    };
    auto r = autograd::gradcheck(f, in);
    EXPECT_TRUE(r.ok) << kind << ": " << r.message;
  }
}

TEST(Recurrent, GradcheckBatchFirstWithoutInitialState) {
  Generator gen(6);
  nn::GRU m(nn::RNNOptions{.input_size = 2, .hidden_size = 3, .batch_first = true}, &gen);
  m.to(DType::f64);
  Tensor x = randn64({2, 4, 2}, gen);
  auto r =
      autograd::gradcheck([&](const V& v) { return joined(m.forward(v[0])); }, with_params({x}, m));
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Recurrent, GradcheckCells) {
  Generator gen(7);
  nn::RNNCell rnn(3, 2, true, "tanh", &gen);
  nn::LSTMCell lstm(3, 2, true, &gen);
  nn::GRUCell gru(3, 2, false, &gen);
  for (nn::Module* m : std::vector<nn::Module*>{&rnn, &lstm, &gru}) m->to(DType::f64);
  Tensor x = randn64({2, 3}, gen), h = randn64({2, 2}, gen), c = randn64({2, 2}, gen);
  auto r = autograd::gradcheck([&](const V& v) { return rnn.forward(v[0], v[1]); },
                               with_params({x, h}, rnn));
  EXPECT_TRUE(r.ok) << "RNNCell: " << r.message;
  r = autograd::gradcheck(
      [&](const V& v) {
        auto [h2, c2] = lstm.forward(v[0], v[1], v[2]);
        return cat({h2, c2}, 0);
      },
      with_params({x, h, c}, lstm));
  EXPECT_TRUE(r.ok) << "LSTMCell: " << r.message;
  r = autograd::gradcheck([&](const V& v) { return gru.forward(v[0], v[1]); },
                          with_params({x, h}, gru));
  EXPECT_TRUE(r.ok) << "GRUCell: " << r.message;
}

// ---- semantics

// Sequence b of a padded batch gives what it gives alone, cut to its length; the padded
// steps' values change nothing and their outputs are 0.
TEST(Recurrent, PaddedStepsChangeNothing) {
  Generator gen(8);
  nn::LSTM m(
      nn::RNNOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2, .bidirectional = true},
      &gen);
  const std::vector<int64_t> lens = {4, 6, 1, 3};
  Tensor lengths = from_vector<int64_t>(lens);
  Tensor x = randn({6, 4, 3}, DType::f32, &gen);
  nn::RNNOutput r = m.forward(x, {}, {}, lengths);
  Tensor noisy = x.clone();
  for (int64_t b = 0; b < 4; ++b) {
    if (lens[b] < 6) noisy.narrow(0, lens[b], 6 - lens[b]).select(1, b).fill_(100.0);
  }
  nn::RNNOutput rn = m.forward(noisy, {}, {}, lengths);
  EXPECT_EQ(compare(rn.output, r.output, 0, 0), "");
  EXPECT_EQ(compare(rn.h_n, r.h_n, 0, 0), "");
  EXPECT_EQ(compare(rn.c_n, r.c_n, 0, 0), "");
  for (int64_t b = 0; b < 4; ++b) {
    Tensor xb = x.narrow(0, 0, lens[b]).narrow(1, b, 1);
    nn::RNNOutput alone = m.forward(xb);
    EXPECT_EQ(compare(r.output.narrow(0, 0, lens[b]).narrow(1, b, 1), alone.output, 1e-6, 1e-5), "")
        << "sequence " << b;
    EXPECT_EQ(compare(r.h_n.narrow(1, b, 1), alone.h_n, 1e-6, 1e-5), "") << "sequence " << b;
    EXPECT_EQ(compare(r.c_n.narrow(1, b, 1), alone.c_n, 1e-6, 1e-5), "") << "sequence " << b;
    if (lens[b] < 6) {
      Tensor pad = r.output.narrow(0, lens[b], 6 - lens[b]).select(1, b);
      EXPECT_EQ(compare(pad, zeros_like(pad), 0, 0), "") << "sequence " << b;
    }
  }
}

TEST(Recurrent, UnbatchedEqualsABatchOfOne) {
  Generator gen(9);
  nn::GRU m(nn::RNNOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2}, &gen);
  Tensor x = randn({5, 3}, DType::f32, &gen), h0 = randn({2, 4}, DType::f32, &gen);
  nn::RNNOutput u = m.forward(x, h0);
  nn::RNNOutput b = m.forward(x.unsqueeze(1), h0.unsqueeze(1));
  EXPECT_EQ(u.output.shape(), (Shape{5, 4}));
  EXPECT_EQ(u.h_n.shape(), (Shape{2, 4}));
  EXPECT_EQ(compare(u.output, b.output.squeeze(1), 0, 0), "");
  EXPECT_EQ(compare(u.h_n, b.h_n.squeeze(1), 0, 0), "");
}

// dropout acts between layers in training only: with p = 1 the second layer sees zeros
TEST(Recurrent, DropoutBetweenLayersOnlyInTraining) {
  Generator gen(10);
  nn::RNNOptions o{.input_size = 3, .hidden_size = 4, .num_layers = 2, .dropout = 1.0};
  nn::LSTM m(o, &gen);
  nn::LSTM top(nn::RNNOptions{.input_size = 4, .hidden_size = 4}, &gen);
  top.load_state_dict({{"weight_ih_l0", m.weights(1).w_ih},
                       {"weight_hh_l0", m.weights(1).w_hh},
                       {"bias_ih_l0", m.weights(1).b_ih},
                       {"bias_hh_l0", m.weights(1).b_hh}});
  Tensor x = randn({5, 2, 3}, DType::f32, &gen);
  nn::RNNOutput trained = m.forward(x);
  nn::RNNOutput on_zeros = top.forward(zeros({5, 2, 4}));
  EXPECT_EQ(compare(trained.output, on_zeros.output, 1e-6, 1e-5), "");
  m.eval();
  nn::RNNOutput evaluated = m.forward(x);
  nn::LSTM plain(nn::RNNOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2}, &gen);
  plain.load_state_dict(m.state_dict());
  plain.train();  // no dropout option: training mode changes nothing
  EXPECT_EQ(compare(evaluated.output, plain.forward(x).output, 0, 0), "");
  EXPECT_NE(compare(evaluated.output, trained.output, 1e-6, 1e-5), "");
}

// the gate pass splits rows across threads; results do not depend on the thread count
TEST(Recurrent, ThreadedGatePassMatchesOneThread) {
  Generator gen(11);
  nn::LSTM m(nn::RNNOptions{.input_size = 16, .hidden_size = 64, .bidirectional = true}, &gen);
  Tensor x = randn({4, 96, 16}, DType::f32, &gen);
  Tensor lengths = randint(1, 5, {96}, DType::i64, &gen);
  auto run = [&](int threads) {
    set_num_threads(threads);
    m.zero_grad();
    Tensor xg = x.clone().requires_grad_();
    nn::RNNOutput r = m.forward(xg, {}, {}, lengths);
    sum(mul(r.output, r.output)).backward();
    return V{r.output, r.h_n, xg.grad(), m.weights(0, 1).w_hh.grad()};
  };
  const int saved = num_threads();
  V one = run(1), two = run(4);
  set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(compare(two[i], one[i], 1e-6, 1e-5), "") << i;
}

TEST(Recurrent, MetaDeviceGivesShapes) {
  nn::LSTM m(nn::RNNOptions{.input_size = 3,
                            .hidden_size = 4,
                            .num_layers = 2,
                            .batch_first = true,
                            .bidirectional = true});
  m.to(kMeta);
  Tensor x = empty({2, 7, 3}, kMeta).requires_grad_();
  nn::RNNOutput r = m.forward(x);
  EXPECT_EQ(r.output.shape(), (Shape{2, 7, 8}));
  EXPECT_EQ(r.h_n.shape(), (Shape{4, 2, 4}));
  EXPECT_EQ(r.c_n.shape(), (Shape{4, 2, 4}));
  sum(r.output).backward();
  EXPECT_EQ(x.grad().shape(), x.shape());
}

// ---- names, layout, errors

TEST(Recurrent, ParameterNamesAndShapesAsTorch) {
  nn::LSTM lstm(opts({.num_layers = 2, .bidirectional = true}));
  std::vector<std::string> n = names(lstm);
  ASSERT_EQ(n.size(), 16u);
  EXPECT_EQ((std::vector<std::string>(n.begin(), n.begin() + 8)),
            (std::vector<std::string>{"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                      "weight_ih_l0_reverse", "weight_hh_l0_reverse",
                                      "bias_ih_l0_reverse", "bias_hh_l0_reverse"}));
  EXPECT_EQ(n[8], "weight_ih_l1");
  EXPECT_EQ(lstm.weights(1, 1).w_ih.shape(), (Shape{20, 10}));
  EXPECT_EQ(lstm.weights(0).w_hh.shape(), (Shape{20, 5}));
  nn::GRU gru(opts({.bias = false}));
  EXPECT_EQ(names(gru), (std::vector<std::string>{"weight_ih_l0", "weight_hh_l0"}));
  EXPECT_EQ(gru.weights(0).w_ih.shape(), (Shape{15, 4}));
  nn::LSTMCell cell(4, 5);
  EXPECT_EQ(names(cell),
            (std::vector<std::string>{"weight_ih", "weight_hh", "bias_ih", "bias_hh"}));
  EXPECT_EQ(lstm.extra_repr(), "4, 5, num_layers=2, bidirectional=True");
  // torch's init: U(-1/sqrt(H), 1/sqrt(H))
  nn::RNN big(4, 100);
  Tensor w = big.weights(0).w_hh;
  EXPECT_LE(max(abs(w)).item<double>(), 0.1);
  EXPECT_GT(max(abs(w)).item<double>(), 0.09);
}

TEST(Recurrent, ClearErrors) {
  nn::LSTM m(opts({.num_layers = 2}));
  Tensor x = randn({5, 3, 4});
  expect_error(
      [&] {
        m.forward(x, {}, {}, from_vector<int64_t>({3, 6, 2}));
      },
      "LSTM: lengths[1] = 6 is outside [1, T = 5]");
  expect_error(
      [&] {
        m.forward(x, {}, {}, from_vector<int64_t>({3, 0, 2}));
      },
      "lengths[1] = 0 is outside [1, T = 5]");
  expect_error(
      [&] {
        m.forward(x, {}, {}, tensor({3, 4, 2}));
      },
      "lengths must be an i64 tensor of shape (B) = (3)");
  expect_error(
      [&] {
        m.forward(x, {}, {}, from_vector<int64_t>({3, 4}));
      },
      "lengths must be an i64 tensor of shape (B) = (3)");
  expect_error(
      [&] {
        m.forward(x, zeros({2, 3, 6}));
      },
      "h0 must be (num_layers * num_directions, B, hidden_size) = [2, 3, 5]");
  expect_error([&] { m.forward(x, {}, zeros({1, 3, 5})); }, "c0 must be");
  expect_error(
      [&] {
        m.forward(randn({5, 3, 7}));
      },
      "the input has 7 features (last dim) but input_size is 4");
  expect_error([&] { m.forward(randn({5})); }, "input must be (T, B, input_size)");
  expect_error(
      [&] {
        m.forward(x, zeros({2, 3, 5}, DType::f64));
      },
      "h0 is f64 but the input is f32");
  expect_error([&] { nn::RNN(opts({.nonlinearity = "gelu"})); },
               "nonlinearity must be \"tanh\" or \"relu\"");
  expect_error([&] { nn::GRU(opts({.dropout = 1.5})); }, "dropout must be in [0, 1]");
  nn::GRUCell cell(4, 5);
  expect_error([&] { cell.forward(randn({3, 4}), zeros({5})); }, "GRUCell: h must be");
  expect_error([&] { cell.forward(randn({3, 6})); }, "GRUCell: the input has 6 features");
  nn::GRU gru(4, 5);
  expect_error(
      [&] {
        rnn_layer(RnnMode::gru, x, {}, zeros({1, 3, 5}), {gru.weights(0)});
      },
      "GRU: c0 is for LSTM only");
}
