#pragma once
// The loss curve as an SVG picture (no plotting library needed; any browser shows it).
#include <string>
#include <vector>

namespace mg::apps {

struct Series {
  std::string label;
  std::string color;                         // e.g. "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (step, loss)
};

// An SVG document: the series as lines over shared axes, with ticks, labels and a legend.
std::string loss_curve_svg(const std::vector<Series>& series, const std::string& title);

}  // namespace mg::apps
