#include "nn/sha256.h"

#include <string>

#include "test_util.h"

namespace mg::nn {
namespace {

// The FIPS 180-4 examples (and NIST's one-million-'a' vector).
TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Any split of the message into update() calls gives the one-shot digest (block edges at 55, 56
// and 64 bytes are where padding goes wrong).
TEST(Sha256, IncrementalEqualsOneShot) {
  std::string message;
  for (int i = 0; i < 300; ++i) message.push_back(static_cast<char>(i * 7 + 3));
  for (size_t length : {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 300}) {
    const std::string part = message.substr(0, length), expected = sha256_hex(part);
    for (size_t split : {size_t{0}, size_t{1}, length / 3, length / 2, length}) {
      if (split > length) continue;
      Sha256 hash;
      hash.update(part.substr(0, split));
      hash.update(part.substr(split, (length - split) / 2));
      hash.update(part.substr(split + (length - split) / 2));
      EXPECT_EQ(hash.hex_digest(), expected) << "length " << length << ", split " << split;
    }
  }
}

}  // namespace
}  // namespace mg::nn
