// State TTL: expired entries are invisible to reads at once, and RocksDB's
// compaction filter removes them from the column family.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "state/checkpoint_storage.h"
#include "state/keyed_state_backend.h"
#include "state/recent_keys_filter.h"
#include "state/state_snapshot.h"
#include "state/tests/testing_state.h"

namespace vstream {
namespace {

class StateTtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = KeyedStateBackend::Open({.path = dir_.path(), .clock = &clock_});
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(*backend);
  }

  TestingStateDir dir_{"state-ttl"};
  ManualStateClock clock_{1'000'000};
  std::unique_ptr<KeyedStateBackend> backend_;
};

TEST_F(StateTtlTest, ValueExpiresForReadsThenCompactionDropsIt) {
  ValueState* v = *backend_->GetValueState({.name = "v", .ttl_ms = 100});
  backend_->SetCurrentKey(1, "old");
  ASSERT_TRUE(v->Put("", "a").ok());
  clock_.Advance(60);
  backend_->SetCurrentKey(1, "young");
  ASSERT_TRUE(v->Put("", "b").ok());
  clock_.Advance(39);  // old: 99 ms
  std::string got;
  backend_->SetCurrentKey(1, "old");
  ASSERT_EQ(*v->Get("", &got), StateLookup::kFound);
  EXPECT_EQ(got, "a");
  clock_.Advance(1);  // old: 100 ms, expired; young: 40 ms
  EXPECT_EQ(*v->Get("", &got), StateLookup::kAbsent);
  backend_->SetCurrentKey(1, "young");
  ASSERT_EQ(*v->Get("", &got), StateLookup::kFound);

  // Invisible, but still in RocksDB until a compaction.
  EXPECT_FALSE(RawGet(*backend_, v->id(), StateKey(1, "old")).empty());
  int live = 0;
  ASSERT_TRUE(backend_->ForEachKey(v->id(), {0, 127}, [&](const StateKeyView& k) {
    EXPECT_EQ(k.key, "young");
    ++live;
  }).ok());
  EXPECT_EQ(live, 1);

  ASSERT_TRUE(backend_->CompactState(v->id()).ok());
  EXPECT_TRUE(RawGet(*backend_, v->id(), StateKey(1, "old")).empty());
  EXPECT_FALSE(RawGet(*backend_, v->id(), StateKey(1, "young")).empty());
}

TEST_F(StateTtlTest, WriteRenewsTheTimeToLive) {
  ValueState* v = *backend_->GetValueState({.name = "v", .ttl_ms = 100});
  backend_->SetCurrentKey(1, "k");
  ASSERT_TRUE(v->Put("", "a").ok());
  clock_.Advance(90);
  ASSERT_TRUE(v->Put("", "b").ok());
  clock_.Advance(90);
  std::string got;
  ASSERT_EQ(*v->Get("", &got), StateLookup::kFound);
  EXPECT_EQ(got, "b");
}

TEST_F(StateTtlTest, ListElementsExpireOneByOne) {
  ListState* l = *backend_->GetListState({.name = "l", .ttl_ms = 100});
  backend_->SetCurrentKey(2, "k");
  ASSERT_TRUE(l->Add("w", "first").ok());
  clock_.Advance(50);
  ASSERT_TRUE(l->Add("w", "second").ok());
  clock_.Advance(50);  // first expired
  std::vector<std::string> got;
  ASSERT_EQ(*l->Get("w", &got), StateLookup::kFound);
  EXPECT_EQ(got, (std::vector<std::string>{"second"}));

  ASSERT_TRUE(backend_->CompactState(l->id()).ok());
  const std::string raw = RawGet(*backend_, l->id(), StateKey(2, "k", "w"));
  EXPECT_NE(raw.find("second"), std::string::npos);
  EXPECT_EQ(raw.find("first"), std::string::npos);

  clock_.Advance(50);
  EXPECT_EQ(*l->Get("w", &got), StateLookup::kAbsent);
  ASSERT_TRUE(backend_->CompactState(l->id()).ok());
  EXPECT_TRUE(RawGet(*backend_, l->id(), StateKey(2, "k", "w")).empty());
}

TEST_F(StateTtlTest, MapEntriesExpireOneByOne) {
  MapState* m = *backend_->GetMapState({.name = "m", .ttl_ms = 100});
  backend_->SetCurrentKey(3, "k");
  ASSERT_TRUE(m->Put("", "old", "1").ok());
  clock_.Advance(50);
  ASSERT_TRUE(m->Put("", "new", "2").ok());
  clock_.Advance(50);
  std::string got;
  EXPECT_EQ(*m->Get("", "old", &got), StateLookup::kAbsent);
  ASSERT_EQ(*m->Get("", "new", &got), StateLookup::kFound);
  std::vector<std::string> keys;
  ASSERT_TRUE(m->ForEach("", [&](std::string_view k, std::string_view) { keys.emplace_back(k); }).ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"new"}));
  ASSERT_TRUE(backend_->CompactState(m->id()).ok());
  EXPECT_TRUE(RawGet(*backend_, m->id(), StateKey(3, "k", "", "old")).empty());
  EXPECT_FALSE(RawGet(*backend_, m->id(), StateKey(3, "k", "", "new")).empty());
}

TEST_F(StateTtlTest, AggregateRestartsAfterExpiryOnEveryPath) {
  AggregatingState* rmw =
      *backend_->GetAggregatingState({.name = "rmw", .function = SumFunction(), .ttl_ms = 100});
  AggregatingState* merge = *backend_->GetAggregatingState(
      {.name = "merge", .function = SumFunction(), .associative = true, .ttl_ms = 100});
  AggregatingState* cached = *backend_->GetAggregatingState(
      {.name = "cached", .function = SumFunction(), .write_back_cache = true, .ttl_ms = 100});
  backend_->SetCurrentKey(4, "k");
  for (AggregatingState* s : {rmw, merge, cached}) {
    ASSERT_TRUE(s->Add("", EncodeI64(5)).ok());
    ASSERT_TRUE(s->Add("", EncodeI64(6)).ok());
  }
  clock_.Advance(99);
  for (AggregatingState* s : {rmw, merge, cached}) {
    std::string got;
    ASSERT_EQ(*s->Get("", &got), StateLookup::kFound) << s->name();
    EXPECT_EQ(DecodeI64(got), 11) << s->name();
  }
  clock_.Advance(1);
  for (AggregatingState* s : {rmw, merge, cached}) {
    std::string got;
    EXPECT_EQ(*s->Get("", &got), StateLookup::kAbsent) << s->name();
    // A write after expiry starts from a fresh accumulator.
    ASSERT_TRUE(s->Add("", EncodeI64(7)).ok());
    ASSERT_EQ(*s->Get("", &got), StateLookup::kFound) << s->name();
    EXPECT_EQ(DecodeI64(got), 7) << s->name();
  }
  clock_.Advance(150);
  ASSERT_TRUE(backend_->Flush().ok());
  for (AggregatingState* s : {rmw, merge, cached}) {
    ASSERT_TRUE(backend_->CompactState(s->id()).ok());
  }
  // Merge operands stay until folded into a value; a value is dropped by the
  // next compaction.
  ASSERT_TRUE(backend_->CompactState(merge->id()).ok());
  for (AggregatingState* s : {rmw, merge, cached}) {
    EXPECT_TRUE(RawGet(*backend_, s->id(), StateKey(4, "k")).empty()) << s->name();
  }
}

// With the filter, Puts are held and written in batches: before a Get the
// filter lets through, a Remove, a scan and a snapshot, and once
// kMaxHeldPuts gathered.
TEST_F(StateTtlTest, HeldPutsReachRocksDbBeforeReadsRemovesScansAndSnapshots) {
  MapState* m = *backend_->GetMapState({.name = "seen", .ttl_ms = 1000, .filter_recent_keys = true});
  backend_->SetCurrentKey(1, "p");
  ASSERT_TRUE(m->Put("", "a", "1").ok());
  ASSERT_TRUE(m->Put("", "b", "2").ok());
  EXPECT_TRUE(RawGet(*backend_, m->id(), StateKey(1, "p", "", "a")).empty()) << "held";
  std::vector<std::string> keys;
  ASSERT_TRUE(m->ForEach("", [&](std::string_view k, std::string_view) { keys.emplace_back(k); }).ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(m->Put("", "c", "3").ok());
  ASSERT_TRUE(m->Remove("", "c").ok());  // after its Put, not before
  std::string got;
  EXPECT_EQ(*m->Get("", "c", &got), StateLookup::kAbsent);
  ASSERT_TRUE(m->Put("", "d", "4").ok());
  ASSERT_TRUE(m->Put("", "d", "5").ok());
  EXPECT_TRUE(RawGet(*backend_, m->id(), StateKey(1, "p", "", "d")).empty()) << "held";

  TestingStateDir root("state-ttl-held-snapshot");
  auto storage = CheckpointStorage::Open("file://" + root.sub("storage"));
  ASSERT_TRUE(storage.ok()) << storage.status();
  std::shared_ptr<CheckpointStorage> shared = std::move(*storage);
  IncrementalSnapshotter snap(shared, "held");
  auto local = TakeLocalSnapshot(*backend_, 1, root.sub("local-1"), {0, 127});
  ASSERT_TRUE(local.ok()) << local.status();
  auto handle = snap.Upload(*local, "chk-1/op-0");
  ASSERT_TRUE(handle.ok()) << handle.status();
  ASSERT_TRUE(RestoreKeyedState(*shared, *handle, {0, 127}, root.sub("restored")).ok());
  {
    auto restored = KeyedStateBackend::Open({.path = root.sub("restored"), .wipe_on_open = false, .clock = &clock_});
    ASSERT_TRUE(restored.ok()) << restored.status();
    MapState* r = *(*restored)->GetMapState({.name = "seen", .ttl_ms = 1000, .filter_recent_keys = true});
    (*restored)->SetCurrentKey(1, "p");
    keys.clear();
    std::vector<std::string> values;
    ASSERT_TRUE(r->ForEach("", [&](std::string_view k, std::string_view v) {
      keys.emplace_back(k);
      values.emplace_back(v);
    }).ok());
    EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "d"}));
    EXPECT_EQ(values, (std::vector<std::string>{"1", "2", "5"}));
  }

  backend_->SetCurrentKey(2, "q");
  for (uint32_t i = 0; i < MapState::kMaxHeldPuts; ++i) {
    ASSERT_TRUE(m->Put("", "k" + std::to_string(i), "").ok());
  }
  EXPECT_FALSE(RawGet(*backend_, m->id(), StateKey(2, "q", "", "k0")).empty()) << "a full batch is written";
}

// A map with a filter of recent keys: reads of entries never written are
// answered without RocksDB (all but the filter's ~1% false positives), reads
// of written ones find them, and expiry drops the filter's memory with the
// entries.
TEST_F(StateTtlTest, AFilterOfRecentKeysAnswersNewKeysAndForgetsExpiredOnes) {
  MapState* m = *backend_->GetMapState({.name = "seen", .ttl_ms = 1000, .filter_recent_keys = true});
  ASSERT_NE(m->recent_keys(), nullptr);
  constexpr int kKeys = 2000;
  auto key = [](int i) { return "patient-" + std::to_string(i % 50); };
  for (int i = 0; i < kKeys; ++i) {
    backend_->SetCurrentKey(i % 128, key(i));
    ASSERT_TRUE(m->Put("", "msg-" + std::to_string(i), "").ok());
  }
  std::string got;
  for (int i = 0; i < kKeys; ++i) {
    backend_->SetCurrentKey(i % 128, key(i));
    ASSERT_EQ(*m->Get("", "msg-" + std::to_string(i), &got), StateLookup::kFound) << i;
  }
  EXPECT_EQ(m->filtered_reads(), 0);
  for (int i = 0; i < kKeys; ++i) {
    backend_->SetCurrentKey(i % 128, key(i));
    ASSERT_EQ(*m->Get("", "other-" + std::to_string(i), &got), StateLookup::kAbsent) << i;
  }
  EXPECT_GE(m->filtered_reads(), kKeys * 95 / 100);
  EXPECT_GT(m->recent_keys()->bytes(), 0u);

  clock_.Advance(1000);  // every entry expired
  backend_->SetCurrentKey(0, key(0));
  EXPECT_EQ(*m->Get("", "msg-0", &got), StateLookup::kAbsent);
  clock_.Advance(1000);  // and every bucket of the filter with them
  EXPECT_EQ(*m->Get("", "msg-0", &got), StateLookup::kAbsent);
  EXPECT_EQ(m->recent_keys()->parts(), 0u);
  EXPECT_EQ(m->recent_keys()->bytes(), 0u);
  ASSERT_TRUE(m->Put("", "msg-0", "again").ok());
  ASSERT_EQ(*m->Get("", "msg-0", &got), StateLookup::kFound);
  EXPECT_EQ(got, "again");
}

// Reopened from disk (as after a restore), the filter starts with every live
// entry there: none of them reads as absent, the expired ones do, and new
// keys are filtered.
TEST(StateTtlFilterTest, AReopenedMapsFilterHoldsItsLiveEntries) {
  TestingStateDir dir("state-ttl-filter");
  ManualStateClock clock(1'000'000);
  const MapStateDescriptor seen{.name = "seen", .ttl_ms = 1000, .filter_recent_keys = true};
  {
    auto backend = KeyedStateBackend::Open({.path = dir.path(), .clock = &clock});
    ASSERT_TRUE(backend.ok()) << backend.status();
    MapState* m = *(*backend)->GetMapState(seen);
    for (int i = 0; i < 300; ++i) {
      if (i == 100) clock.Advance(600);
      (*backend)->SetCurrentKey(i % 7, "p");
      ASSERT_TRUE(m->Put("", "msg-" + std::to_string(i), "").ok());
    }
  }
  clock.Advance(500);  // the first 100 expired, the rest 500 ms old
  auto backend = KeyedStateBackend::Open({.path = dir.path(), .wipe_on_open = false, .clock = &clock});
  ASSERT_TRUE(backend.ok()) << backend.status();
  MapState* m = *(*backend)->GetMapState(seen);
  ASSERT_NE(m->recent_keys(), nullptr);
  std::string got;
  for (int i = 0; i < 300; ++i) {
    (*backend)->SetCurrentKey(i % 7, "p");
    EXPECT_EQ(*m->Get("", "msg-" + std::to_string(i), &got), i < 100 ? StateLookup::kAbsent : StateLookup::kFound)
        << i;
  }
  // Registered again (the same handle): no second scan, the same answers.
  EXPECT_EQ(*(*backend)->GetMapState(seen), m);
  const int64_t before = m->filtered_reads();
  for (int i = 0; i < 300; ++i) {
    (*backend)->SetCurrentKey(i % 7, "p");
    EXPECT_EQ(*m->Get("", "new-" + std::to_string(i), &got), StateLookup::kAbsent);
  }
  EXPECT_GE(m->filtered_reads() - before, 280);
}

// Entries written on a clock ahead of the restoring TaskManager's: their
// later write times do not make the filter drop the buckets of entries that
// are live by its own clock.
TEST(StateTtlFilterTest, EntriesFromAClockAheadKeepTheOthersLive) {
  TestingStateDir dir("state-ttl-filter-ahead");
  ManualStateClock clock(9'100);
  const MapStateDescriptor seen{.name = "seen", .ttl_ms = 1000, .filter_recent_keys = true};
  {
    auto backend = KeyedStateBackend::Open({.path = dir.path(), .clock = &clock});
    ASSERT_TRUE(backend.ok()) << backend.status();
    MapState* m = *(*backend)->GetMapState(seen);
    (*backend)->SetCurrentKey(1, "p");
    ASSERT_TRUE(m->Put("", "a", "").ok());  // written at 9,100: live until 10,100
    clock.Set(10'300);
    ASSERT_TRUE(m->Put("", "b", "").ok());  // sorts after "a", the scan adds it later
  }
  clock.Set(10'000);  // this TaskManager's clock is behind
  auto backend = KeyedStateBackend::Open({.path = dir.path(), .wipe_on_open = false, .clock = &clock});
  ASSERT_TRUE(backend.ok()) << backend.status();
  MapState* m = *(*backend)->GetMapState(seen);
  (*backend)->SetCurrentKey(1, "p");
  clock.Set(10'050);
  std::string got;
  EXPECT_EQ(*m->Get("", "a", &got), StateLookup::kFound);
  EXPECT_EQ(*m->Get("", "b", &got), StateLookup::kFound);
}

// A map registered without the filter and then with it: the filter starts
// from the entries already there.
TEST_F(StateTtlTest, AFilterAddedToARegisteredMapStartsFromItsEntries) {
  MapState* m = *backend_->GetMapState({.name = "seen", .ttl_ms = 1000});
  backend_->SetCurrentKey(1, "p");
  ASSERT_TRUE(m->Put("", "a", "1").ok());
  MapState* filtered = *backend_->GetMapState({.name = "seen", .ttl_ms = 1000, .filter_recent_keys = true});
  ASSERT_EQ(filtered, m);
  ASSERT_NE(m->recent_keys(), nullptr);
  std::string got;
  EXPECT_EQ(*m->Get("", "a", &got), StateLookup::kFound);
  EXPECT_EQ(*m->Get("", "b", &got), StateLookup::kAbsent);
  EXPECT_EQ(m->filtered_reads(), 1);
}

// Over its memory limit the filter turns off: every read goes to RocksDB,
// and finds what was written. Without a ttl there is no filter.
TEST_F(StateTtlTest, AFilterOverItsLimitTurnsOffAndReadsStillFindEverything) {
  MapState* m = *backend_->GetMapState(
      {.name = "seen", .ttl_ms = 1000, .filter_recent_keys = true, .recent_keys_filter_max_bytes = 1024});
  backend_->SetCurrentKey(1, "p");
  ASSERT_TRUE(m->Put("", "a", "1").ok());
  EXPECT_FALSE(m->recent_keys()->on());
  EXPECT_EQ(m->recent_keys()->bytes(), 0u);
  std::string got;
  ASSERT_EQ(*m->Get("", "a", &got), StateLookup::kFound);
  EXPECT_EQ(*m->Get("", "b", &got), StateLookup::kAbsent);
  EXPECT_EQ(m->filtered_reads(), 0);

  auto untimed = backend_->GetMapState({.name = "forever", .filter_recent_keys = true});
  ASSERT_FALSE(untimed.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(untimed.status())) << untimed.status();
  EXPECT_NE(untimed.status().message().find("needs a ttl"), std::string::npos) << untimed.status();
}

// The filter alone: no key added is ever missed, also past a full filter
// (a bucket's next is twice the size), and about 1% of keys never added
// pass.
TEST(RecentKeysFilterTest, NoAddedKeyIsMissedAndFewOthersPass) {
  RecentKeysFilter filter("test", 1000, size_t{64} << 20);
  const size_t n = 3 * RecentKeysFilter::kMinKeys;
  for (size_t i = 0; i < n; ++i) filter.Add(HashKeyBytes("k" + std::to_string(i)), 10, 10);
  EXPECT_EQ(filter.parts(), 2u);
  for (size_t i = 0; i < n; ++i) ASSERT_TRUE(filter.MayContain(HashKeyBytes("k" + std::to_string(i)), 20)) << i;
  size_t passed = 0;
  for (size_t i = 0; i < 100000; ++i) passed += filter.MayContain(HashKeyBytes("x" + std::to_string(i)), 20);
  EXPECT_LT(passed, 3000u);
  // Buckets are ttl/4 wide: a key written at 10 (expired at 1010) is kept
  // until its bucket's last write time, 249, has expired.
  EXPECT_TRUE(filter.MayContain(HashKeyBytes("k0"), 1248));
  EXPECT_FALSE(filter.MayContain(HashKeyBytes("k0"), 1249));
  EXPECT_EQ(filter.bytes(), 0u);
}

}  // namespace
}  // namespace vstream
