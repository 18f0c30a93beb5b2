#include "state/cache_delta.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "state/state_log.h"
#include "state/tests/testing_state.h"

namespace vstream {
namespace {

struct Record {
  std::string cf, key;
  bool put;
  std::string value;
  bool operator==(const Record&) const = default;
};

absl::Status ParseAll(std::string_view bytes, std::vector<Record>* out) {
  return CacheDelta::Parse(bytes, [&](std::string_view cf, std::string_view key, const std::string_view* value) {
    out->push_back({std::string(cf), std::string(key), value != nullptr, value ? std::string(*value) : ""});
    return absl::OkStatus();
  });
}

TEST(CacheDeltaTest, RoundTripsPutsAndDeletesInOrder) {
  CacheDelta delta;
  EXPECT_TRUE(delta.empty());
  delta.AddPut("values", std::string("\x00\x07k1", 4), "", "v1");
  delta.AddDelete("values", "k2");
  delta.AddPut("timed", "k3", std::string("\x00\x01\x02\x03\x04\x05\x06\x07", 8), "v3");
  EXPECT_EQ(delta.records(), 3u);
  std::vector<Record> got;
  ASSERT_TRUE(ParseAll(std::move(delta).Finish(), &got).ok());
  const std::vector<Record> want = {{"values", std::string("\x00\x07k1", 4), true, "v1"},
                                    {"values", "k2", false, ""},
                                    {"timed", "k3", true, std::string("\x00\x01\x02\x03\x04\x05\x06\x07", 8) + "v3"}};
  EXPECT_EQ(got, want);
}

// A delta written into a buffer an earlier one used: none of the earlier
// bytes show, and the buffer's memory is what it writes into.
TEST(CacheDeltaTest, ABufferKeptFromAnEarlierDeltaIsWrittenAfreshInPlace) {
  DeltaBuffers buffers;
  EXPECT_EQ(buffers.Take().capacity(), std::string().capacity()) << "nothing kept yet";
  CacheDelta first;
  for (int i = 0; i < 1000; ++i) first.AddPut("values", "key-" + std::to_string(i), "", std::string(100, 'x'));
  std::string bytes = std::move(first).Finish();
  const size_t capacity = bytes.capacity();
  const char* memory = bytes.data();
  buffers.Give(std::move(bytes));
  buffers.Give(std::string(10, 'y'));  // smaller: freed, the larger stays
  std::string kept = buffers.Take();
  EXPECT_TRUE(kept.empty());
  EXPECT_EQ(kept.capacity(), capacity);
  EXPECT_EQ(buffers.Take().capacity(), std::string().capacity()) << "taken: nothing kept until given back";

  CacheDelta second(std::move(kept), 0);
  second.AddPut("values", "k", "", "v");
  second.AddDelete("timed", "gone");
  std::string again = std::move(second).Finish();
  EXPECT_EQ(again.data(), memory) << "written into the kept buffer, not a new one";
  std::vector<Record> got;
  ASSERT_TRUE(ParseAll(again, &got).ok());
  const std::vector<Record> want = {{"values", "k", true, "v"}, {"timed", "gone", false, ""}};
  EXPECT_EQ(got, want);

  std::string huge;
  huge.reserve(DeltaBuffers::kMaxBytes + 1);
  buffers.Give(std::move(huge));
  EXPECT_EQ(buffers.Take().capacity(), std::string().capacity()) << "over kMaxBytes: freed, not kept";
}

TEST(CacheDeltaTest, NamesEachColumnFamilyOncePerRun) {
  CacheDelta delta;
  for (int i = 0; i < 100; ++i) delta.AddPut("timers/window_timers", "k" + std::to_string(i), "", "");
  delta.AddDelete("values", "v");
  delta.AddPut("timers/window_timers", "t", "", "");
  const std::string bytes = std::move(delta).Finish();
  size_t named = 0;
  for (size_t at = bytes.find("timers/window_timers"); at != std::string::npos;
       at = bytes.find("timers/window_timers", at + 1)) {
    ++named;
  }
  EXPECT_EQ(named, 2u);
  std::vector<Record> got;
  ASSERT_TRUE(ParseAll(bytes, &got).ok());
  ASSERT_EQ(got.size(), 102u);
  EXPECT_EQ(got[99], (Record{"timers/window_timers", "k99", true, ""}));
  EXPECT_EQ(got[100], (Record{"values", "v", false, ""}));
  EXPECT_EQ(got[101], (Record{"timers/window_timers", "t", true, ""}));
}

TEST(CacheDeltaTest, ReadsFormatOneOfEarlierSnapshots) {
  // Format 1 named the column family in every record.
  const std::string bytes = std::string("vstream-cache-delta 1\n") + "P\x06values\x02k1\x02v1" + "D\x05timed\x02k2" +
                            "END";
  std::vector<Record> got;
  ASSERT_TRUE(ParseAll(bytes, &got).ok());
  const std::vector<Record> want = {{"values", "k1", true, "v1"}, {"timed", "k2", false, ""}};
  EXPECT_EQ(got, want);
}

TEST(CacheDeltaTest, ARecordBeforeAnyColumnFamilyIsDataLoss) {
  std::vector<Record> got;
  EXPECT_TRUE(absl::IsDataLoss(ParseAll(std::string("vstream-cache-delta 2\n") + "D\x02k1END", &got)));
  EXPECT_TRUE(got.empty());
}

TEST(CacheDeltaTest, EveryTruncationAndRandomBytesAreDataLossNotACrash) {
  CacheDelta delta;
  for (int i = 0; i < 20; ++i) delta.AddPut("cf", "key" + std::to_string(i), "", std::string(i * 7, 'x'));
  const std::string bytes = std::move(delta).Finish();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<Record> got;
    EXPECT_TRUE(absl::IsDataLoss(ParseAll(std::string_view(bytes).substr(0, n), &got))) << n;
  }
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string garbage = bytes.substr(0, rng() % bytes.size());
    for (int i = 0; i < 8; ++i) garbage.push_back(static_cast<char>(rng()));
    if (round % 2 == 0 && !garbage.empty()) garbage[rng() % garbage.size()] ^= static_cast<char>(1 + rng() % 255);
    std::vector<Record> got;
    const absl::Status s = ParseAll(garbage, &got);
    EXPECT_TRUE(s.ok() || absl::IsDataLoss(s)) << s;
  }
}

TEST(CacheDeltaTest, AnErrorFromTheCallbackStopsTheParse) {
  CacheDelta delta;
  delta.AddDelete("a", "1");
  delta.AddDelete("a", "2");
  int calls = 0;
  const absl::Status s = CacheDelta::Parse(std::move(delta).Finish(), [&](auto, auto, auto) {
    ++calls;
    return absl::InternalError("stop");
  });
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(absl::IsInternal(s));
}

// The state log's segments: sealed in write order, named so that they sort
// so, each a delta of its own.
TEST(StateLogTest, SegmentsAreSealedInOrderAndForgottenFromTheFront) {
  StateLog log;
  log.Seal();
  EXPECT_TRUE(log.segments().empty()) << "nothing to seal";
  EXPECT_EQ(log.bytes(), 0u);
  for (int s = 0; s < 12; ++s) {
    log.AddPut("seen", "k" + std::to_string(s), "v");
    if (s % 3 == 0) log.AddDelete("seen", "k" + std::to_string(s));
    log.Seal();
  }
  ASSERT_EQ(log.segments().size(), 12u);
  size_t bytes = 0;
  for (size_t i = 0; i < log.segments().size(); ++i) {
    const StateLog::Segment& segment = log.segments()[i];
    EXPECT_TRUE(StateLog::IsSegmentFile(segment.name)) << segment.name;
    if (i > 0) {
      EXPECT_LT(log.segments()[i - 1].name, segment.name);
    }
    bytes += segment.bytes->size();
    std::vector<Record> got;
    ASSERT_TRUE(ParseAll(*segment.bytes, &got).ok());
    std::vector<Record> want{{"seen", "k" + std::to_string(i), true, "v"}};
    if (i % 3 == 0) want.push_back({"seen", "k" + std::to_string(i), false, ""});
    EXPECT_EQ(got, want);
  }
  EXPECT_EQ(log.bytes(), bytes);
  const std::string third = log.segments()[2].name;
  const size_t log_bytes_of_first_two = log.segments()[0].bytes->size() + log.segments()[1].bytes->size();
  log.DropFirst(2);
  ASSERT_EQ(log.segments().size(), 10u);
  EXPECT_EQ(log.segments()[0].name, third);
  EXPECT_EQ(log.bytes(), bytes - log_bytes_of_first_two);
  log.AddPut("seen", "later", "v");
  EXPECT_GT(log.bytes(), bytes - log_bytes_of_first_two) << "unsealed writes count too";
  log.DropFirst(100);
  EXPECT_TRUE(log.segments().empty());
  log.Seal();
  ASSERT_EQ(log.segments().size(), 1u);
  EXPECT_GT(log.segments()[0].name, third) << "numbers are never reused";
  EXPECT_FALSE(StateLog::IsSegmentFile("STATE-LOG-12"));
  EXPECT_FALSE(StateLog::IsSegmentFile("STATE-LOG-00000000x1"));
  EXPECT_FALSE(StateLog::IsSegmentFile("CACHE-DELTA"));
}

TEST(StateLogTest, ARestoreAppliesTheSegmentsInOrderThenTheCacheDelta) {
  TestingStateDir dir("state-log");
  std::filesystem::create_directories(dir.path());
  StateLog log;
  for (int s = 0; s < 11; ++s) {  // past 10: the order is numeric, not by digit count
    log.AddPut("seen", "k", std::to_string(s));
    log.Seal();
  }
  std::vector<std::string> want;
  for (const StateLog::Segment& segment : log.segments()) {
    want.push_back(dir.sub(segment.name));
    std::ofstream(want.back(), std::ios::binary) << *segment.bytes;
  }
  std::ofstream(dir.sub(CacheDelta::kFileName)) << "x";
  std::ofstream(dir.sub("000012.sst")) << "x";
  std::ofstream(dir.sub("STATE-LOG-1")) << "x";
  want.push_back(dir.sub(CacheDelta::kFileName));
  // Listed in another order than written: the names decide.
  auto listed = SnapshotDeltaFiles(dir.path());
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed, want);
  EXPECT_TRUE(absl::IsDataLoss(SnapshotDeltaFiles(dir.sub("missing")).status())) << "no directory to list";
}

}  // namespace
}  // namespace vstream
