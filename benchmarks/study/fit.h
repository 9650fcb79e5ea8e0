#pragma once
// Least-squares fits for the study's curves.
#include <cmath>
#include <utility>
#include <vector>

namespace mg::study {

struct LineFit {
  double intercept = 0, slope = 0;  // y = intercept + slope x
  double operator()(double x) const { return intercept + slope * x; }
};

inline LineFit fit_line(const std::vector<std::pair<double, double>>& points) {
  double n = static_cast<double>(points.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : points) sx += x, sy += y, sxx += x * x, sxy += x * y;
  const double denom = n * sxx - sx * sx;
  LineFit f;
  f.slope = denom != 0 ? (n * sxy - sx * sy) / denom : 0;
  f.intercept = n > 0 ? (sy - f.slope * sx) / n : 0;
  return f;
}

// y = c x^p fitted as log y = log c + p log x: returns (c, p).
inline std::pair<double, double> fit_power(const std::vector<std::pair<double, double>>& points) {
  std::vector<std::pair<double, double>> logs;
  for (auto [x, y] : points) logs.emplace_back(std::log(x), std::log(y));
  LineFit f = fit_line(logs);
  return {std::exp(f.intercept), f.slope};
}

}  // namespace mg::study
