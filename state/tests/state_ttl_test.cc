// State TTL: expired entries are invisible to reads at once, and RocksDB's
// compaction filter removes them from the column family.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "state/keyed_state_backend.h"
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

}  // namespace
}  // namespace vstream
