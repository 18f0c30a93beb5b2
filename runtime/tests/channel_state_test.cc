#include "runtime/channel_state.h"

#include <random>

#include "gtest/gtest.h"

namespace vstream {
namespace {

ChannelState Sample() {
  ChannelState s;
  s.AddInput(1, 3, std::string("abc\0def", 7));
  s.AddOutput(2, 5, 1, "x");
  s.AddInput(0, 0, "");
  return s;
}

TEST(ChannelStateTest, RoundTrips) {
  const ChannelState in = Sample();
  EXPECT_EQ(in.bytes(), 8u);
  absl::StatusOr<ChannelState> out = ChannelState::Parse(in.Serialize());
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->entries().size(), 3u);
  const ChannelStateEntry& a = out->entries()[0];
  EXPECT_FALSE(a.output);
  EXPECT_EQ(a.index, 1);
  EXPECT_EQ(a.num_records, 3);
  EXPECT_EQ(a.data, std::string("abc\0def", 7));
  const ChannelStateEntry& b = out->entries()[1];
  EXPECT_TRUE(b.output);
  EXPECT_EQ(b.index, 2);
  EXPECT_EQ(b.subpartition, 5);
  EXPECT_EQ(b.data, "x");
  EXPECT_EQ(out->bytes(), in.bytes());
  EXPECT_TRUE(ChannelState::Parse(ChannelState().Serialize())->empty());
}

TEST(ChannelStateTest, EveryTruncationAndRandomBytesAreDataLossNotACrash) {
  const std::string bytes = Sample().Serialize();
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    absl::StatusOr<ChannelState> s = ChannelState::Parse(std::string_view(bytes.data(), cut));
    EXPECT_TRUE(absl::IsDataLoss(s.status())) << "cut at " << cut << ": " << s.status();
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = bytes;
    for (int j = 0; j < 3; ++j) junk[rng() % junk.size()] = static_cast<char>(rng());
    (void)ChannelState::Parse(junk);  // any outcome but a crash
  }
}

}  // namespace
}  // namespace vstream
