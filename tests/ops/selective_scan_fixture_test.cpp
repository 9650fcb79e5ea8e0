// The selective scan against fixtures computed by PyTorch autograd from its own float64
// implementation of the semantics in ops/selective_scan.h (tests/fixtures/gen_selective_scan.py):
// y, the last state and the gradients of every input, for fixed upstream gradients of both outputs.
//
// The fixtures are found in $MG_SELECTIVE_SCAN_FIXTURES if set, else in the checkout's
// tests/fixtures/selective_scan. index.txt lists them; the format is described in the generator.
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "ops/selective_scan.h"
#include "test_util.h"

namespace mg {
namespace {

namespace fs = std::filesystem;

const char* const kInputs[] = {"u", "delta", "A", "Bm", "Cm", "D_skip", "z", "delta_bias", "h0"};

fs::path fixture_dir() {
  if (const char* env = std::getenv("MG_SELECTIVE_SCAN_FIXTURES")) return env;
  return test::source_path("tests/fixtures/selective_scan");
}

// The fixture files listed in index.txt ("<file> <description>" lines; # starts a comment).
std::vector<std::string> fixture_names() {
  std::ifstream index(fixture_dir() / "index.txt");
  std::vector<std::string> names;
  for (std::string line; std::getline(index, line);)
    if (!line.empty() && line[0] != '#') names.push_back(line.substr(0, line.find(' ')));
  if (names.empty()) names.push_back("missing-index");  // the test then fails, saying where it looked
  return names;
}

struct Fixture {
  std::map<std::string, bool> flags;
  std::map<std::string, Tensor> tensors;  // float64, contiguous
  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  const Tensor& at(const std::string& name) const { return tensors.at(name); }
};

Fixture load_fixture(const fs::path& path) {
  std::ifstream in(path);
  MG_CHECK(in.good(), "selective_scan fixture: cannot open ", path.string(), " (set MG_SELECTIVE_SCAN_FIXTURES?)");
  std::string magic;
  int version = 0;
  in >> magic >> version;
  MG_CHECK(magic == "selective_scan_fixture" && version == 1, "selective_scan fixture: bad header in ", path.string());
  Fixture f;
  for (std::string kind, name; in >> kind >> name;) {
    if (kind == "flag") {
      int value = 0;
      in >> value;
      f.flags[name] = value != 0;
      continue;
    }
    MG_CHECK(kind == "tensor", "selective_scan fixture: unexpected '", kind, "' in ", path.string());
    int64_t ndim = 0;
    in >> ndim;
    Shape shape(ndim);
    for (int64_t& s : shape) in >> s;
    std::vector<double> values(shape_numel(shape));
    for (double& v : values) in >> v;
    MG_CHECK(!in.fail(), "selective_scan fixture: truncated tensor ", name, " in ", path.string());
    f.tensors[name] = from_vector(values, shape);
  }
  return f;
}

class SelectiveScanFixture : public ::testing::TestWithParam<std::string> {};

// Runs the scan on the fixture's inputs (converted to dtype) and checks y, the last state, and
// the gradients of every input for the fixture's upstream gradients.
void check_fixture(const Fixture& f, DType dtype, double atol, double rtol) {
  std::map<std::string, Tensor> in;
  for (const char* name : kInputs)
    if (f.has(name)) in[name] = f.at(name).to(dtype).detach().requires_grad_(true);
  SelectiveScanArgs args;
  if (f.has("D_skip")) args.D_skip = in["D_skip"];
  if (f.has("z")) args.z = in["z"];
  if (f.has("delta_bias")) args.delta_bias = in["delta_bias"];
  if (f.has("h0")) args.h0 = in["h0"];
  args.delta_softplus = f.flags.at("delta_softplus");
  args.exact_zoh_b = f.flags.at("exact_zoh_b");

  SelectiveScanResult out = selective_scan(in["u"], in["delta"], in["A"], in["Bm"], in["Cm"], args);
  EXPECT_TRUE(test::all_close(out.y, f.at("y"), atol, rtol)) << "y";
  EXPECT_TRUE(test::all_close(out.last_state, f.at("last_state"), atol, rtol)) << "last_state";
  run_backward({out.y, out.last_state}, {f.at("grad_y").to(dtype), f.at("grad_last_state").to(dtype)}, false);
  for (const auto& [name, input] : in) {
    ASSERT_TRUE(input.grad().defined()) << "no gradient reached " << name;
    EXPECT_TRUE(test::all_close(input.grad(), f.at("grad_" + name), atol, rtol)) << "grad_" << name;
  }
}

TEST_P(SelectiveScanFixture, ValuesAndGradientsMatchPyTorchFloat64) {
  fs::path path = fixture_dir() / GetParam();
  ASSERT_TRUE(fs::exists(path)) << "fixture not found: " << fs::absolute(path);
  check_fixture(load_fixture(path), DType::Float64, 1e-12, 1e-10);  // float64: only the order of sums differs
}

// The float32 kernels against the same float64 truth, with float32 tolerances.
TEST_P(SelectiveScanFixture, Float32MatchesPyTorchFloat64) {
  fs::path path = fixture_dir() / GetParam();
  ASSERT_TRUE(fs::exists(path)) << "fixture not found: " << fs::absolute(path);
  check_fixture(load_fixture(path), DType::Float32, 1e-4, 1e-4);
}

// The plain reference loop and the parallel (Blelloch) forward give the same y and last state.
TEST_P(SelectiveScanFixture, ReferenceAndParallelForwardsMatch) {
  fs::path path = fixture_dir() / GetParam();
  ASSERT_TRUE(fs::exists(path)) << "fixture not found: " << fs::absolute(path);
  Fixture f = load_fixture(path);
  SelectiveScanArgs args;
  if (f.has("D_skip")) args.D_skip = f.at("D_skip");
  if (f.has("z")) args.z = f.at("z");
  if (f.has("delta_bias")) args.delta_bias = f.at("delta_bias");
  if (f.has("h0")) args.h0 = f.at("h0");
  args.delta_softplus = f.flags.at("delta_softplus");
  args.exact_zoh_b = f.flags.at("exact_zoh_b");
  for (auto scan : {selective_scan_reference, selective_scan_parallel}) {
    SelectiveScanResult out = scan(f.at("u"), f.at("delta"), f.at("A"), f.at("Bm"), f.at("Cm"), args);
    EXPECT_TRUE(test::all_close(out.y, f.at("y"), 1e-12, 1e-10)) << "y";
    EXPECT_TRUE(test::all_close(out.last_state, f.at("last_state"), 1e-12, 1e-10)) << "last_state";
  }
}

INSTANTIATE_TEST_SUITE_P(PyTorch, SelectiveScanFixture, ::testing::ValuesIn(fixture_names()),
                         [](const auto& info) {
                           std::string name = info.param.substr(0, info.param.find('.'));
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(SelectiveScanFixtureFiles, LoaderRejectsMissingFile) {
  EXPECT_TRUE(test::throws_error([] { load_fixture("no/such/fixture.txt"); }, "cannot open", "no/such/fixture.txt"));
}

}  // namespace
}  // namespace mg
