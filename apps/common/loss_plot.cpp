#include "apps/common/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace mg::apps {

namespace {
constexpr double kWidth = 720, kHeight = 420;
constexpr double kLeft = 60, kRight = 20, kTop = 40, kBottom = 50;

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// About five "nice" tick values (1, 2 or 5 times a power of ten apart) covering [low, high].
std::vector<double> ticks(double low, double high) {
  double raw = (high - low) / 5;
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = raw / power < 2 ? 2 * power : raw / power < 5 ? 5 * power : 10 * power;
  if (raw / power < 1.5) step = power;
  std::vector<double> out;
  for (double v = std::ceil(low / step) * step; v <= high + 1e-9 * step; v += step) out.push_back(v);
  return out;
}

// Ticks of a log10 axis spanning [low, high] (in log10 units): 1, 2 and 5 times powers of ten,
// thinned to 1 and 10 when the range spans many decades.
std::vector<double> log_ticks(double low, double high) {
  std::vector<double> out;
  const bool dense = high - low < 2.5;
  for (double e = std::floor(low); e <= std::ceil(high); ++e)
    for (double m : {1.0, 2.0, 5.0}) {
      if (!dense && m != 1.0) continue;
      double t = e + std::log10(m);
      if (t >= low - 1e-9 && t <= high + 1e-9) out.push_back(t);
    }
  return out;
}
}  // namespace

std::string loss_curve_svg(const std::vector<Series>& series, const std::string& title) {
  return line_plot_svg(series, title, {});
}

std::string line_plot_svg(const std::vector<Series>& series_in, const std::string& title, const PlotOptions& options) {
  // Log axes: plot log10 of the values (non-positive values cannot be shown and are dropped).
  std::vector<Series> series = series_in;
  for (Series& s : series)
    for (auto& [x, y] : s.points) {
      if (options.log_x) x = x > 0 ? std::log10(x) : std::numeric_limits<double>::quiet_NaN();
      if (options.log_y) y = y > 0 ? std::log10(y) : std::numeric_limits<double>::quiet_NaN();
    }
  auto label = [](double t, bool log) {  // log axes: 20000 reads better as 20k than as 2e+04
    const double v = log ? std::pow(10.0, t) : t;
    return log && v >= 1e4 ? number(v / 1000) + "k" : number(v);
  };
  double x_min = std::numeric_limits<double>::max(), x_max = std::numeric_limits<double>::lowest();
  double y_min = x_min, y_max = x_max;
  for (const Series& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y) || !std::isfinite(x)) continue;
      x_min = std::min(x_min, x), x_max = std::max(x_max, x);
      y_min = std::min(y_min, y), y_max = std::max(y_max, y);
    }
  if (x_min > x_max) x_min = 0, x_max = 1, y_min = 0, y_max = 1;  // nothing to draw
  if (x_max == x_min) x_max = x_min + 1;
  if (y_max == y_min) y_max = y_min + 1;
  double y_pad = 0.05 * (y_max - y_min);
  y_min -= y_pad, y_max += y_pad;
  if (options.log_x) {
    double x_pad = 0.03 * (x_max - x_min);
    x_min -= x_pad, x_max += x_pad;
  }
  auto px = [&](double x) { return kLeft + (x - x_min) / (x_max - x_min) * (kWidth - kLeft - kRight); };
  auto py = [&](double y) { return kTop + (y_max - y) / (y_max - y_min) * (kHeight - kTop - kBottom); };

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + number(kWidth) + "\" height=\"" +
                    number(kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + number(kWidth / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + title + "</text>\n";
  for (double t : options.log_y ? log_ticks(y_min, y_max) : ticks(y_min, y_max)) {
    svg += "<line x1=\"" + number(kLeft) + "\" x2=\"" + number(kWidth - kRight) + "\" y1=\"" + number(py(t)) +
           "\" y2=\"" + number(py(t)) + "\" stroke=\"#e5e5e5\"/>\n";
    svg += "<text x=\"" + number(kLeft - 6) + "\" y=\"" + number(py(t) + 4) + "\" text-anchor=\"end\">" + label(t, options.log_y) +
           "</text>\n";
  }
  for (double t : options.log_x ? log_ticks(x_min, x_max) : ticks(x_min, x_max))
    svg += "<text x=\"" + number(px(t)) + "\" y=\"" + number(kHeight - kBottom + 18) +
           "\" text-anchor=\"middle\">" + label(t, options.log_x) + "</text>\n";
  svg += "<text x=\"" + number(kWidth / 2) + "\" y=\"" + number(kHeight - 12) + "\" text-anchor=\"middle\">" +
         options.x_label + "</text>\n";
  svg += "<text transform=\"translate(16," + number(kHeight / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         options.y_label + "</text>\n";
  svg += "<rect x=\"" + number(kLeft) + "\" y=\"" + number(kTop) + "\" width=\"" + number(kWidth - kLeft - kRight) +
         "\" height=\"" + number(kHeight - kTop - kBottom) + "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (const Series& s : series) {
    std::string path;
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y) || !std::isfinite(x)) continue;
      path += (path.empty() ? "M" : " L") + number(px(x)) + "," + number(py(y));
      if (s.markers)
        svg += "<circle cx=\"" + number(px(x)) + "\" cy=\"" + number(py(y)) + "\" r=\"3\" fill=\"" + s.color + "\"/>\n";
    }
    if (!path.empty())
      svg += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"1.6\"" +
             (s.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/>\n";
  }
  // The legend, on a white box, in the corner of the plot where the fewest points lie.
  const double box_w = 250, box_h = 18 * static_cast<double>(series.size()) + 6;
  const double left = kLeft + 6, right = kWidth - kRight - 6 - box_w;
  const double top = kTop + 4, bottom = kHeight - kBottom - 4 - box_h;
  double best_x = right, best_y = top;
  size_t fewest = std::numeric_limits<size_t>::max();
  for (auto [cx, cy] : {std::pair{right, top}, std::pair{left, top}, std::pair{right, bottom}, std::pair{left, bottom}}) {
    size_t inside = 0;
    for (const Series& s : series)
      for (auto [x, y] : s.points)
        inside += px(x) >= cx && px(x) <= cx + box_w && py(y) >= cy && py(y) <= cy + box_h;
    if (inside < fewest) fewest = inside, best_x = cx, best_y = cy;
  }
  svg += "<rect x=\"" + number(best_x) + "\" y=\"" + number(best_y) + "\" width=\"" + number(box_w) +
         "\" height=\"" + number(box_h) + "\" fill=\"white\" fill-opacity=\"0.85\"/>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    double ly = best_y + 12 + 18 * static_cast<double>(i);
    svg += "<line x1=\"" + number(best_x + 6) + "\" x2=\"" + number(best_x + 30) + "\" y1=\"" + number(ly) +
           "\" y2=\"" + number(ly) + "\" stroke=\"" + s.color + "\" stroke-width=\"2\"" +
           (s.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/>\n";
    svg += "<text x=\"" + number(best_x + 36) + "\" y=\"" + number(ly + 4) + "\">" + s.label + "</text>\n";
  }
  return svg + "</svg>\n";
}

}  // namespace mg::apps
