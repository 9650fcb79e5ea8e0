// The whole Mamba LM against an independent implementation: PyTorch's autograd through the
// official architecture (tests/fixtures/gen_mamba_model.py writes the fixture). The logits, the
// loss and the gradient of every parameter, for a batch of 2 x 70 tokens (two scan chunks), in
// float64 to float64 tolerances, and in float32 to float32 ones.
#include <cmath>

#include "models/mamba/model.h"
#include "nn/safetensors.h"
#include "test_util.h"

namespace mg::mamba {
namespace {

// The largest |a - b| / (atol + |b|) over the elements: <= 1 means within atol + rtol |b|
// for rtol = 1... printed so a failure says how far off it is.
double worst_ratio(const Tensor& a, const Tensor& b, double atol, double rtol) {
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < av.size(); ++i) worst = std::max(worst, std::abs(av[i] - bv[i]) / (atol + rtol * std::abs(bv[i])));
  return worst;
}

TEST(MambaFixture, LogitsLossAndEveryGradientMatchPyTorch) {
  nn::SafetensorsContents fixture = nn::load_safetensors(test::source_path("tests/fixtures/mamba/small_model.safetensors"));
  const nn::StateDict& f = fixture.tensors;
  const MambaConfig config = MambaConfig::from_json(fixture.metadata.at("config"));
  for (DType dtype : {DType::Float64, DType::Float32}) {
    const bool f64 = dtype == DType::Float64;
    // float64: the two implementations differ only in the order of their sums.
    const double atol = f64 ? 1e-12 : 1e-5, rtol = f64 ? 1e-9 : 1e-3;
    Generator gen(1);
    MambaLM model(config, gen);
    model.to(dtype);
    nn::StateDict weights;
    int64_t parameters = 0;
    for (const auto& [name, t] : f)
      if (name.rfind("weights.", 0) == 0) weights.set(name.substr(8), t.to(dtype)), parameters += t.numel();
    model.load_state_dict(weights, /*strict=*/true);
    ASSERT_EQ(parameters, model.num_parameters());

    Tensor logits = model.forward(f.at("tokens"));
    EXPECT_TRUE(test::all_close(logits, f.at("logits"), atol, rtol))
        << dtype << " logits, worst " << worst_ratio(logits, f.at("logits"), atol, rtol) << "x the tolerance";
    Tensor loss = model.loss(f.at("tokens"), f.at("targets"));
    EXPECT_TRUE(test::all_close(loss, f.at("loss"), atol, rtol)) << dtype << " loss";
    loss.backward();
    int64_t checked = 0;
    for (const auto& [name, p] : model.named_parameters()) {
      const Tensor& expected = f.at("grad." + name);
      ASSERT_TRUE(p.grad().defined()) << name;
      EXPECT_TRUE(test::all_close(p.grad(), expected, atol, rtol))
          << dtype << " d loss / d " << name << ", worst " << worst_ratio(p.grad(), expected, atol, rtol)
          << "x the tolerance";
      ++checked;
    }
      EXPECT_EQ(checked, 2 + 10 * config.n_layer);  // embeddings, norm_f; per block 9 of the mixer and its norm
  }
}

}  // namespace
}  // namespace mg::mamba
