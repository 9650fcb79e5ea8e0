// safetensors: round trips, files written by Python's `safetensors` package, and atomic writes.
// (Malformed files: safetensors_corrupt_test.cpp.)
#include "nn/safetensors.h"

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace mg::nn {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) { return (fs::path(::testing::TempDir()) / name).string(); }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Temporary files left beside `target` by a save to it ("<target>.tmp.<pid>"). Only this target's:
// other tests run in parallel processes and save into the same directory.
std::vector<std::string> temp_files_for(const fs::path& target) {
  std::vector<std::string> out;
  const std::string prefix = target.filename().string() + ".tmp.";
  for (const auto& entry : fs::directory_iterator(target.parent_path()))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) out.push_back(entry.path().string());
  return out;
}

::testing::AssertionResult same_tensor(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    return ::testing::AssertionFailure() << a.shape() << " " << a.dtype() << " vs " << b.shape() << " " << b.dtype();
  return test::all_close(a, b, 0, 0);
}

// The tensors of tests/fixtures/safetensors/gen.py's expected(): keep the two in sync.
StateDict ExpectedInteropTensors() {
  std::vector<float> weights;
  for (int i = 0; i < 12; ++i) weights.push_back(static_cast<float>(i) * 0.25f - 1.0f);
  std::vector<double> values;
  for (int i = 0; i < 5; ++i) values.push_back(i / 3.0);
  StateDict s;
  s.set("weights_f32", from_vector(weights, {3, 4}));
  s.set("values_f64", from_vector(values, {5}));
  s.set("ids_i64", arange(-3, 3).reshape({2, 3, 1}));
  s.set("scalar_f64", full({}, 2.5, {.dtype = DType::Float64}));
  s.set("empty_f32", zeros({0, 3}));
  return s;
}

TEST(Safetensors, RoundTripAllDtypesAndStrides) {
  StateDict s;
  s.set("layer.weight", test::random({3, 5}, 1, DType::Float32).transpose(0, 1));  // non-contiguous (5, 3)
  s.set("layer.bias", test::random({7}, 2, DType::Float64).narrow(0, 2, 4));       // offset view
  s.set("steps", from_vector<int64_t>({-5, 0, 1LL << 40, 9}, {2, 2}));
  s.set("expanded", test::random({1, 3}, 3).expand({4, 3}));  // stride 0
  s.set("scalar", full({}, 42, {.dtype = DType::Int64}));
  s.set("empty", zeros({2, 0, 3}));
  const SafetensorsMetadata meta = {{"format", "pt"}, {"step", "1000"}, {"note", "\"quoted\" \xc3\xa9"}};
  const std::string path = temp_path("round_trip.safetensors");
  save_safetensors(path, s, meta);

  SafetensorsContents loaded = load_safetensors(path);
  EXPECT_EQ(loaded.metadata, meta);
  EXPECT_EQ(loaded.tensors.keys(), s.keys());  // data order = the order given
  for (const auto& [name, t] : s) {
    EXPECT_TRUE(same_tensor(loaded.tensors.at(name), t)) << name;
    // (Tensor::is_contiguous() says false for every zero-size tensor, so those are not asked.)
    if (t.numel() > 0) {
      EXPECT_TRUE(loaded.tensors.at(name).is_contiguous()) << name;
    }
  }
  // The layout: header length a multiple of 8 (data aligned), then JSON.
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  EXPECT_NE(bytes.find("\"layer.weight\":{\"dtype\":\"F32\",\"shape\":[5,3],\"data_offsets\":[0,60]}"),
            std::string::npos);
  // From memory too.
  SafetensorsContents again = parse_safetensors(bytes, "bytes");
  EXPECT_TRUE(same_tensor(again.tensors.at("steps"), s.at("steps")));
  EXPECT_TRUE(temp_files_for(path).empty());
}

TEST(Safetensors, EmptyFileOfTensors) {
  const std::string path = temp_path("nothing.safetensors");
  save_safetensors(path, StateDict());
  SafetensorsContents loaded = load_safetensors(path);
  EXPECT_TRUE(loaded.tensors.empty());
  EXPECT_TRUE(loaded.metadata.empty());
}

fs::path fixture_dir() { return test::source_path("tests/fixtures/safetensors"); }

TEST(Safetensors, ReadsFileWrittenByPython) {
  SafetensorsContents loaded = load_safetensors((fixture_dir() / "python_written.safetensors").string());
  StateDict expected = ExpectedInteropTensors();
  EXPECT_EQ(loaded.tensors.size(), expected.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(loaded.tensors.contains(name)) << name;
    EXPECT_TRUE(same_tensor(loaded.tensors.at(name), t)) << name;
  }
  EXPECT_EQ(loaded.metadata.at("writer"), "python safetensors");
}

// Writes the interop tensors for the Python side (see gen.py's docstring for the check command).
TEST(Safetensors, WritesFileThatPythonReads) {
  const std::string path = temp_path("mg_cpp_written.safetensors");
  save_safetensors(path, ExpectedInteropTensors(), {{"writer", "mambagrad"}});
  std::cout << "wrote " << path << "; check it with: python3 tests/fixtures/safetensors/gen.py --check " << path
            << "\n";
  SafetensorsContents loaded = load_safetensors(path);
  EXPECT_EQ(loaded.tensors.size(), 5u);
}

// A target holding a good checkpoint, and a check that a failed save left it byte for byte.
struct OldFile {
  std::string path, bytes;
  explicit OldFile(const std::string& name) : path(temp_path(name)) {
    StateDict s;
    s.set("good", full({4}, 1.5));
    save_safetensors(path, s);
    bytes = read_bytes(path);
  }
  ::testing::AssertionResult intact() const {
    if (read_bytes(path) != bytes) return ::testing::AssertionFailure() << path << " changed";
    if (!temp_files_for(path).empty())
      return ::testing::AssertionFailure()
             << "a temporary file was left: " << temp_files_for(path)[0];
    if (load_safetensors(path).tensors.at("good").to_vector<float>() != std::vector<float>(4, 1.5f))
      return ::testing::AssertionFailure() << "old contents unreadable";
    return ::testing::AssertionSuccess();
  }
};

TEST(SafetensorsAtomicWrite, InvalidTensorListLeavesOldFile) {
  OldFile old("atomic_invalid.safetensors");
  StateDict bad;
  bad.set("fine", ones({1000}));
  bad.set("missing", Tensor());
  EXPECT_TRUE(test::throws_error([&] { save_safetensors(old.path, bad); }, "tensor 'missing' is undefined"));
  EXPECT_TRUE(old.intact());
  StateDict reserved;
  reserved.set("__metadata__", ones({1}));
  EXPECT_TRUE(test::throws_error([&] { save_safetensors(old.path, reserved); }, "'__metadata__' is reserved"));
  StateDict bad_name;
  bad_name.set("\xff\xfe", ones({1}));
  EXPECT_TRUE(test::throws_error([&] { save_safetensors(old.path, bad_name); }, "valid UTF-8"));
  EXPECT_TRUE(old.intact());
}

// The disk "fills up" half way through the data: RLIMIT_FSIZE makes write() fail with EFBIG.
TEST(SafetensorsAtomicWrite, FailedWriteMidFileLeavesOldFile) {
  OldFile old("atomic_midwrite.safetensors");
  StateDict big;
  big.set("a", ones({1 << 16}));
  big.set("b", ones({1 << 16}));
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = saved;
  limited.rlim_cur = 100000;  // the data needs 512 KiB
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  bool threw = false;
  std::string message;
  try {
    save_safetensors(old.path, big);
  } catch (const Error& e) {
    threw = true;
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);
  EXPECT_TRUE(threw);
  EXPECT_NE(message.find("failed"), std::string::npos) << message;
  EXPECT_TRUE(old.intact());
}

TEST(SafetensorsAtomicWrite, RenameAndDirectoryFailures) {
  // The target is a directory: everything is written, the rename fails, the temp file goes.
  const fs::path dir = temp_path("target_is_a_dir");
  fs::create_directories(dir / "inside");
  StateDict s;
  s.set("x", ones({3}));
  EXPECT_TRUE(test::throws_error([&] { save_safetensors(dir.string(), s); }, "cannot rename the temporary file"));
  EXPECT_TRUE(fs::is_directory(dir / "inside"));
  EXPECT_TRUE(temp_files_for(dir).empty());
  // A directory that does not exist.
  EXPECT_TRUE(test::throws_error([&] { save_safetensors(temp_path("no/such/dir/x.safetensors"), s); },
                                 "cannot create the temporary file"));
  // A directory without write permission (root ignores permissions, so only as another user).
  if (::geteuid() != 0) {
    OldFile old("readonly_dir_target.safetensors");
    const fs::path ro = temp_path("readonly_dir");
    fs::create_directories(ro);
    fs::copy_file(old.path, ro / "ckpt.safetensors", fs::copy_options::overwrite_existing);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_TRUE(test::throws_error([&] { save_safetensors((ro / "ckpt.safetensors").string(), s); }, "cannot create"));
    fs::permissions(ro, fs::perms::owner_all);
    EXPECT_EQ(read_bytes((ro / "ckpt.safetensors").string()), old.bytes);
  }
}

TEST(Safetensors, LoadErrorsNameTheFile) {
  EXPECT_TRUE(test::throws_error([&] { load_safetensors(temp_path("does_not_exist.safetensors")); },
                                 "does_not_exist.safetensors", "does not exist"));
  EXPECT_TRUE(test::throws_error([&] { load_safetensors(::testing::TempDir()); }, "not a regular file"));
}

}  // namespace
}  // namespace mg::nn
