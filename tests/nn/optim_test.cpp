// AdamW and SGD against numbers from torch.optim (1.13), the parameter-group builder, and the
// optimizer state dict (a resumed run continues bit-identically).
#include "nn/nn.h"
#include "test_util.h"

namespace mg::optim {
namespace {

// The reference numbers below come from this script, run with /usr/bin/python3 (torch 1.13.1):
//
//   import torch
//   def run(make_opt, dtype, steps):
//       w = torch.tensor([[0.5, -1.0, 2.0], [0.25, 0.0, -0.75]], dtype=dtype, requires_grad=True)
//       b = torch.tensor([0.1, -0.2, 0.3], dtype=dtype, requires_grad=True)
//       t = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]], dtype=dtype)
//       c = torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
//       opt = make_opt(w, b)
//       for _ in range(steps):
//           opt.zero_grad()
//           loss = ((w - t) * (w - t)).sum() + ((b - 0.5) * (b - 0.5) * c).sum()
//           loss.backward()
//           opt.step()
//       print(w.flatten().tolist(), b.tolist())
//   adamw = lambda w, b: torch.optim.AdamW([{"params": [w], "weight_decay": 0.1},
//                                           {"params": [b], "weight_decay": 0.0}],
//                                          lr=0.1, betas=(0.9, 0.95), eps=1e-8)
//   sgd = lambda w, b: torch.optim.SGD([{"params": [w], "weight_decay": 0.01}, {"params": [b]}],
//                                      lr=0.1, momentum=0.9, dampening=0.1)
//   nesterov = lambda w, b: torch.optim.SGD([w, b], lr=0.1, momentum=0.9, nesterov=True)
//   run(adamw, torch.float64, 2); run(sgd, torch.float64, 3); run(nesterov, torch.float64, 3)
//   (and the same with torch.float32)
struct Problem {
  Tensor w, b, t, c;
  explicit Problem(DType dtype) {
    w = from_vector<double>({0.5, -1.0, 2.0, 0.25, 0.0, -0.75}, {2, 3}, {.dtype = dtype}).requires_grad_(true);
    b = from_vector<double>({0.1, -0.2, 0.3}, {3}, {.dtype = dtype}).requires_grad_(true);
    t = from_vector<double>({1, 1, 1, -1, -1, -1}, {2, 3}, {.dtype = dtype});
    c = from_vector<double>({1, 2, 3}, {3}, {.dtype = dtype});
  }
  void backward() const { (sum((w - t) * (w - t)) + sum((b - 0.5) * (b - 0.5) * c)).backward(); }
  std::vector<ParamGroup> groups(double lr, double w_decay) const {
    return {ParamGroup{{{"w", w}}, lr, w_decay}, ParamGroup{{{"b", b}}, lr, 0.0}};
  }
  void run(Optimizer& opt, int steps) const {
    for (int i = 0; i < steps; ++i) {
      opt.zero_grad();
      backward();
      opt.step();
    }
  }
  void expect(const std::vector<double>& w_expected, const std::vector<double>& b_expected, double tol) const {
    EXPECT_TRUE(test::all_close(w, from_vector(w_expected, {2, 3}), tol, tol));
    EXPECT_TRUE(test::all_close(b, from_vector(b_expected, {3}), tol, tol));
  }
};

TEST(AdamW, MatchesTorchTwoSteps) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    Problem p(dtype);
    AdamW opt(p.groups(0.1, 0.1), {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8});
    p.run(opt, 2);
    if (dtype == DType::Float64) {
      p.expect({0.6882184476581157, -0.7812163371913229, 1.7615758347452362, 0.046231819599465, -0.19871944930983232,
                -0.9309668928893056},
               {0.2986052289380924, -0.0005029340392855297, 0.4939293051146802}, 1e-14);
    } else {  // torch's float32 results, to float32 rounding
      p.expect({0.6882184743881226, -0.7812163233757019, 1.7615758180618286, 0.04623182862997055, -0.19871945679187775,
                -0.9309669137001038},
               {0.2986052632331848, -0.0005029439926147461, 0.49392932653427124}, 2e-7);
    }
    EXPECT_EQ(opt.step_count("w"), 2);
  }
}

TEST(SGD, MomentumDampeningAndWeightDecayMatchTorch) {
  Problem p(DType::Float64);
  SGD opt(p.groups(0.1, 0.01), {.momentum = 0.9, .dampening = 0.1});
  p.run(opt, 3);
  p.expect(
      {0.947998233595, 0.8055004188100001, 1.09049604838, -0.8767493262025001, -0.9004989620000001, -0.9717478693925},
      {0.46051200000000003, 0.852128, 0.668832}, 1e-14);
}

TEST(SGD, NesterovMatchesTorch) {
  Problem p(DType::Float64);
  SGD opt(nn::NamedTensors{{"w", p.w}, {"b", p.b}}, 0.1, {.momentum = 0.9, .nesterov = true});
  p.run(opt, 3);
  p.expect({1.054176, 1.216704, 0.8916480000000001, -1.1354400000000002, -1.108352, -1.027088},
           {0.5433408000000001, 0.8033072, 0.5608128}, 1e-14);
  EXPECT_TRUE(test::throws_error(
      [&] {
        SGD bad(nn::NamedTensors{{"w", p.w}}, 0.1, {.nesterov = true});
      },
      "SGD: nesterov momentum needs momentum > 0"));
}

TEST(SGD, PlainStepIsGradientDescent) {
  Tensor w = from_vector<double>({1.0, 2.0}, {2}).requires_grad_(true);
  SGD opt(nn::NamedTensors{{"w", w}}, 0.5);
  sum(w * w).backward();  // grad 2w
  opt.step();
  EXPECT_EQ(w.to_vector<double>(), (std::vector<double>{0.0, 0.0}));
}

TEST(Optimizer, SkipsParametersWithoutGradientAndChecksInputs) {
  Problem p(DType::Float64);
  AdamW opt(p.groups(0.1, 0.0));
  sum(p.w * p.w).backward();  // b gets no gradient
  std::vector<double> b_before = p.b.to_vector<double>();
  opt.step();
  EXPECT_EQ(p.b.to_vector<double>(), b_before);
  EXPECT_EQ(opt.step_count("b"), 0);
  EXPECT_FALSE(opt.state_dict().contains("b.step"));
  opt.zero_grad();
  EXPECT_FALSE(p.w.grad().defined());

  EXPECT_TRUE(test::throws_error(
      [&] {
        AdamW bad(nn::NamedTensors{{"w", p.w}, {"w", p.b}}, 0.1);
      },
      "'w' appears twice"));
  EXPECT_TRUE(test::throws_error([&] { AdamW bad(nn::NamedTensors{{"w", p.w}, {"v", p.w}}, 0.1); }, "same tensor"));
  EXPECT_TRUE(test::throws_error(
      [&] {
        AdamW bad(nn::NamedTensors{{"t", p.t}}, 0.1);
      },
      "'t' must be a leaf tensor that requires grad"));
  EXPECT_TRUE(
      test::throws_error([&] { AdamW bad(p.groups(0.1, 0.0), {.beta1 = 1.0}); }, "AdamW: betas must be in [0, 1)"));
  EXPECT_TRUE(test::throws_error([&] { opt.set_lr(-1); }, "learning rate must be non-negative"));
}

// N steps, save, restore into a fresh optimizer and model copy, N more steps == 2N steps straight.
TEST(Optimizer, StateDictResumesBitIdentically) {
  Problem straight(DType::Float32), resumed(DType::Float32);
  AdamW a(straight.groups(0.05, 0.1), {.beta2 = 0.95});
  straight.run(a, 6);

  AdamW b(resumed.groups(0.05, 0.1), {.beta2 = 0.95});
  resumed.run(b, 3);
  nn::StateDict saved = b.state_dict();
  EXPECT_EQ(saved.keys(),
            (std::vector<std::string>{"w.step", "w.exp_avg", "w.exp_avg_sq", "b.step", "b.exp_avg", "b.exp_avg_sq"}));
  EXPECT_EQ(saved.at("w.step").item<int64_t>(), 3);
  AdamW c(resumed.groups(0.05, 0.1), {.beta2 = 0.95});
  c.load_state_dict(saved);
  resumed.run(c, 3);
  EXPECT_EQ(resumed.w.to_vector<float>(), straight.w.to_vector<float>());
  EXPECT_EQ(resumed.b.to_vector<float>(), straight.b.to_vector<float>());
  EXPECT_EQ(c.step_count("b"), 6);
}

TEST(Optimizer, LoadStateDictErrors) {
  Problem p(DType::Float64);
  AdamW opt(p.groups(0.1, 0.0));
  p.run(opt, 1);
  nn::StateDict good = opt.state_dict();

  nn::StateDict partial = good;
  partial.erase("w.exp_avg_sq");
  EXPECT_TRUE(
      test::throws_error([&] { opt.load_state_dict(partial); }, "AdamW.load_state_dict: parameter 'w' has only part"));
  nn::StateDict unknown = good;
  unknown.set("v.exp_avg", zeros({3}));
  EXPECT_TRUE(test::throws_error([&] { opt.load_state_dict(unknown); }, "no parameter or slot", "'v.exp_avg'"));
  nn::StateDict shaped = good;
  shaped.set("w.exp_avg", zeros({3, 2}, {.dtype = DType::Float64}));
  EXPECT_TRUE(test::throws_error([&] { opt.load_state_dict(shaped); },
                                 "'w.exp_avg' is [3, 2] float64 but the parameter is [2, 3] float64"));
  nn::StateDict typed = good;
  typed.set("w.exp_avg", zeros({2, 3}));
  EXPECT_TRUE(test::throws_error([&] { opt.load_state_dict(typed); }, "'w.exp_avg' is [2, 3] float32"));
  EXPECT_EQ(opt.step_count("w"), 1);  // failed loads change nothing
}

TEST(ParamGroups, NoDecayForBiasesNormsALogAndD) {
  nn::NamedTensors params = {
      {"backbone.embeddings.weight", zeros({10, 4}).requires_grad_(true)},
      {"backbone.layers.0.norm.weight", ones({4}).requires_grad_(true)},
      {"backbone.layers.0.mixer.A_log", zeros({8, 16}).requires_grad_(true)},
      {"backbone.layers.0.mixer.D", ones({8}).requires_grad_(true)},
      {"backbone.layers.0.mixer.in_proj.weight", zeros({16, 4}).requires_grad_(true)},
      {"backbone.layers.0.mixer.conv1d.weight", zeros({8, 1, 4}).requires_grad_(true)},
      {"backbone.layers.0.mixer.conv1d.bias", zeros({8}).requires_grad_(true)},
      {"backbone.layers.0.mixer.dt_proj.bias", zeros({8}).requires_grad_(true)},
      {"backbone.norm_f.weight", ones({4}).requires_grad_(true)},
      {"head.Dense", zeros({4, 4}).requires_grad_(true)},  // "Dense" is not "D"
      {"frozen.weight", zeros({4, 4})},                    // requires no grad: left out
  };
  std::vector<ParamGroup> groups = weight_decay_groups(params, 2e-3, 0.1);
  ASSERT_EQ(groups.size(), 2u);
  auto names = [](const ParamGroup& g) {
    std::vector<std::string> out;
    for (auto& [n, t] : g.params) out.push_back(n);
    return out;
  };
  EXPECT_EQ(groups[0].weight_decay, 0.1);
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  EXPECT_EQ(groups[0].lr, 2e-3);
  EXPECT_EQ(groups[1].lr, 2e-3);
  EXPECT_EQ(names(groups[0]),
            (std::vector<std::string>{"backbone.embeddings.weight", "backbone.layers.0.mixer.in_proj.weight",
                                      "backbone.layers.0.mixer.conv1d.weight", "head.Dense"}));
  EXPECT_EQ(names(groups[1]),
            (std::vector<std::string>{"backbone.layers.0.norm.weight", "backbone.layers.0.mixer.A_log",
                                      "backbone.layers.0.mixer.D", "backbone.layers.0.mixer.conv1d.bias",
                                      "backbone.layers.0.mixer.dt_proj.bias", "backbone.norm_f.weight"}));
  EXPECT_TRUE(is_no_decay_parameter("layernorm.weight", zeros({4, 4})));
  EXPECT_EQ(weight_decay_groups({params[1]}, 1e-3, 0.1).size(), 1u);  // empty groups are left out
}

}  // namespace
}  // namespace mg::optim
