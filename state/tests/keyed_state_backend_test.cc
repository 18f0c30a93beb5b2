#include "state/keyed_state_backend.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "state/key_groups.h"

namespace vstream {
namespace {

std::string TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

TEST(KeyedStateBackendTest, PutGetDeletePerStateAndKeyGroup) {
  auto backend = KeyedStateBackend::Open({.path = TempDir("ksb")});
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto a = (*backend)->RegisterState("a");
  auto b = (*backend)->RegisterState("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  ASSERT_TRUE((*backend)->Put(*a, 7, "key", "va").ok());
  ASSERT_TRUE((*backend)->Put(*b, 7, "key", "vb").ok());
  std::string v;
  ASSERT_TRUE((*backend)->Get(*a, 7, "key", &v).ok());
  EXPECT_EQ(v, "va");
  ASSERT_TRUE((*backend)->Get(*b, 7, "key", &v).ok());
  EXPECT_EQ(v, "vb");
  EXPECT_TRUE(absl::IsNotFound((*backend)->Get(*a, 8, "key", &v)));
  ASSERT_TRUE((*backend)->Delete(*a, 7, "key").ok());
  EXPECT_TRUE(absl::IsNotFound((*backend)->Get(*a, 7, "key", &v)));
}

TEST(KeyGroupsTest, RangesPartitionAllKeyGroupsContiguously) {
  for (int maxp : {1, 7, 128, 1000}) {
    for (int p = 1; p <= std::min(maxp, 9); ++p) {
      int next = 0;
      for (int s = 0; s < p; ++s) {
        KeyGroupRange r = KeyGroupRangeForSubtask(maxp, p, s);
        EXPECT_EQ(r.start, next);
        for (int kg = r.start; kg <= r.end; ++kg) EXPECT_EQ(SubtaskForKeyGroup(kg, maxp, p), s);
        next = r.end + 1;
      }
      EXPECT_EQ(next, maxp);
    }
  }
}

TEST(KeyGroupsTest, HashSpreadsKeysOverKeyGroups) {
  std::vector<int> counts(128);
  for (int i = 0; i < 12800; ++i) {
    std::string k = "patient-" + std::to_string(i);
    counts[KeyGroupForHash(HashKeyBytes(k), 128)]++;
  }
  for (int c : counts) {
    EXPECT_GT(c, 50);
    EXPECT_LT(c, 160);
  }
}

}  // namespace
}  // namespace vstream
