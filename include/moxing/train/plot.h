// Training curves drawn by moxing itself into `curves.png`: two panels side by side, loss and
// accuracy per epoch or per step, one coloured line per series with tick labels and a legend.
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

/// The series plot_curves_from_jsonl draws, and their x axis.
struct TrainingCurves {
  std::string x_label;           // "epoch" or "step"
  std::vector<Series> loss;      // "train", "validation"
  std::vector<Series> accuracy;  // "train", "validation"
};

/// A run that logs whole epochs over at least this many epochs is plotted per epoch.
constexpr int kMinEpochsForEpochAxis = 5;

/// Reads metrics.jsonl records ({"split": "train"|"val", "epoch", "step", "loss",
/// "accuracy"}); a step logged twice, as after a resume, counts once, last record kept.
/// Lines that do not parse, as a partial last line, are skipped.
/// When every record's "epoch" is a whole number and they span at least
/// kMinEpochsForEpochAxis epochs (the classifier loop), the curves are per epoch: "train" is
/// the mean of that epoch's train records and "validation" its last val record. Otherwise
/// (a step-based run, as the language-model loop's fractional epochs, or a short run) every
/// record is a point at its "step".
TrainingCurves curves_from_jsonl(const std::string& jsonl_path);

/// curves_from_jsonl drawn with plot_curves, the x label taken from the curves.
void plot_curves_from_jsonl(const std::string& jsonl_path, const std::string& png_path,
                            const PlotOptions& options = {});

}  // namespace moxing
