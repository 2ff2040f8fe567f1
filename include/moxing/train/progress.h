// Training progress on stderr: on a terminal one bar redrawn in place,
//   epoch 3/10 [#####.....] 234/469  1520 items/s  ETA 0:42  loss 0.4123  lr 1.0e-03
// elsewhere (a log file, CI) one plain line every few steps. Not a general progress library.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace moxing {

/// Progress of one loop of total_steps steps (usually one epoch; label names it, e.g.
/// "epoch 3/10"). Speed is items (samples or tokens) per second since the first update.
class Progress {
 public:
  /// Writes to std::cerr, as a bar when stderr is a terminal.
  Progress(int64_t total_steps, std::string label, int64_t plain_every = 50);
  /// Writes to out; is_tty picks the bar (redrawn with '\r') or plain lines.
  Progress(int64_t total_steps, std::string label, int64_t plain_every, std::ostream& out,
           bool is_tty);

  /// Reports that step (1-based, at most total_steps) finished with this loss and learning
  /// rate after items more items. The bar redraws at most ten times a second; plain mode
  /// writes a line when step is a multiple of plain_every.
  void update(int64_t step, double loss, double lr, int64_t items);
  /// Draws the final state and ends the line (the bar's). Called once; update after it is
  /// ignored.
  void finish();

  /// The text of one report: "epoch 3/10 [#####.....] 234/469  1520 items/s  ETA 0:42  loss
  /// 0.4123  lr 1.0e-03" (the bar only when with_bar).
  std::string line(bool with_bar) const;

 private:
  using Clock = std::chrono::steady_clock;

  int64_t total_steps_;
  std::string label_;
  int64_t plain_every_;
  std::ostream& out_;
  bool is_tty_;
  bool finished_ = false;
  int64_t step_ = 0;
  double loss_ = 0;
  double lr_ = 0;
  int64_t items_ = 0;
  Clock::time_point start_;
  Clock::time_point last_draw_;
  bool drawn_ = false;
  size_t last_width_ = 0;
};

}  // namespace moxing
