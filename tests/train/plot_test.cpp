// curves.png: decoded back with stb_image, it has the requested size, white background, the
// series colours, black axes and text; the jsonl path aggregates train steps per epoch for a
// long epoch-based run and plots every logged step otherwise.
#include "moxing/train/plot.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "moxing/core/error.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

using namespace moxing;
namespace fs = std::filesystem;

namespace {

struct Decoded {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;
  // Pixels exactly equal to colour c.
  int count(const unsigned char* c) const {
    int n = 0;
    for (size_t i = 0; i < rgb.size(); i += 3) {
      n += rgb[i] == c[0] && rgb[i + 1] == c[1] && rgb[i + 2] == c[2];
    }
    return n;
  }
  int count_in(const unsigned char* c, int x0, int x1) const {
    int n = 0;
    for (int y = 0; y < height; ++y) {
      for (int x = x0; x < x1; ++x) {
        const unsigned char* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
        n += p[0] == c[0] && p[1] == c[1] && p[2] == c[2];
      }
    }
    return n;
  }
};

Decoded decode(const fs::path& path) {
  Decoded d;
  int channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &d.width, &d.height, &channels, 3);
  if (!data) return d;
  d.rgb.assign(data, data + static_cast<size_t>(d.width) * d.height * 3);
  stbi_image_free(data);
  return d;
}

class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("moxing_plot_test_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!getenv("MOXING_KEEP_PLOTS")) fs::remove_all(dir_);
  }
  fs::path dir_;
};

constexpr unsigned char kWhite[3] = {255, 255, 255};
constexpr unsigned char kBlackPixel[3] = {0, 0, 0};

}  // namespace

TEST_F(PlotTest, CurvesDecodeWithColoursAndText) {
  Series train_loss{"train", {}, {}}, val_loss{"validation", {}, {}};
  Series train_acc{"train", {}, {}}, val_acc{"validation", {}, {}};
  for (int e = 1; e <= 10; ++e) {
    train_loss.x.push_back(e), train_loss.y.push_back(2.3 * std::exp(-0.35 * e) + 0.2);
    val_loss.x.push_back(e), val_loss.y.push_back(2.3 * std::exp(-0.3 * e) + 0.3);
    train_acc.x.push_back(e), train_acc.y.push_back(0.95 - 0.5 * std::exp(-0.5 * e));
    val_acc.x.push_back(e), val_acc.y.push_back(0.9 - 0.5 * std::exp(-0.45 * e));
  }
  fs::path png = dir_ / "curves.png";
  plot_curves(png.string(), {train_loss, val_loss}, {train_acc, val_acc});

  Decoded d = decode(png);
  ASSERT_EQ(d.width, 1200);
  ASSERT_EQ(d.height, 480);
  EXPECT_GT(d.count(kWhite), d.width * d.height / 2);
  EXPECT_GT(d.count(kBlackPixel), 2000);  // frames, ticks, titles and legend text
  // Each line colour appears at full strength in both panels.
  for (int s = 0; s < 2; ++s) {
    EXPECT_GT(d.count_in(kSeriesColors[s], 0, 600), 200) << "series " << s << " left panel";
    EXPECT_GT(d.count_in(kSeriesColors[s], 600, 1200), 200) << "series " << s << " right";
  }
  EXPECT_EQ(d.count(kSeriesColors[2]), 0);
}

TEST_F(PlotTest, OptionsSizeAndEmptyPanel) {
  fs::path png = dir_ / "small.png";
  PlotOptions options;
  options.width = 800;
  options.height = 300;
  plot_curves(png.string(), {Series{"train", {1.0}, {0.7}}}, {}, options);
  Decoded d = decode(png);
  ASSERT_EQ(d.width, 800);
  ASSERT_EQ(d.height, 300);
  EXPECT_GT(d.count_in(kSeriesColors[0], 0, 400), 20);  // a single point still shows as a dot
  EXPECT_EQ(d.count_in(kSeriesColors[0], 400, 800), 0);
}

TEST_F(PlotTest, RenderMatchesWrittenFile) {
  Series s{"train", {1, 2, 3}, {3, 2, 1}};
  RgbImage image = render_curves({s}, {s});
  plot_curves((dir_ / "same.png").string(), {s}, {s});
  Decoded d = decode(dir_ / "same.png");
  EXPECT_EQ(d.rgb, image.pixels);
}

TEST_F(PlotTest, FromJsonlAggregatesPerEpoch) {
  fs::path jsonl = dir_ / "metrics.jsonl";
  {
    std::ofstream out(jsonl);
    int step = 0;
    for (int e = 1; e <= 6; ++e) {
      for (int k = 0; k < 5; ++k) {
        ++step;
        nlohmann::json r = {{"split", "train"},
                            {"epoch", e},
                            {"step", step},
                            {"loss", 2.0 / (step)},
                            {"accuracy", 1.0 - 0.5 / step}};
        out << r.dump() << "\n";
      }
      nlohmann::json v = {{"split", "val"},
                          {"epoch", e},
                          {"step", step},
                          {"loss", 2.5 / (e * 5)},
                          {"accuracy", 0.9 - 0.4 / e}};
      out << v.dump() << "\n";
    }
    // A resumed run logs steps 29 and 30 again; the later records count.
    out << nlohmann::json{{"split", "train"}, {"epoch", 6}, {"step", 29}, {"loss", 1.0}}.dump()
        << "\n";
    out << R"({"split": "train", "ep)";  // a partial line from a crash
  }
  TrainingCurves curves = curves_from_jsonl(jsonl.string());
  EXPECT_EQ(curves.x_label, "epoch");
  ASSERT_EQ(curves.loss.size(), 2u);
  EXPECT_EQ(curves.loss[0].name, "train");
  EXPECT_EQ(curves.loss[1].name, "validation");
  EXPECT_EQ(curves.loss[0].x, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_NEAR(curves.loss[0].y[0], (2.0 + 1.0 + 2.0 / 3 + 0.5 + 0.4) / 5, 1e-12);
  EXPECT_NEAR(curves.loss[0].y[5], (2.0 / 26 + 2.0 / 27 + 2.0 / 28 + 1.0 + 2.0 / 30) / 5, 1e-12);
  EXPECT_NEAR(curves.accuracy[0].y[1],
              1.0 - 0.5 * (1.0 / 6 + 1.0 / 7 + 1.0 / 8 + 1.0 / 9 + 0.1) / 5, 1e-12);
  EXPECT_EQ(curves.loss[1].y, (std::vector<double>{0.5, 0.25, 2.5 / 15, 0.125, 0.1, 2.5 / 30}));
  EXPECT_NEAR(curves.accuracy[1].y[3], 0.8, 1e-12);
  fs::path png = dir_ / "curves.png";
  plot_curves_from_jsonl(jsonl.string(), png.string());
  Decoded d = decode(png);
  ASSERT_EQ(d.width, 1200);
  for (int s = 0; s < 2; ++s) {
    EXPECT_GT(d.count_in(kSeriesColors[s], 0, 600), 100) << "series " << s;
    EXPECT_GT(d.count_in(kSeriesColors[s], 600, 1200), 100) << "series " << s;
  }
}

// The language-model loop: train loss every 50 steps, validation every 100, the epoch a
// fraction (step / steps per epoch). Every record is a point at its step.
TEST_F(PlotTest, FromJsonlStepBasedRunPlotsEveryLoggedStep) {
  fs::path jsonl = dir_ / "metrics.jsonl";
  const int steps_per_epoch = 120;
  {
    std::ofstream out(jsonl);
    for (int step = 50; step <= 300; step += 50) {
      double epoch = static_cast<double>(step) / steps_per_epoch;
      out << nlohmann::json{{"split", "train"},
                            {"epoch", epoch},
                            {"step", step},
                            {"loss", 5.0 - step / 100.0}}
                 .dump()
          << "\n";
      if (step % 100 == 0) {
        out << nlohmann::json{{"split", "val"},
                              {"epoch", epoch},
                              {"step", step},
                              {"loss", 5.5 - step / 100.0},
                              {"accuracy", step / 1000.0}}
                   .dump()
            << "\n";
      }
    }
  }
  TrainingCurves curves = curves_from_jsonl(jsonl.string());
  EXPECT_EQ(curves.x_label, "step");
  EXPECT_EQ(curves.loss[0].x, (std::vector<double>{50, 100, 150, 200, 250, 300}));
  EXPECT_EQ(curves.loss[0].y, (std::vector<double>{4.5, 4.0, 3.5, 3.0, 2.5, 2.0}));
  EXPECT_EQ(curves.loss[1].x, (std::vector<double>{100, 200, 300}));
  EXPECT_EQ(curves.loss[1].y, (std::vector<double>{4.5, 3.5, 2.5}));
  EXPECT_TRUE(curves.accuracy[0].x.empty());  // the train records carry no accuracy
  EXPECT_EQ(curves.accuracy[1].y, (std::vector<double>{0.1, 0.2, 0.3}));

  fs::path png = dir_ / "curves.png";
  plot_curves_from_jsonl(jsonl.string(), png.string());
  Decoded d = decode(png);
  EXPECT_GT(d.count_in(kSeriesColors[0], 0, 600), 100);
  EXPECT_GT(d.count_in(kSeriesColors[1], 600, 1200), 100);
}

// A classifier run of fewer epochs than kMinEpochsForEpochAxis: its logged steps, not two
// per-epoch points.
TEST_F(PlotTest, FromJsonlShortEpochRunPlotsSteps) {
  fs::path jsonl = dir_ / "metrics.jsonl";
  {
    std::ofstream out(jsonl);
    for (int step = 10; step <= 40; step += 10) {
      out << nlohmann::json{{"split", "train"},
                            {"epoch", step <= 20 ? 1 : 2},
                            {"step", step},
                            {"loss", 1.0 / step},
                            {"accuracy", 0.5}}
                 .dump()
          << "\n";
    }
    out << nlohmann::json{{"split", "train"}, {"epoch", 2}, {"loss", 9.0}}.dump() << "\n";
  }
  TrainingCurves curves = curves_from_jsonl(jsonl.string());
  EXPECT_EQ(curves.x_label, "step");
  EXPECT_EQ(curves.loss[0].x, (std::vector<double>{10, 20, 30, 40}));  // no step: not placed
  EXPECT_TRUE(curves.loss[1].x.empty());
}

TEST_F(PlotTest, Errors) {
  EXPECT_THROW(plot_curves_from_jsonl((dir_ / "missing.jsonl").string(), (dir_ / "x.png").string()),
               Error);
  EXPECT_THROW(plot_curves((dir_ / "no_such_dir" / "x.png").string(), {}, {}), Error);
  PlotOptions tiny;
  tiny.width = 10;
  EXPECT_THROW(render_curves({}, {}, tiny), Error);
}
