// Training curves drawn by moxing itself into `curves.png`: two panels side by side, loss per
// epoch and accuracy per epoch, one coloured line per series with tick labels and a legend.
// A tiny rasterizer (anti-aliased lines, a 5x7 bitmap font), not a plotting library.
#pragma once

#include <string>
#include <vector>

namespace moxing {

/// One line of a panel: points (x[i], y[i]); non-finite y values break the line.
struct Series {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
};

struct PlotOptions {
  /// Size of the whole image (both panels) in pixels.
  int width = 1200;
  int height = 480;
  std::string x_label = "epoch";
  std::string loss_title = "loss";
  std::string acc_title = "accuracy";
};

/// Series colours in order: blue, orange, green, red, purple (then repeating).
constexpr unsigned char kSeriesColors[5][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}};

/// An RGB image, rows top to bottom, 3 bytes per pixel.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<unsigned char> pixels;
};

/// Draws the two panels (loss_series left, acc_series right; series i of each panel in
/// kSeriesColors[i]). A panel without points says "no data".
RgbImage render_curves(const std::vector<Series>& loss_series,
                       const std::vector<Series>& acc_series, const PlotOptions& options = {});

/// render_curves written as a PNG file. Throws moxing::Error when the file cannot be written.
void plot_curves(const std::string& png_path, const std::vector<Series>& loss_series,
                 const std::vector<Series>& acc_series, const PlotOptions& options = {});

/// The per-epoch series plot_curves_from_jsonl draws.
struct EpochCurves {
  std::vector<Series> loss;      // "train", "validation"
  std::vector<Series> accuracy;  // "train", "validation"
};

/// Reads metrics.jsonl records ({"split": "train"|"val", "epoch", "step", "loss",
/// "accuracy"}) and plots per epoch "train" (the mean of the train records of that epoch;
/// a step logged twice, as after a resume, counts once, last record kept) and "validation"
/// (the last val record of each epoch). Lines that do not parse, as a partial last line,
/// are skipped. Epochs are the floor of "epoch".
EpochCurves epoch_curves_from_jsonl(const std::string& jsonl_path);

/// epoch_curves_from_jsonl drawn with plot_curves.
void plot_curves_from_jsonl(const std::string& jsonl_path, const std::string& png_path,
                            const PlotOptions& options = {});

}  // namespace moxing
