#pragma once
// The loss curve as an SVG picture (no plotting library needed; any browser shows it).
#include <string>
#include <vector>

namespace mg::apps {

struct Series {
  std::string label;
  std::string color;                         // e.g. "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (x, y): (step, loss) for a loss curve
  bool dashed = false;                       // e.g. a fitted curve beside measured points
  bool markers = false;                      // a dot at every point
};

struct PlotOptions {
  std::string x_label = "step", y_label = "loss";
  bool log_x = false, log_y = false;  // logarithmic axes (ticks at 1, 2, 5 x powers of ten)
};

// An SVG document: the series as lines over shared axes, with ticks, labels and a legend.
std::string line_plot_svg(const std::vector<Series>& series, const std::string& title, const PlotOptions& options);
// The same with the axes of a loss curve: step and loss.
std::string loss_curve_svg(const std::vector<Series>& series, const std::string& title);

}  // namespace mg::apps
