// Lesson 01: tensors and autograd from scratch. README.md walks through this file top to bottom.
// Every number the lesson quotes is printed here and checked: the program exits 1 if one is off.
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include <mambagrad.h>

using namespace mg;

static int failures = 0;
static void check(bool ok, const char* what) {
  if (!ok) std::printf("FAIL: %s\n", what), ++failures;
}
static bool close(double a, double b, double tol) { return std::abs(a - b) <= tol * (1 + std::abs(b)); }

// ---- 1. A tensor is a storage plus a view (sizes, strides, offset).
static void tensors() {
  std::printf("== 1. storage, shape, strides, views\n");
  Tensor a = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor at = a.transpose(0, 1);  // no copy: the same 6 floats, read in another order
  std::printf("a   shape %s strides %s contiguous %d\n", str(a.shape()).c_str(), str(a.strides()).c_str(),
              a.is_contiguous());
  std::printf("a^T shape %s strides %s contiguous %d\n", str(at.shape()).c_str(), str(at.strides()).c_str(),
              at.is_contiguous());
  check(at.strides() == Shape{1, 3}, "the transpose swaps the strides: [1, 3]");
  check(a.impl()->storage == at.impl()->storage, "a view shares its base's storage");
  // Element (i, j) of a view lives at storage[offset + i * stride0 + j * stride1].
  const float* storage = static_cast<const float*>(a.impl()->storage->data());
  float at_2_1 = storage[at.offset() + 2 * at.strides()[0] + 1 * at.strides()[1]];
  std::printf("a^T[2][1] = storage[0 + 2*1 + 1*3] = %g (a[1][2] = %g)\n", at_2_1, a.to_vector<float>()[1 * 3 + 2]);
  check(at_2_1 == 6.0f, "a^T[2][1] is a[1][2] = 6");
  a.data<float>()[1 * 3 + 2] = 60;  // write through a ...
  std::printf("after a[1][2] = 60, a^T[2][1] = %g\n", at.to_vector<float>()[2 * 2 + 1]);
  check(at.to_vector<float>()[5] == 60.0f, "... and the view sees it");
  Tensor row = a.narrow(0, 1, 1);  // the second row: same storage, offset 3
  std::printf("a.narrow(0, 1, 1): shape %s offset %lld\n", str(row.shape()).c_str(), (long long)row.offset());
  check(row.offset() == 3, "narrow moves the offset");
  Tensor copy = at.contiguous();  // a fresh row-major copy
  std::printf("a^T.contiguous(): strides %s, own storage %d\n", str(copy.strides()).c_str(),
              copy.impl()->storage != a.impl()->storage);
  check(copy.strides() == Shape{2, 1} && copy.impl()->storage != a.impl()->storage, "contiguous() copies");
}

// ---- 2. Reverse mode by hand: f(x, y) = (exp(x y) + x) y, with plain doubles.
struct Grads { double f, dx, dy; };

static Grads by_hand(double x, double y) {
  // Forward: one line per intermediate, exactly the graph mg records.
  double a = x * y, b = std::exp(a), c = b + x, f = c * y;
  // Backward: v_bar = df/dv, visiting the lines in reverse. A variable used twice (x, y)
  // receives one contribution per use: its bar is a sum.
  double f_bar = 1;
  double c_bar = f_bar * y, y_bar = f_bar * c;  // f = c y
  double b_bar = c_bar, x_bar = c_bar;          // c = b + x
  double a_bar = b_bar * b;                     // b = exp(a): db/da = b
  x_bar += a_bar * y, y_bar += a_bar * x;       // a = x y
  return {f, x_bar, y_bar};
}

// A node's name; a leaf's accumulator also says which leaf (x or y) it writes.
static std::string label(const Node* node, const Tensor& x) {
  auto* acc = dynamic_cast<const AccumulateGrad*>(node);
  return acc ? (acc->leaf() == x.impl_ptr() ? "AccumulateGrad(x)" : "AccumulateGrad(y)") : node->name();
}

// Prints the graph below `node`, depth first. A node reached twice is printed twice.
static void print_graph(const std::shared_ptr<Node>& node, const Tensor& x, int depth) {
  std::printf("%*s%s\n", 2 * depth, "", label(node.get(), x).c_str());
  for (const Edge& e : node->next_edges)
    if (e.node) print_graph(e.node, x, depth + 1);
}

// The engine's order (autograd/engine.cpp): count the edges into every node, then run a node
// once all of its consumers have sent their gradient (Kahn's algorithm).
static std::vector<Node*> topological_order(Node* root) {
  std::map<Node*, int> dependencies{{root, 0}};
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& e : node->next_edges)
      if (e.node && dependencies[e.node.get()]++ == 0) stack.push_back(e.node.get());
  }
  std::vector<Node*> order;
  std::deque<Node*> ready{root};
  while (!ready.empty()) {
    Node* node = ready.front();
    ready.pop_front();
    order.push_back(node);
    for (const Edge& e : node->next_edges)
      if (e.node && --dependencies[e.node.get()] == 0) ready.push_back(e.node.get());
  }
  return order;
}

static void reverse_mode() {
  std::printf("\n== 2. reverse mode on f(x, y) = (exp(x y) + x) y at x = 0.5, y = 2\n");
  const double x0 = 0.5, y0 = 2.0;
  Grads hand = by_hand(x0, y0);
  // Closed form, from calculus: df/dx = y^2 e^{xy} + y,  df/dy = x y e^{xy} + e^{xy} + x.
  double dx_exact = y0 * y0 * std::exp(x0 * y0) + y0;
  double dy_exact = x0 * y0 * std::exp(x0 * y0) + std::exp(x0 * y0) + x0;
  std::printf("by hand : f = %.6f  df/dx = %.6f  df/dy = %.6f\n", hand.f, hand.dx, hand.dy);
  std::printf("calculus:              df/dx = %.6f  df/dy = %.6f\n", dx_exact, dy_exact);
  check(close(hand.dx, dx_exact, 1e-14) && close(hand.dy, dy_exact, 1e-14), "hand adjoints = closed form");

  Tensor x = from_vector<double>({x0}, {1}).requires_grad_();
  Tensor y = from_vector<double>({y0}, {1}).requires_grad_();
  Tensor f = (exp(x * y) + x) * y;  // the graph is recorded as this line runs
  std::printf("graph of f (each node: the backward of one op; AccumulateGrad writes a leaf's .grad):\n");
  print_graph(f.grad_fn(), x, 1);
  std::vector<Node*> order = topological_order(f.grad_fn().get());
  std::printf("topological order:");
  for (Node* n : order) std::printf(" %s", label(n, x).c_str());
  std::printf("\n");
  check(order.size() == 6, "6 distinct nodes: 4 ops and 2 leaves");
  // A node must come after every node that sends it a gradient.
  bool respects_edges = true;
  for (size_t i = 0; i < order.size(); ++i)
    for (const Edge& e : order[i]->next_edges)
      for (size_t j = 0; j <= i; ++j) respects_edges = respects_edges && order[j] != e.node.get();
  check(respects_edges, "every node runs after its consumers");

  f.backward();
  double gx = x.grad().item<double>(), gy = y.grad().item<double>();
  std::printf("mg      : f = %.6f  df/dx = %.6f  df/dy = %.6f\n", f.item<double>(), gx, gy);
  check(close(gx, hand.dx, 1e-12) && close(gy, hand.dy, 1e-12), "mg autograd = hand adjoints");

  // Leaves accumulate: a second backward (of a new graph) adds to .grad, it does not overwrite.
  ((exp(x * y) + x) * y).backward();
  std::printf("after a second backward without zero_grad: df/dx = %.6f (2x)\n", x.grad().item<double>());
  check(close(x.grad().item<double>(), 2 * hand.dx, 1e-12), "grads accumulate across backward calls");
  x.zero_grad(), y.zero_grad();

  // The first backward freed the graph's saved tensors: going through it again is an error.
  bool threw = false;
  try {
    f.backward();
  } catch (const Error& e) {
    threw = std::string(e.what()).find("retain_graph") != std::string::npos;
    std::printf("backward twice through one graph:\n  %s\n", e.what());
  }
  check(threw, "a second backward through a freed graph throws and names retain_graph");

  // NoGradGuard: nothing is recorded (evaluation, optimizer updates).
  {
    NoGradGuard no_grad;
    Tensor z = x * y;
    std::printf("under NoGradGuard: z.requires_grad() = %d, grad_fn = %s\n", z.requires_grad(),
                z.grad_fn() ? "set" : "null");
    check(!z.requires_grad() && !z.grad_fn(), "NoGradGuard records no graph");
  }
}

// ---- 3. Gradcheck by hand: central differences against the analytic gradient.
static Tensor loss_of(const Tensor& W, const Tensor& v) { return sum(pow(tanh(matmul(W, v)), 2.0)); }

// Deliberately wrong backward for x^2 (forgets the 2): gradcheck must catch it.
struct BadSquareBackward : Node {
  Tensor x;
  std::string name() const override { return "BadSquareBackward"; }
  TensorList backward(const TensorList& grads) override { return {grads[0] * x}; }  // should be 2 x
};
static Tensor bad_square(const Tensor& x) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = x * x;
  }
  if (needs_grad({x})) {
    auto node = std::make_shared<BadSquareBackward>();
    node->x = x.detach();
    connect(node, {x}, {out});
  }
  return out;
}

static void gradchecks() {
  std::printf("\n== 3. gradcheck: loss(W, v) = sum(tanh(W v)^2), W (3, 4), v (4)\n");
  Generator gen(1);
  Tensor W = randn({3, 4}, gen, {.dtype = DType::Float64}).requires_grad_();
  Tensor v = randn({4}, gen, {.dtype = DType::Float64});
  loss_of(W, v).backward();
  std::vector<double> analytic = W.grad().to_vector<double>();

  const double eps = 1e-6;
  double* w = W.data<double>();  // contiguous: element j is w[j]
  double max_error = 0, forward_error = 0;
  for (int64_t j = 0; j < W.numel(); ++j) {
    NoGradGuard no_grad;  // the probes need values only
    double saved = w[j];
    w[j] = saved + eps;
    double plus = loss_of(W, v).item<double>();
    w[j] = saved - eps;
    double minus = loss_of(W, v).item<double>();
    w[j] = saved;
    double numeric = (plus - minus) / (2 * eps);  // error O(eps^2)
    if (j < 3) std::printf("  W[%lld]: analytic %+.9f  numeric %+.9f\n", (long long)j, analytic[j], numeric);
    max_error = std::max(max_error, std::abs(numeric - analytic[j]));
    double one_sided = (plus - loss_of(W, v).item<double>()) / eps;  // error O(eps)
    forward_error = std::max(forward_error, std::abs(one_sided - analytic[j]));
  }
  std::printf("max |numeric - analytic|: central %.2e, one-sided %.2e\n", max_error, forward_error);
  check(max_error < 1e-8, "central differences match the analytic gradient to 1e-8");
  check(max_error < forward_error, "central differences beat one-sided ones");

  // The library's gradcheck: the same loop over every input, through the inputs' own strides.
  Tensor Wt = randn({4, 3}, gen, {.dtype = DType::Float64}).transpose(0, 1).detach().requires_grad_();
  Tensor v2 = randn({4}, gen, {.dtype = DType::Float64}).requires_grad_();
  GradcheckResult ok = gradcheck([](const TensorList& in) { return tanh(matmul(in[0], in[1])); }, {Wt, v2});
  std::printf("mg::gradcheck(tanh(W v)), W non-contiguous: ok = %d, max error %.2e\n", ok.ok, ok.max_abs_error);
  check(ok.ok && !Wt.is_contiguous(), "mg::gradcheck passes on a non-contiguous input");

  Tensor x = randn({5}, gen, {.dtype = DType::Float64}).requires_grad_();
  GradcheckResult bad = gradcheck([](const TensorList& in) { return bad_square(in[0]); }, {x});
  std::printf("mg::gradcheck(bad_square): ok = %d\n  %s\n", bad.ok, bad.message.c_str());
  check(!bad.ok, "gradcheck catches a wrong backward");
}

int lesson() {
  tensors();
  reverse_mode();
  gradchecks();
  std::printf("\n%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
  return failures ? 1 : 0;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
