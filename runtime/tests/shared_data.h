#pragma once
// The clinical corpus the tests read: ../shared/data beside the checkout
// (tests run from the source directory), or $VSTREAM_SHARED_DATA. Its
// files are described in its SOURCES.md.
//
//   TEST(X, Y) {
//     REQUIRE_SHARED_DATA();
//     std::string bytes = ReadSharedFile("hl7v2/authored/edge_cases.hl7");
//   }

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"

namespace vstream {

inline std::string SharedDataDir() {
  const char* env = std::getenv("VSTREAM_SHARED_DATA");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("../shared/data");
}

inline bool HaveSharedData() { return std::filesystem::is_directory(SharedDataDir() + "/hl7v2"); }

inline std::string ReadSharedFile(const std::string& relative) {
  std::ifstream in(SharedDataDir() + "/" + relative, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << SharedDataDir() << "/" << relative;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace vstream

// Skips the test, saying what it needs, when the corpus is absent.
#define REQUIRE_SHARED_DATA()                                                                              \
  do {                                                                                                     \
    if (!::vstream::HaveSharedData()) {                                                                    \
      GTEST_SKIP() << "needs the clinical corpus ../shared/data beside the checkout (looked in "         \
                   << std::filesystem::absolute(::vstream::SharedDataDir()).string()                      \
                   << "; set VSTREAM_SHARED_DATA to another copy)";                                      \
    }                                                                                                      \
  } while (0)
