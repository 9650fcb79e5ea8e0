// `mambagrad demo`: fits y = sin(x) on [-pi, pi] with a small MLP
//   x (N, 1) -> linear -> tanh -> linear -> tanh -> linear -> y_hat (N, 1)
// using only tensors, ops and autograd, with the optimizer written inline, so that a whole
// training loop (forward, loss, backward, update) reads top to bottom on one screen.
#include "apps/demo.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>
#include <vector>

#include "apps/cli_checks.h"
#include "mambagrad.h"

namespace mg::apps {
namespace {

struct DemoOptions {
  int64_t steps = 2000;
  double lr = 0.01;
  uint64_t seed = 0;
  int64_t hidden = 32;
  int64_t points = 128;  // training points, evenly spaced on [-pi, pi]
  std::string optimizer = "adam";
};

// Evenly spaced points on [-pi, pi] and sin of each: x, y: (n, 1), float32.
std::pair<Tensor, Tensor> sine_data(int64_t n) {
  std::vector<float> xs(n), ys(n);
  for (int64_t i = 0; i < n; ++i) {
    double x = -std::numbers::pi + 2 * std::numbers::pi * double(i) / double(n - 1);
    xs[i] = float(x);
    ys[i] = float(std::sin(x));
  }
  return {from_vector(xs, {n, 1}), from_vector(ys, {n, 1})};
}

// A linear layer's parameters, initialized like PyTorch's nn.Linear: uniform in +-1/sqrt(in),
// which keeps the tanh units in their steep range at the start.
struct Layer {
  Tensor weight;  // (out, in)
  Tensor bias;    // (out)
};

Layer make_layer(int64_t in, int64_t out, Generator& gen) {
  double bound = 1.0 / std::sqrt(double(in));
  return {uniform({out, in}, -bound, bound, gen, {.requires_grad = true}),
          uniform({out}, -bound, bound, gen, {.requires_grad = true})};
}

struct Mlp {
  std::vector<Layer> layers;

  Mlp(int64_t hidden, Generator& gen)
      : layers{make_layer(1, hidden, gen), make_layer(hidden, hidden, gen), make_layer(hidden, 1, gen)} {}

  // x: (N, 1) -> (N, 1); tanh between layers, none after the last.
  Tensor forward(const Tensor& x) const {
    Tensor h = x;
    for (size_t i = 0; i < layers.size(); ++i) {
      h = linear(h, layers[i].weight, layers[i].bias);  // (N, out_i)
      if (i + 1 < layers.size()) h = tanh(h);
    }
    return h;
  }

  TensorList parameters() const {
    TensorList params;
    for (const Layer& l : layers) params.insert(params.end(), {l.weight, l.bias});
    return params;
  }
};

// SGD:  p -= lr * g
// Adam (Kingma & Ba 2015), with step t counted from 1:
//   m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
struct Optimizer {
  TensorList params, m, v;
  bool adam;
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int64_t t = 0;

  Optimizer(TensorList p, bool use_adam, double learning_rate) : params(std::move(p)), adam(use_adam), lr(learning_rate) {
    for (const Tensor& param : params) {
      m.push_back(zeros_like(param));
      v.push_back(zeros_like(param));
    }
  }

  // Applies one update from the parameters' .grad() and clears them.
  void step() {
    NoGradGuard no_grad;  // the update itself is not part of any graph
    ++t;
    double correction1 = 1 - std::pow(beta1, double(t)), correction2 = 1 - std::pow(beta2, double(t));
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = params[i].grad();
      if (!adam) {
        add_inplace(params[i], g, -lr);
      } else {
        mul_inplace(m[i], beta1);
        add_inplace(m[i], g, 1 - beta1);
        mul_inplace(v[i], beta2);
        add_inplace(v[i], g * g, 1 - beta2);
        Tensor update = (m[i] / correction1) / (sqrt(v[i] / correction2) + eps);
        add_inplace(params[i], update, -lr);
      }
      params[i].zero_grad();
    }
  }
};

float mse(const Tensor& prediction, const Tensor& target) {
  return mean(pow(prediction - target, 2.0)).item<float>();
}

// The largest |fit(x) - sin(x)| on a grid four times finer than the training points.
double max_fit_error(const Mlp& model, int64_t points) {
  NoGradGuard no_grad;
  auto [x, y] = sine_data(4 * points);
  std::vector<float> error = abs(model.forward(x) - y).to_vector<float>();
  double worst = 0;
  for (float e : error) worst = std::max(worst, double(e));
  return worst;
}

void run_demo(const DemoOptions& options) {
  Generator gen(options.seed);
  const auto data = sine_data(options.points);
  const Tensor &x = data.first, &y = data.second;  // x, y: (N, 1) (not a structured binding: a lambda captures them)
  Mlp model(options.hidden, gen);
  Optimizer optimizer(model.parameters(), options.optimizer == "adam", options.lr);
  std::printf("demo: fitting sin(x) on [-pi, pi] with an MLP 1 -> %lld -> %lld -> 1 (tanh), %s, lr %g, %lld steps\n",
              (long long)options.hidden, (long long)options.hidden, options.optimizer.c_str(), options.lr,
              (long long)options.steps);

  auto start = std::chrono::steady_clock::now();
  int64_t log_every = std::max<int64_t>(1, options.steps / 10);
  float initial_loss = 0;
  for (int64_t step = 0; step < options.steps; ++step) {
    Tensor loss = mean(pow(model.forward(x) - y, 2.0));  // scalar: mean squared error
    loss.backward();
    float value = loss.item<float>();
    if (step == 0) initial_loss = value;
    if (step % log_every == 0) std::printf("step %6lld  loss %.6g\n", (long long)step, value);
    optimizer.step();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  float final_loss = [&] { NoGradGuard no_grad; return mse(model.forward(x), y); }();
  double fell = initial_loss / final_loss;
  std::printf("final loss %.6g (initial %.6g, %.1fx lower) after %lld steps in %.2f s; max |fit - sin(x)| = %.4f\n",
              final_loss, initial_loss, fell, (long long)options.steps, seconds, max_fit_error(model, options.points));
  // A demo that did not learn is a failure, not a quiet success (the CTest test relies on it).
  MG_CHECK(fell >= 10, "demo: the loss fell only ", fell, "x in ", options.steps,
           " steps (expected at least 10x); try more --steps or another --lr");
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* demo = app.add_subcommand("demo", "Fit sin(x) with a small MLP: tensors, autograd and an optimizer at work");
  demo->add_option("--steps", options->steps, "Optimizer steps")->check(CLI::Range(int64_t{1}, int64_t{100'000'000}))->capture_default_str();
  demo->add_option("--lr", options->lr, "Learning rate")->check(kPositive)->capture_default_str();
  demo->add_option("--seed", options->seed, "Seed of the parameter initialization")->check(kNonNegative)->capture_default_str();
  demo->add_option("--hidden", options->hidden, "Width of the two hidden layers")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  demo->add_option("--points", options->points, "Training points on [-pi, pi]")->check(CLI::Range(int64_t{2}, int64_t{1'000'000}))->capture_default_str();
  demo->add_option("--optimizer", options->optimizer, "adam or sgd")->check(CLI::IsMember({"adam", "sgd"}))->capture_default_str();
  demo->callback([options] { run_demo(*options); });
}

}  // namespace mg::apps
