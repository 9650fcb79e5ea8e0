#include "nn/nn.h"
#include "ops/rms_norm.h"
#include "test_util.h"

namespace mg::nn {
namespace {

// A small tree without Linear/conv (those need ops written elsewhere): leaf modules own tensors.
struct Leaf : Module {
  Tensor weight, bias, counter;
  Leaf(int64_t out, int64_t in, bool with_bias = true) : Module("Leaf") {
    weight = register_parameter("weight", test::random({out, in}, out * 10 + in, DType::Float32));
    if (with_bias) bias = register_parameter("bias", zeros({out}));
    counter = register_buffer("counter", zeros({1}, {.dtype = DType::Int64}));
    register_buffer("scratch", zeros({2}), /*persistent=*/false);
  }
};

struct Block : Module {
  Tensor scale;
  std::shared_ptr<Leaf> first, second;
  Block() : Module("Block") {
    first = register_module("first", std::make_shared<Leaf>(3, 2));
    scale = register_parameter("scale", ones({3}));  // registered after a child: still listed first
    second = register_module("second", std::make_shared<Leaf>(2, 3, false));
  }
};

struct Net : Module {
  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<RMSNorm> norm;
  Net(int n = 2) : Module("Net") {
    layers = register_module("layers", std::make_shared<ModuleList>());
    for (int i = 0; i < n; ++i) layers->push_back(std::make_shared<Block>());
    norm = register_module("norm", std::make_shared<RMSNorm>(4));
  }
};

std::vector<std::string> names_of(const NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

TEST(Module, DottedNamesInPyTorchOrder) {
  Net net;
  std::vector<std::string> expected = {"layers.0.scale",         "layers.0.first.weight",  "layers.0.first.bias",
                                       "layers.0.second.weight", "layers.1.scale",         "layers.1.first.weight",
                                       "layers.1.first.bias",    "layers.1.second.weight", "norm.weight"};
  EXPECT_EQ(names_of(net.named_parameters()), expected);
  EXPECT_EQ(net.num_parameters(), 2 * (3 + 6 + 3 + 6) + 4);
  EXPECT_EQ(names_of(net.layers->at<Block>(1)->named_parameters(false)), std::vector<std::string>{"scale"});
  for (const Tensor& p : net.parameters()) EXPECT_TRUE(p.requires_grad() && p.is_leaf());
  // Buffers: all of them by named_buffers, only persistent ones in state_dict.
  EXPECT_EQ(net.named_buffers().size(), 8u);
  StateDict state = net.state_dict();
  EXPECT_EQ(state.size(), 9u + 4u);
  EXPECT_TRUE(state.contains("layers.1.second.counter"));
  // PyTorch's state_dict order: each module's parameters, then its buffers, then its children.
  std::vector<std::string> keys = state.keys();
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.begin() + 6),
            (std::vector<std::string>{"layers.0.scale", "layers.0.first.weight", "layers.0.first.bias",
                                      "layers.0.first.counter", "layers.0.second.weight", "layers.0.second.counter"}));
  EXPECT_FALSE(state.contains("layers.1.second.scratch"));
  std::vector<std::string> modules;
  for (auto& [name, m] : net.named_modules()) modules.push_back(name + ":" + m->type_name());
  EXPECT_EQ(modules.front(), ":Net");
  EXPECT_EQ(modules[2], "layers.0:Block");
  EXPECT_EQ(modules.back(), "norm:RMSNorm");
}

TEST(Module, RegistrationErrors) {
  Leaf leaf(2, 2);
  EXPECT_TRUE(test::throws_error([&] { leaf.register_parameter("weight", ones({2})); },
                                 "Leaf: cannot register parameter 'weight'", "already taken"));
  EXPECT_TRUE(test::throws_error([&] { leaf.register_buffer("a.b", ones({2})); }, "'a.b'", "no '.'"));
  EXPECT_TRUE(test::throws_error([&] { leaf.register_parameter("", ones({2})); }, "must be non-empty"));
  EXPECT_TRUE(test::throws_error([&] { leaf.register_parameter("ids", zeros({2}, {.dtype = DType::Int64})); },
                                 "'ids' must be floating-point"));
  EXPECT_TRUE(
      test::throws_error([&] { leaf.register_module("counter", std::make_shared<Leaf>(1, 1)); }, "already taken"));
  ModuleList list;
  list.push_back(std::make_shared<Leaf>(1, 1));
  EXPECT_TRUE(test::throws_error([&] { list[3]; }, "ModuleList: index 3 is out of range for 1"));
  EXPECT_TRUE(test::throws_error([&] { list.at<Block>(0); }, "item 0 is a Leaf"));
}

TEST(Module, TrainEvalRecursive) {
  Net net;
  EXPECT_TRUE(net.is_training());
  net.eval();
  EXPECT_FALSE(net.is_training());
  EXPECT_FALSE(net.layers->at<Block>(1)->second->is_training());
  net.train();
  EXPECT_TRUE(net.norm->is_training());
}

TEST(Module, ZeroGradDropsGradients) {
  Net net;
  Tensor x = test::random({5, 4}, 1, DType::Float32);
  sum(net.norm->forward(x) * net.norm->weight).backward();
  ASSERT_TRUE(net.norm->weight.grad().defined());
  net.zero_grad();
  EXPECT_FALSE(net.norm->weight.grad().defined());
}

TEST(Module, StateDictRoundTripCopiesInPlace) {
  Net a, b;
  {
    NoGradGuard no_grad;
    for (auto& [name, p] : a.named_parameters()) copy_inplace(p, test::random(p.shape(), name.size(), DType::Float32));
    Tensor counter = a.layers->at<Block>(0)->first->counter;
    copy_inplace(counter, full({1}, 7, {.dtype = DType::Int64}));
  }
  Tensor handle = b.layers->at<Block>(1)->first->weight;  // the layer's own handle
  LoadResult result = b.load_state_dict(a.state_dict());
  EXPECT_TRUE(result.missing_keys.empty() && result.unexpected_keys.empty());
  for (auto& [name, t] : a.state_dict()) EXPECT_TRUE(test::all_close(b.state_dict().at(name), t, 0, 0)) << name;
  EXPECT_TRUE(test::all_close(handle, a.layers->at<Block>(1)->first->weight, 0, 0));
  EXPECT_TRUE(handle.requires_grad());
  EXPECT_EQ(b.layers->at<Block>(0)->first->counter.item<int64_t>(), 7);
  // state_dict tensors share data with the module and are detached.
  Tensor view = a.state_dict().at("norm.weight");
  EXPECT_FALSE(view.requires_grad());
  EXPECT_EQ(view.raw_data(), a.norm->weight.raw_data());
}

TEST(Module, LoadStateDictErrorsNameEveryProblemAndChangeNothing) {
  Net net;
  StateDict state = net.state_dict();
  std::vector<float> before = net.norm->weight.to_vector<float>();

  StateDict missing = state;
  missing.erase("layers.1.first.bias");
  missing.set("norm.weight", full({4}, 3.0));
  EXPECT_TRUE(test::throws_error([&] { net.load_state_dict(missing); },
                                 "Net.load_state_dict: missing keys: 'layers.1.first.bias'"));
  EXPECT_EQ(net.norm->weight.to_vector<float>(), before);  // nothing copied

  StateDict unexpected = state;
  unexpected.set("layers.2.scale", ones({3}));
  EXPECT_TRUE(test::throws_error([&] { net.load_state_dict(unexpected); }, "unexpected keys: 'layers.2.scale'"));

  StateDict misshaped = state;
  misshaped.set("layers.0.first.weight", ones({2, 3}));
  misshaped.set("norm.weight", ones({4}, {.dtype = DType::Float64}));
  EXPECT_TRUE(test::throws_error(
      [&] { net.load_state_dict(misshaped); },
      "shape mismatch for 'layers.0.first.weight': [2, 3] in the state dict but [3, 2] in the module",
      "dtype mismatch for 'norm.weight': float64 in the state dict but float32"));
  // Non-strict: missing and unexpected keys are reported, shapes are still checked.
  unexpected.erase("norm.weight");
  LoadResult r = net.load_state_dict(unexpected, /*strict=*/false);
  EXPECT_EQ(r.missing_keys, std::vector<std::string>{"norm.weight"});
  EXPECT_EQ(r.unexpected_keys, std::vector<std::string>{"layers.2.scale"});
  EXPECT_TRUE(test::throws_error([&] { net.load_state_dict(misshaped, false); }, "shape mismatch"));
}

TEST(Module, LoadsNonContiguousSources) {
  Leaf leaf(3, 2);
  StateDict state = leaf.state_dict();
  Tensor transposed = test::random({2, 3}, 9, DType::Float32).transpose(0, 1);  // (3, 2), strided
  state.set("weight", transposed);
  leaf.load_state_dict(state);
  EXPECT_TRUE(test::all_close(leaf.weight, transposed.contiguous(), 0, 0));
}

TEST(Module, TiedTensorListedOnce) {
  struct Tied : Module {
    std::shared_ptr<Leaf> a, b;
    Tied() : Module("Tied") {
      a = register_module("a", std::make_shared<Leaf>(2, 2));
      b = register_module("b", std::make_shared<Leaf>(2, 2));
      b->register_parameter("shared", a->weight);
    }
  } tied;
  auto names = names_of(tied.named_parameters());
  EXPECT_EQ(std::count(names.begin(), names.end(), "a.weight"), 1);
  EXPECT_EQ(std::count(names.begin(), names.end(), "b.shared"), 0);
  EXPECT_FALSE(tied.state_dict().contains("b.shared"));
}

TEST(Module, ToDTypeKeepsHandles) {
  Net net;
  Tensor handle = net.norm->weight;
  sum(net.norm->forward(ones({2, 4}))).backward();
  net.to(DType::Float64);
  EXPECT_EQ(handle.dtype(), DType::Float64);
  EXPECT_EQ(handle.grad().dtype(), DType::Float64);
  EXPECT_EQ(net.layers->at<Block>(0)->first->counter.dtype(), DType::Int64);  // integer buffers stay
  EXPECT_TRUE(handle.requires_grad());
  EXPECT_EQ(net.norm->forward(ones({2, 4}, {.dtype = DType::Float64})).dtype(), DType::Float64);
  net.to(Device::cpu());  // already there: a no-op
  if (!cuda_is_available()) {
    EXPECT_ANY_THROW(net.to(Device::cuda()));
  }
}

TEST(Containers, SequentialChainsUnaryModules) {
  Sequential seq({std::make_shared<RMSNorm>(4), std::make_shared<RMSNorm>(4, 1e-3)});
  seq.push_back(std::make_shared<Dropout>(0.0));
  EXPECT_EQ(seq.size(), 3u);
  EXPECT_EQ(names_of(seq.named_parameters()), (std::vector<std::string>{"0.weight", "1.weight"}));
  Tensor x = test::random({2, 4}, 3);
  Tensor w = ones({4}, {.dtype = DType::Float64});
  seq.to(DType::Float64);
  EXPECT_TRUE(test::all_close(seq(x), rms_norm(rms_norm(x, w, 1e-5), w, 1e-3), 1e-12, 1e-12));
}

TEST(StateDictTest, PrefixesAndOrder) {
  StateDict s;
  s.set("b", ones({1}));
  s.set("a", zeros({2}));
  s.set("b", zeros({3}));  // replaced in place
  EXPECT_EQ(s.keys(), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(s.at("b").shape(), Shape{3});
  StateDict p = s.with_prefix("model.");
  EXPECT_EQ(p.keys(), (std::vector<std::string>{"model.b", "model.a"}));
  p.set("optim.x", ones({1}));
  EXPECT_EQ(p.with_prefix_removed("model.").keys(), (std::vector<std::string>{"b", "a"}));
  EXPECT_TRUE(test::throws_error([&] { s.at("zzz"); }, "no tensor named 'zzz'"));
  EXPECT_TRUE(s.erase("b"));
  EXPECT_FALSE(s.erase("b"));
  EXPECT_EQ(s.at("a").shape(), Shape{2});
}

}  // namespace
}  // namespace mg::nn
