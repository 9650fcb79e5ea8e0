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
}  // namespace

std::string loss_curve_svg(const std::vector<Series>& series, const std::string& title) {
  double x_min = std::numeric_limits<double>::max(), x_max = std::numeric_limits<double>::lowest();
  double y_min = x_min, y_max = x_max;
  for (const Series& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      x_min = std::min(x_min, x), x_max = std::max(x_max, x);
      y_min = std::min(y_min, y), y_max = std::max(y_max, y);
    }
  if (x_min > x_max) x_min = 0, x_max = 1, y_min = 0, y_max = 1;  // nothing to draw
  if (x_max == x_min) x_max = x_min + 1;
  if (y_max == y_min) y_max = y_min + 1;
  double y_pad = 0.05 * (y_max - y_min);
  y_min -= y_pad, y_max += y_pad;
  auto px = [&](double x) { return kLeft + (x - x_min) / (x_max - x_min) * (kWidth - kLeft - kRight); };
  auto py = [&](double y) { return kTop + (y_max - y) / (y_max - y_min) * (kHeight - kTop - kBottom); };

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + number(kWidth) + "\" height=\"" +
                    number(kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + number(kWidth / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + title + "</text>\n";
  for (double t : ticks(y_min, y_max)) {
    svg += "<line x1=\"" + number(kLeft) + "\" x2=\"" + number(kWidth - kRight) + "\" y1=\"" + number(py(t)) +
           "\" y2=\"" + number(py(t)) + "\" stroke=\"#e5e5e5\"/>\n";
    svg += "<text x=\"" + number(kLeft - 6) + "\" y=\"" + number(py(t) + 4) + "\" text-anchor=\"end\">" + number(t) +
           "</text>\n";
  }
  for (double t : ticks(x_min, x_max))
    svg += "<text x=\"" + number(px(t)) + "\" y=\"" + number(kHeight - kBottom + 18) +
           "\" text-anchor=\"middle\">" + number(t) + "</text>\n";
  svg += "<text x=\"" + number(kWidth / 2) + "\" y=\"" + number(kHeight - 12) + "\" text-anchor=\"middle\">step</text>\n";
  svg += "<text transform=\"translate(16," + number(kHeight / 2) + ") rotate(-90)\" text-anchor=\"middle\">loss</text>\n";
  svg += "<rect x=\"" + number(kLeft) + "\" y=\"" + number(kTop) + "\" width=\"" + number(kWidth - kLeft - kRight) +
         "\" height=\"" + number(kHeight - kTop - kBottom) + "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    std::string path;
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) path += (path.empty() ? "M" : " L") + number(px(x)) + "," + number(py(y));
    if (!path.empty())
      svg += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"1.6\"/>\n";
    double ly = kTop + 16 + 18 * static_cast<double>(i);
    svg += "<line x1=\"" + number(kWidth - kRight - 150) + "\" x2=\"" + number(kWidth - kRight - 126) + "\" y1=\"" +
           number(ly) + "\" y2=\"" + number(ly) + "\" stroke=\"" + s.color + "\" stroke-width=\"2\"/>\n";
    svg += "<text x=\"" + number(kWidth - kRight - 120) + "\" y=\"" + number(ly + 4) + "\">" + s.label + "</text>\n";
  }
  return svg + "</svg>\n";
}

}  // namespace mg::apps
