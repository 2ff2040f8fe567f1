// Progress bar and plain progress lines.
#include "moxing/train/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>

namespace moxing {

namespace {

constexpr int kBarWidth = 20;

// "0:42", "12:05", "1:02:03".
std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

}  // namespace

Progress::Progress(int64_t total_steps, std::string label, int64_t plain_every)
    : Progress(total_steps, std::move(label), plain_every, std::cerr, isatty(STDERR_FILENO)) {}

Progress::Progress(int64_t total_steps, std::string label, int64_t plain_every, std::ostream& out,
                   bool is_tty)
    : total_steps_(std::max<int64_t>(total_steps, 1)),
      label_(std::move(label)),
      plain_every_(std::max<int64_t>(plain_every, 1)),
      out_(out),
      is_tty_(is_tty),
      start_(Clock::now()),
      last_draw_(start_) {}

std::string Progress::line(bool with_bar) const {
  double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(items_) / elapsed : 0;
  double eta =
      step_ > 0 ? elapsed / static_cast<double>(step_) * static_cast<double>(total_steps_ - step_)
                : NAN;
  std::string text = label_;
  if (with_bar) {
    auto filled = static_cast<int>(kBarWidth * std::min(step_, total_steps_) / total_steps_);
    text += fmt::format(" [{}{}]", std::string(filled, '#'), std::string(kBarWidth - filled, '.'));
  }
  text += fmt::format(" {}/{}  {:.0f} items/s  ETA {}  loss {:.4f}  lr {:.1e}", step_, total_steps_,
                      rate, clock_text(eta), loss_, lr_);
  if (!text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

void Progress::update(int64_t step, double loss, double lr, int64_t items) {
  if (finished_) return;
  step_ = step;
  loss_ = loss;
  lr_ = lr;
  items_ += items;
  if (!is_tty_) {
    if (step % plain_every_ == 0) out_ << line(false) << '\n' << std::flush;
    return;
  }
  auto now = Clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && step < total_steps_) return;
  std::string text = line(true);
  // Pad with spaces over what a longer previous line left on the terminal.
  size_t width = text.size();
  if (width < last_width_) text.append(last_width_ - width, ' ');
  out_ << '\r' << text << std::flush;
  last_width_ = width;
  last_draw_ = now;
  drawn_ = true;
}

void Progress::finish() {
  if (finished_) return;
  if (is_tty_) {
    std::string text = line(true);
    if (text.size() < last_width_) text.append(last_width_ - text.size(), ' ');
    out_ << '\r' << text << '\n' << std::flush;
  } else if (step_ % plain_every_ != 0) {
    out_ << line(false) << '\n' << std::flush;
  }
  finished_ = true;
}

}  // namespace moxing
