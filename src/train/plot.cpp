// The curves rasterizer. Lines are drawn as coverage masks (distance from each pixel to the
// segment, one pixel of soft edge) and composited once per series, so joints between
// segments are not blended twice. Text is a 5x7 bitmap font scaled by whole pixels.
#include "moxing/train/plot.h"

#include <stb/stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "moxing/core/error.h"

namespace moxing {

namespace {

struct Glyph {
  char c;
  unsigned char rows[7];  // 5 bits per row, the leftmost pixel in bit 4
};

constexpr Glyph kFont[] = {
    {' ', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000}},
    {'!', {0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00100}},
    {'%', {0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011}},
    {'(', {0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010}},
    {')', {0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000}},
    {'+', {0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000}},
    {',', {0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000}},
    {'-', {0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000}},
    {'.', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100}},
    {'/', {0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000}},
    {'0', {0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110}},
    {'1', {0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
    {'2', {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111}},
    {'3', {0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110}},
    {'4', {0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010}},
    {'5', {0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110}},
    {'6', {0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110}},
    {'7', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000}},
    {'8', {0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110}},
    {'9', {0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100}},
    {':', {0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000}},
    {'=', {0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000}},
    {'?', {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100}},
    {'A', {0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001}},
    {'B', {0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110}},
    {'C', {0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110}},
    {'D', {0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100}},
    {'E', {0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111}},
    {'F', {0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000}},
    {'G', {0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111}},
    {'H', {0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001}},
    {'I', {0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
    {'J', {0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100}},
    {'K', {0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001}},
    {'L', {0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111}},
    {'M', {0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001}},
    {'N', {0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001}},
    {'O', {0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110}},
    {'P', {0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000}},
    {'Q', {0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101}},
    {'R', {0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001}},
    {'S', {0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110}},
    {'T', {0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100}},
    {'U', {0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110}},
    {'V', {0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100}},
    {'W', {0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010}},
    {'X', {0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001}},
    {'Y', {0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100}},
    {'Z', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111}},
    {'[', {0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110}},
    {']', {0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110}},
    {'_', {0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111}},
    {'a', {0b00000, 0b00000, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111}},
    {'b', {0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110}},
    {'c', {0b00000, 0b00000, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110}},
    {'d', {0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111}},
    {'e', {0b00000, 0b00000, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110}},
    {'f', {0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000}},
    {'g', {0b00000, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110}},
    {'h', {0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001}},
    {'i', {0b00100, 0b00000, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110}},
    {'j', {0b00010, 0b00000, 0b00110, 0b00010, 0b00010, 0b10010, 0b01100}},
    {'k', {0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010}},
    {'l', {0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
    {'m', {0b00000, 0b00000, 0b11010, 0b10101, 0b10101, 0b10001, 0b10001}},
    {'n', {0b00000, 0b00000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001}},
    {'o', {0b00000, 0b00000, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110}},
    {'p', {0b00000, 0b00000, 0b11110, 0b10001, 0b11110, 0b10000, 0b10000}},
    {'q', {0b00000, 0b00000, 0b01101, 0b10011, 0b01111, 0b00001, 0b00001}},
    {'r', {0b00000, 0b00000, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000}},
    {'s', {0b00000, 0b00000, 0b01110, 0b10000, 0b01110, 0b00001, 0b11110}},
    {'t', {0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110}},
    {'u', {0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101}},
    {'v', {0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100}},
    {'w', {0b00000, 0b00000, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010}},
    {'x', {0b00000, 0b00000, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001}},
    {'y', {0b00000, 0b00000, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110}},
    {'z', {0b00000, 0b00000, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111}},
};

constexpr int kTextScale = 2;
constexpr int kGlyphAdvance = 6 * kTextScale;
constexpr int kGlyphHeight = 7 * kTextScale;

struct Rgb {
  unsigned char r, g, b;
};
constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kGrid{225, 225, 225};
constexpr Rgb kTextGray{60, 60, 60};

const Glyph* find_glyph(char c) {
  for (const Glyph& g : kFont) {
    if (g.c == c) return &g;
  }
  return nullptr;
}

class Canvas {
 public:
  Canvas(int width, int height) : image_{width, height, {}} {
    image_.pixels.assign(static_cast<size_t>(width) * height * 3, 255);
  }

  void blend(int x, int y, Rgb c, float alpha) {
    if (x < 0 || y < 0 || x >= image_.width || y >= image_.height || alpha <= 0) return;
    unsigned char* p = &image_.pixels[(static_cast<size_t>(y) * image_.width + x) * 3];
    alpha = std::min(alpha, 1.0f);
    p[0] = static_cast<unsigned char>(std::lround(p[0] + (c.r - p[0]) * alpha));
    p[1] = static_cast<unsigned char>(std::lround(p[1] + (c.g - p[1]) * alpha));
    p[2] = static_cast<unsigned char>(std::lround(p[2] + (c.b - p[2]) * alpha));
  }

  void fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y < y1; ++y) {
      for (int x = x0; x < x1; ++x) blend(x, y, c, 1.0f);
    }
  }

  // Text with its top-left corner at (x, y); characters without a glyph draw as '?'.
  void text(int x, int y, const std::string& s, Rgb c) {
    for (char ch : s) {
      const Glyph* g = find_glyph(ch);
      if (!g) g = find_glyph('?');
      for (int row = 0; row < 7; ++row) {
        for (int col = 0; col < 5; ++col) {
          if (g->rows[row] & (1 << (4 - col))) {
            fill_rect(x + col * kTextScale, y + row * kTextScale, x + (col + 1) * kTextScale,
                      y + (row + 1) * kTextScale, c);
          }
        }
      }
      x += kGlyphAdvance;
    }
  }

  RgbImage take() { return std::move(image_); }
  int width() const { return image_.width; }
  int height() const { return image_.height; }

 private:
  RgbImage image_;
};

int text_width(const std::string& s) {
  return s.empty() ? 0 : static_cast<int>(s.size()) * kGlyphAdvance - kTextScale;
}

// Anti-aliased strokes: coverage = clamp(half_width + 0.5 - distance) per pixel, the maximum
// over all segments and dots of one series, clipped to a rectangle.
class Mask {
 public:
  Mask(int x0, int y0, int x1, int y1)
      : x0_(x0), y0_(y0), w_(x1 - x0), h_(y1 - y0), cover_(static_cast<size_t>(w_) * h_, 0) {}

  void segment(double ax, double ay, double bx, double by, double half_width) {
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double r = half_width + 1;
    int xa = static_cast<int>(std::floor(std::min(ax, bx) - r));
    int xb = static_cast<int>(std::ceil(std::max(ax, bx) + r));
    int ya = static_cast<int>(std::floor(std::min(ay, by) - r));
    int yb = static_cast<int>(std::ceil(std::max(ay, by) + r));
    for (int y = std::max(ya, y0_); y <= std::min(yb, y0_ + h_ - 1); ++y) {
      for (int x = std::max(xa, x0_); x <= std::min(xb, x0_ + w_ - 1); ++x) {
        double px = x + 0.5 - ax, py = y + 0.5 - ay;
        double t = len2 > 0 ? std::clamp((px * dx + py * dy) / len2, 0.0, 1.0) : 0.0;
        double ex = px - t * dx, ey = py - t * dy;
        double d = std::sqrt(ex * ex + ey * ey);
        auto c = static_cast<float>(std::clamp(half_width + 0.5 - d, 0.0, 1.0));
        float& cell = cover_[static_cast<size_t>(y - y0_) * w_ + (x - x0_)];
        cell = std::max(cell, c);
      }
    }
  }

  void dot(double cx, double cy, double radius) { segment(cx, cy, cx, cy, radius); }

  void paint(Canvas& canvas, Rgb c) const {
    for (int y = 0; y < h_; ++y) {
      for (int x = 0; x < w_; ++x) canvas.blend(x0_ + x, y0_ + y, c, cover_[y * w_ + x]);
    }
  }

 private:
  int x0_, y0_, w_, h_;
  std::vector<float> cover_;
};

// A "nice" tick step near range / target: 1, 2, 2.5 or 5 times a power of ten.
double nice_step(double range, int target) {
  double raw = range / target;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0}) {
    if (m * magnitude >= raw * (1 - 1e-9)) return m * magnitude;
  }
  return 10 * magnitude;
}

// Enough decimals to tell ticks step apart: 0.25 -> 2, 0.1 -> 1, 2 -> 0.
int tick_decimals(double step) {
  int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  double scaled = step * std::pow(10.0, decimals);
  if (std::abs(scaled - std::round(scaled)) > 1e-6) ++decimals;
  return decimals;
}

std::string tick_text(double value, int decimals) {
  std::string s = fmt::format("{:.{}f}", value, decimals);
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);  // "-0.0"
  return s;
}

struct Axis {
  double lo, hi, step;
};

// The data range with a margin of 5% of it on each side (so no point sits on the frame), and
// a tick step for about five ticks inside it.
Axis make_axis(double lo, double hi, bool integer_data) {
  if (!(hi > lo)) {
    double pad = integer_data ? 1.0 : std::max(std::abs(lo) * 0.1, 1e-3);
    lo -= pad;
    hi += pad;
  }
  double margin = (hi - lo) * 0.05;
  double step = nice_step(hi - lo, 5);
  if (integer_data) step = std::max(step, 1.0);
  return {lo - margin, hi + margin, step};
}

void draw_panel(Canvas& canvas, int px0, int px1, const std::string& title,
                const std::vector<Series>& series, const PlotOptions& options) {
  const int left = px0 + 90, right = px1 - 25, top = 56, bottom = canvas.height() - 60;

  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  bool integer_x = true;
  for (const Series& s : series) {
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
      integer_x = integer_x && s.x[i] == std::round(s.x[i]);
    }
  }
  bool empty = !(xmin <= xmax);
  if (empty) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  Axis ax = make_axis(xmin, xmax, integer_x);
  Axis ay = make_axis(ymin, ymax, false);
  auto to_px = [&](double x) { return left + (x - ax.lo) / (ax.hi - ax.lo) * (right - left); };
  auto to_py = [&](double y) { return bottom - (y - ay.lo) / (ay.hi - ay.lo) * (bottom - top); };

  int x_decimals = tick_decimals(ax.step), y_decimals = tick_decimals(ay.step);
  for (double k = std::ceil(ax.lo / ax.step); k * ax.step <= ax.hi; ++k) {
    double t = k * ax.step;
    int x = static_cast<int>(std::lround(to_px(t)));
    canvas.fill_rect(x, top, x + 1, bottom, kGrid);
    canvas.fill_rect(x, bottom, x + 1, bottom + 6, kBlack);
    std::string label = tick_text(t, x_decimals);
    canvas.text(x - text_width(label) / 2, bottom + 10, label, kTextGray);
  }
  for (double k = std::ceil(ay.lo / ay.step); k * ay.step <= ay.hi; ++k) {
    double t = k * ay.step;
    int y = static_cast<int>(std::lround(to_py(t)));
    canvas.fill_rect(left, y, right, y + 1, kGrid);
    canvas.fill_rect(left - 6, y, left, y + 1, kBlack);
    std::string label = tick_text(t, y_decimals);
    canvas.text(left - 10 - text_width(label), y - kGlyphHeight / 2, label, kTextGray);
  }
  canvas.fill_rect(left, top, right + 1, top + 1, kBlack);
  canvas.fill_rect(left, bottom, right + 1, bottom + 1, kBlack);
  canvas.fill_rect(left, top, left + 1, bottom + 1, kBlack);
  canvas.fill_rect(right, top, right + 1, bottom + 1, kBlack);
  canvas.text((left + right - text_width(options.x_label)) / 2, bottom + 34, options.x_label,
              kTextGray);
  canvas.text(left, top - 38, title, kBlack);
  if (empty) {
    canvas.text((left + right - text_width("no data")) / 2, (top + bottom) / 2, "no data",
                kTextGray);
  }

  // Legend: right-aligned above the frame, a short line sample then the name per series.
  int legend_x = right;
  for (size_t i = series.size(); i-- > 0;) {
    legend_x -= text_width(series[i].name) + 34 + (i + 1 < series.size() ? 20 : 0);
  }
  for (size_t i = 0; i < series.size(); ++i) {
    const unsigned char* c = kSeriesColors[i % 5];
    Rgb color{c[0], c[1], c[2]};
    int y = top - 38 + kGlyphHeight / 2;
    Mask sample(legend_x, y - 4, legend_x + 26, y + 5);
    sample.segment(legend_x + 2, y + 0.5, legend_x + 24, y + 0.5, 1.25);
    sample.paint(canvas, color);
    canvas.text(legend_x + 32, top - 38, series[i].name, kBlack);
    legend_x += text_width(series[i].name) + 34 + 20;
  }

  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const unsigned char* c = kSeriesColors[i % 5];
    Mask mask(left + 1, top + 1, right, bottom);
    size_t n = std::min(s.x.size(), s.y.size());
    bool dots = n <= 40;
    bool have_prev = false;
    double prev_x = 0, prev_y = 0;
    for (size_t k = 0; k < n; ++k) {
      if (!std::isfinite(s.x[k]) || !std::isfinite(s.y[k])) {
        have_prev = false;
        continue;
      }
      double x = to_px(s.x[k]), y = to_py(s.y[k]);
      if (have_prev) mask.segment(prev_x, prev_y, x, y, 1.25);
      if (dots || !have_prev) mask.dot(x, y, 3.5);
      prev_x = x, prev_y = y, have_prev = true;
    }
    mask.paint(canvas, Rgb{c[0], c[1], c[2]});
  }
}

}  // namespace

RgbImage render_curves(const std::vector<Series>& loss_series,
                       const std::vector<Series>& acc_series, const PlotOptions& options) {
  MOXING_CHECK(options.width >= 400 && options.height >= 200 && options.width <= 20000 &&
                   options.height <= 20000,
               "plot_curves: image size {}x{} is outside 400x200 .. 20000x20000", options.width,
               options.height);
  Canvas canvas(options.width, options.height);
  int mid = options.width / 2;
  draw_panel(canvas, 0, mid, options.loss_title, loss_series, options);
  draw_panel(canvas, mid, options.width, options.acc_title, acc_series, options);
  return canvas.take();
}

void plot_curves(const std::string& png_path, const std::vector<Series>& loss_series,
                 const std::vector<Series>& acc_series, const PlotOptions& options) {
  RgbImage image = render_curves(loss_series, acc_series, options);
  if (!stbi_write_png(png_path.c_str(), image.width, image.height, 3, image.pixels.data(),
                      image.width * 3)) {
    fail("plot_curves: cannot write {}", png_path);
  }
}

TrainingCurves curves_from_jsonl(const std::string& jsonl_path) {
  std::ifstream in(jsonl_path);
  MOXING_CHECK(in, "plot_curves: cannot open {}", jsonl_path);
  constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
  struct Point {
    double epoch, loss, accuracy;
  };
  // step -> point, per split; records without a step keep their order after the numbered ones
  std::map<int64_t, Point> train, val;
  auto number = [&](const nlohmann::json& r, const char* key) {
    auto it = r.find(key);
    return it != r.end() && it->is_number() ? it->get<double>() : kNone;
  };
  std::string line;
  constexpr int64_t kUnnumbered = std::numeric_limits<int64_t>::max() / 2;
  int64_t unnumbered = kUnnumbered;
  while (std::getline(in, line)) {
    nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
    if (r.is_discarded() || !r.is_object()) continue;
    auto split = r.find("split");
    double epoch = number(r, "epoch");
    if (split == r.end() || !split->is_string() || !std::isfinite(epoch)) continue;
    double step = number(r, "step");
    int64_t key = std::isfinite(step) ? static_cast<int64_t>(step) : unnumbered++;
    Point p{epoch, number(r, "loss"), number(r, "accuracy")};
    if (*split == "train") {
      train[key] = p;
    } else if (*split == "val") {
      val[key] = p;
    }
  }

  bool whole_epochs = true;
  std::map<int64_t, int> epochs;
  for (const auto* points : {&train, &val}) {
    for (const auto& [step, p] : *points) {
      whole_epochs = whole_epochs && p.epoch == std::floor(p.epoch);
      epochs[static_cast<int64_t>(std::floor(p.epoch))] = 1;
    }
  }
  const bool per_epoch = whole_epochs && static_cast<int>(epochs.size()) >= kMinEpochsForEpochAxis;

  TrainingCurves out;
  out.x_label = per_epoch ? "epoch" : "step";
  Series train_loss{"train", {}, {}}, train_acc{"train", {}, {}};
  Series val_loss{"validation", {}, {}}, val_acc{"validation", {}, {}};
  auto add = [](Series& s, double x, double y) {
    if (std::isfinite(y)) s.x.push_back(x), s.y.push_back(y);
  };
  if (per_epoch) {
    // epoch -> (sum, count) of loss and accuracy over its train records
    std::map<int64_t, std::array<double, 4>> sums;
    for (const auto& [step, p] : train) {
      auto& s = sums[static_cast<int64_t>(p.epoch)];
      if (std::isfinite(p.loss)) s[0] += p.loss, s[1] += 1;
      if (std::isfinite(p.accuracy)) s[2] += p.accuracy, s[3] += 1;
    }
    for (const auto& [epoch, s] : sums) {
      if (s[1] > 0) add(train_loss, static_cast<double>(epoch), s[0] / s[1]);
      if (s[3] > 0) add(train_acc, static_cast<double>(epoch), s[2] / s[3]);
    }
    std::map<int64_t, Point> last_val;  // the last val record of each epoch
    for (const auto& [step, p] : val) last_val[static_cast<int64_t>(p.epoch)] = p;
    for (const auto& [epoch, p] : last_val) {
      add(val_loss, static_cast<double>(epoch), p.loss);
      add(val_acc, static_cast<double>(epoch), p.accuracy);
    }
  } else {
    for (const auto& [step, p] : train) {
      if (step >= kUnnumbered) break;  // no step to place it at
      add(train_loss, static_cast<double>(step), p.loss);
      add(train_acc, static_cast<double>(step), p.accuracy);
    }
    for (const auto& [step, p] : val) {
      if (step >= kUnnumbered) break;
      add(val_loss, static_cast<double>(step), p.loss);
      add(val_acc, static_cast<double>(step), p.accuracy);
    }
  }
  out.loss = {train_loss, val_loss};
  out.accuracy = {train_acc, val_acc};
  return out;
}

void plot_curves_from_jsonl(const std::string& jsonl_path, const std::string& png_path,
                            const PlotOptions& options) {
  TrainingCurves curves = curves_from_jsonl(jsonl_path);
  PlotOptions o = options;
  o.x_label = curves.x_label;
  plot_curves(png_path, curves.loss, curves.accuracy, o);
}

}  // namespace moxing
