// Every state kind through the current-key model: values, lists, maps,
// reducing and aggregating states; isolation of namespaces, key groups and
// states; key-group range scans; registration rules; reopening.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "state/keyed_state_backend.h"
#include "state/tests/testing_state.h"

namespace vstream {
namespace {

std::unique_ptr<KeyedStateBackend> OpenBackend(const std::string& path) {
  auto backend = KeyedStateBackend::Open({.path = path});
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(*backend) : nullptr;
}

TEST(StateKeyTest, EncodingRoundTripsAndIsPrefixFree) {
  const std::string raw = StateKey(300, "patient-7", "window-1", "bp");
  StateKeyView view;
  ASSERT_TRUE(DecodeStateKey(raw, &view));
  EXPECT_EQ(view.key_group, 300);
  EXPECT_EQ(view.key, "patient-7");
  EXPECT_EQ(view.ns, "window-1");
  EXPECT_EQ(view.user_key, "bp");
  // ("ab", "c") and ("a", "bc") must not share a prefix relation.
  const std::string ab_c = StateKey(1, "ab", "c");
  const std::string a_bc = StateKey(1, "a", "bc");
  EXPECT_NE(ab_c.substr(0, a_bc.size()), a_bc);
  EXPECT_NE(a_bc.substr(0, ab_c.size()), ab_c);
  EXPECT_FALSE(DecodeStateKey(std::string("\x00\x01\x05", 3), &view));
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff\xff", 3)), "b");
}

TEST(ValueStateTest, GetPutClearOnCurrentKey) {
  TestingStateDir dir("value-state");
  auto backend = OpenBackend(dir.path());
  auto state = backend->GetValueState({.name = "last"});
  ASSERT_TRUE(state.ok()) << state.status();
  ValueState& last = **state;
  std::string v;
  backend->SetCurrentKey(3, "alice");
  EXPECT_EQ(*last.Get("", &v), StateLookup::kAbsent);
  ASSERT_TRUE(last.Put("", "1").ok());
  backend->SetCurrentKey(3, "bob");
  ASSERT_TRUE(last.Put("", "2").ok());
  backend->SetCurrentKey(3, "alice");
  ASSERT_EQ(*last.Get("", &v), StateLookup::kFound);
  EXPECT_EQ(v, "1");
  ASSERT_TRUE(last.Clear("").ok());
  EXPECT_EQ(*last.Get("", &v), StateLookup::kAbsent);
  backend->SetCurrentKey(3, "bob");
  ASSERT_EQ(*last.Get("", &v), StateLookup::kFound);
  EXPECT_EQ(v, "2");
}

TEST(ValueStateTest, NamespacesKeyGroupsAndStatesAreIsolated) {
  TestingStateDir dir("value-isolation");
  auto backend = OpenBackend(dir.path());
  ValueState* a = *backend->GetValueState({.name = "a"});
  ValueState* b = *backend->GetValueState({.name = "b"});
  backend->SetCurrentKey(5, "k");
  ASSERT_TRUE(a->Put("w1", "a-w1").ok());
  ASSERT_TRUE(a->Put("w2", "a-w2").ok());
  ASSERT_TRUE(a->Put("", "a-void").ok());
  ASSERT_TRUE(b->Put("w1", "b-w1").ok());
  // Key and namespace boundaries: ("k", "w1x") vs ("kw", "1x") must differ.
  backend->SetCurrentKey(5, "kw");
  ASSERT_TRUE(a->Put("1", "kw-1").ok());
  std::string v;
  EXPECT_EQ(*a->Get("w1", &v), StateLookup::kAbsent);
  backend->SetCurrentKey(6, "k");  // same key, other key group
  EXPECT_EQ(*a->Get("w1", &v), StateLookup::kAbsent);
  backend->SetCurrentKey(5, "k");
  EXPECT_EQ(*a->Get("w1", &v), StateLookup::kFound);
  EXPECT_EQ(v, "a-w1");
  EXPECT_EQ(*a->Get("w2", &v), StateLookup::kFound);
  EXPECT_EQ(v, "a-w2");
  EXPECT_EQ(*a->Get("", &v), StateLookup::kFound);
  EXPECT_EQ(v, "a-void");
  EXPECT_EQ(*b->Get("w1", &v), StateLookup::kFound);
  EXPECT_EQ(v, "b-w1");
  EXPECT_EQ(*b->Get("w2", &v), StateLookup::kAbsent);
  ASSERT_TRUE(a->Clear("w1").ok());
  EXPECT_EQ(*a->Get("w1", &v), StateLookup::kAbsent);
  EXPECT_EQ(*a->Get("w2", &v), StateLookup::kFound);
}

TEST(ListStateTest, AddGetUpdateClear) {
  TestingStateDir dir("list-state");
  auto backend = OpenBackend(dir.path());
  ListState* events = *backend->GetListState({.name = "events"});
  backend->SetCurrentKey(1, "p1");
  std::vector<std::string> got;
  EXPECT_EQ(*events->Get("w", &got), StateLookup::kAbsent);
  ASSERT_TRUE(events->Add("w", "a").ok());
  ASSERT_TRUE(events->Add("w", std::string("b\0c", 3)).ok());  // binary-safe
  ASSERT_TRUE(events->Add("w", "").ok());
  ASSERT_TRUE(events->Add("other", "x").ok());
  ASSERT_EQ(*events->Get("w", &got), StateLookup::kFound);
  EXPECT_EQ(got, (std::vector<std::string>{"a", std::string("b\0c", 3), ""}));
  ASSERT_TRUE(events->Update("w", {"z"}).ok());
  ASSERT_TRUE(events->Add("w", "y").ok());
  ASSERT_EQ(*events->Get("w", &got), StateLookup::kFound);
  EXPECT_EQ(got, (std::vector<std::string>{"z", "y"}));
  ASSERT_TRUE(events->Clear("w").ok());
  EXPECT_EQ(*events->Get("w", &got), StateLookup::kAbsent);
  ASSERT_EQ(*events->Get("other", &got), StateLookup::kFound);
  EXPECT_EQ(got, (std::vector<std::string>{"x"}));
  // Survives flush and compaction (the merge operator folds the operands).
  ASSERT_TRUE(events->Add("other", "y").ok());
  ASSERT_TRUE(backend->CompactState(events->id()).ok());
  ASSERT_EQ(*events->Get("other", &got), StateLookup::kFound);
  EXPECT_EQ(got, (std::vector<std::string>{"x", "y"}));
}

TEST(MapStateTest, PutGetRemoveIterateOneKeyAndNamespace) {
  TestingStateDir dir("map-state");
  auto backend = OpenBackend(dir.path());
  MapState* vitals = *backend->GetMapState({.name = "vitals"});
  backend->SetCurrentKey(9, "p1");
  ASSERT_TRUE(vitals->Put("w1", "hr", "80").ok());
  ASSERT_TRUE(vitals->Put("w1", "bp", "120").ok());
  ASSERT_TRUE(vitals->Put("w1", "spo2", "97").ok());
  ASSERT_TRUE(vitals->Put("w2", "hr", "90").ok());
  backend->SetCurrentKey(9, "p10");  // "p1" is a byte prefix of "p10"
  ASSERT_TRUE(vitals->Put("w1", "hr", "60").ok());
  backend->SetCurrentKey(9, "p1");

  std::string v;
  ASSERT_EQ(*vitals->Get("w1", "hr", &v), StateLookup::kFound);
  EXPECT_EQ(v, "80");
  EXPECT_EQ(*vitals->Get("w1", "temp", &v), StateLookup::kAbsent);

  std::map<std::string, std::string> seen;
  ASSERT_TRUE(vitals->ForEach("w1", [&](std::string_view k, std::string_view val) {
    seen.emplace(std::string(k), std::string(val));
  }).ok());
  EXPECT_EQ(seen, (std::map<std::string, std::string>{{"bp", "120"}, {"hr", "80"}, {"spo2", "97"}}));

  ASSERT_TRUE(vitals->Remove("w1", "bp").ok());
  EXPECT_EQ(*vitals->Get("w1", "bp", &v), StateLookup::kAbsent);
  EXPECT_FALSE(*vitals->IsEmpty("w1"));
  ASSERT_TRUE(vitals->Clear("w1").ok());
  EXPECT_TRUE(*vitals->IsEmpty("w1"));
  EXPECT_FALSE(*vitals->IsEmpty("w2"));
  backend->SetCurrentKey(9, "p10");
  ASSERT_EQ(*vitals->Get("w1", "hr", &v), StateLookup::kFound);
  EXPECT_EQ(v, "60");
}

TEST(MapStateTest, ForEachInRangeReadsOneUserKeyRangeInOrder) {
  TestingStateDir dir("map-state-range");
  auto backend = OpenBackend(dir.path());
  MapStateDescriptor descriptor;
  descriptor.name = "buffer";
  MapState* buffer = *backend->GetMapState(descriptor);
  // Another key and another namespace that a range scan must not see.
  backend->SetCurrentKey(4, "p10");
  ASSERT_TRUE(buffer->Put("", "c", "other key").ok());
  backend->SetCurrentKey(4, "p1");
  ASSERT_TRUE(buffer->Put("x", "c", "other namespace").ok());
  for (const char* k : {"a", "b", "b1", "c", "d", "e\xff"}) ASSERT_TRUE(buffer->Put("", k, k).ok());
  ASSERT_TRUE(buffer->Remove("", "d").ok());

  auto range = [&](std::string_view from, std::string_view to, size_t stop_after = 100) {
    std::vector<std::string> seen;
    EXPECT_TRUE(buffer->ForEachInRange("", from, to, [&](std::string_view k, std::string_view v) {
      EXPECT_EQ(k, v);
      seen.emplace_back(k);
      return seen.size() < stop_after;
    }).ok());
    return seen;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(range("b", "c"), (V{"b", "b1"}));  // `to` is exclusive
  EXPECT_EQ(range("b0", "e"), (V{"b1", "c"}));  // removed entries are gone
  EXPECT_EQ(range("", ""), (V{"a", "b", "b1", "c", "e\xff"}));
  EXPECT_EQ(range("c", ""), (V{"c", "e\xff"}));
  EXPECT_EQ(range("a", "", 2), (V{"a", "b"}));  // fn stops the scan
  EXPECT_TRUE(range("f", "").empty());
  backend->SetCurrentKey(4, "p2");
  EXPECT_TRUE(range("", "").empty());
}

// ForEachInRange keeps its iterator between calls (refreshed): each scan
// sees every write before it, in the memtable or flushed, and none after.
TEST(MapStateTest, EachScanSeesTheWritesBeforeIt) {
  TestingStateDir dir("map-state-rescan");
  auto backend = OpenBackend(dir.path());
  MapState* buffer = *backend->GetMapState({.name = "buffer"});
  backend->SetCurrentKey(4, "p1");
  auto scan = [&] {
    std::vector<std::string> seen;
    EXPECT_TRUE(buffer->ForEachInRange("", "", "", [&](std::string_view k, std::string_view) {
      seen.emplace_back(k);
      return true;
    }).ok());
    return seen;
  };
  using V = std::vector<std::string>;
  EXPECT_TRUE(scan().empty());
  ASSERT_TRUE(buffer->Put("", "b", "1").ok());
  EXPECT_EQ(scan(), (V{"b"}));  // written after the last scan, in the memtable
  rocksdb::ColumnFamilyHandle* cf = backend->column_family(buffer->id());
  ASSERT_TRUE(backend->db()->Flush(rocksdb::FlushOptions(), cf).ok());
  ASSERT_TRUE(buffer->Put("", "a", "2").ok());
  EXPECT_EQ(scan(), (V{"a", "b"}));  // one in a file now, one in the memtable
  ASSERT_TRUE(buffer->Remove("", "b").ok());
  ASSERT_TRUE(buffer->Put("", "c", "3").ok());
  EXPECT_EQ(scan(), (V{"a", "c"}));
  buffer->ReleaseScan();
  ASSERT_TRUE(buffer->Put("", "d", "4").ok());
  EXPECT_EQ(scan(), (V{"a", "c", "d"}));
  backend->SetCurrentKey(4, "p2");  // another key: another prefix
  EXPECT_TRUE(scan().empty());
  // A scan from within a scan's fn gets an iterator of its own: the outer
  // one goes on where it was.
  backend->SetCurrentKey(4, "p1");
  std::vector<std::string> outer, inner;
  ASSERT_TRUE(buffer->ForEach("", [&](std::string_view k, std::string_view) {
    outer.emplace_back(k);
    inner = scan();
    EXPECT_FALSE(*buffer->IsEmpty(""));
    std::string v;  // a longer user key than any scan's: the state's key buffer grows
    EXPECT_EQ(*buffer->Get("", std::string(200, 'z'), &v), StateLookup::kAbsent);
  }).ok());
  EXPECT_EQ(outer, (V{"a", "c", "d"}));
  EXPECT_EQ(inner, (V{"a", "c", "d"}));
  EXPECT_EQ(scan(), (V{"a", "c", "d"})) << "the kept iterator serves scans again";
}

TEST(ReducingStateTest, ReadModifyWriteAndMergeAgree) {
  TestingStateDir dir("reducing-state");
  auto backend = OpenBackend(dir.path());
  // Max over 8-byte integers (associative) and a non-associative fold that
  // records the order of inputs (first - second - ...).
  ReduceFunction max = [](std::string* acc, std::string_view v) {
    if (DecodeI64(v) > DecodeI64(*acc)) acc->assign(v.data(), v.size());
  };
  ReduceFunction join = [](std::string* acc, std::string_view v) {
    acc->push_back('-');
    acc->append(v.data(), v.size());
  };
  ReducingState* max_rmw = *backend->GetReducingState({.name = "max_rmw", .reduce = max});
  ReducingState* max_merge =
      *backend->GetReducingState({.name = "max_merge", .reduce = max, .associative = true});
  ReducingState* order = *backend->GetReducingState({.name = "order", .reduce = join});
  EXPECT_FALSE(max_rmw->uses_merge());
  EXPECT_TRUE(max_merge->uses_merge());
  backend->SetCurrentKey(2, "k");
  for (int64_t x : {3, 9, 4, 7}) {
    ASSERT_TRUE(max_rmw->Add("", EncodeI64(x)).ok());
    ASSERT_TRUE(max_merge->Add("", EncodeI64(x)).ok());
    ASSERT_TRUE(order->Add("", std::to_string(x)).ok());
  }
  std::string v;
  ASSERT_EQ(*max_rmw->Get("", &v), StateLookup::kFound);
  EXPECT_EQ(DecodeI64(v), 9);
  ASSERT_EQ(*max_merge->Get("", &v), StateLookup::kFound);
  EXPECT_EQ(DecodeI64(v), 9);
  ASSERT_EQ(*order->Get("", &v), StateLookup::kFound);
  EXPECT_EQ(v, "3-9-4-7");
  ASSERT_TRUE(max_merge->Clear("").ok());
  EXPECT_EQ(*max_merge->Get("", &v), StateLookup::kAbsent);
  ASSERT_TRUE(max_merge->Add("", EncodeI64(-5)).ok());
  ASSERT_EQ(*max_merge->Get("", &v), StateLookup::kFound);
  EXPECT_EQ(DecodeI64(v), -5);
}

TEST(AggregatingStateTest, AllThreePathsAggregateTheSame) {
  TestingStateDir dir("aggregating-state");
  auto backend = OpenBackend(dir.path());
  AggregateFunction avg;  // accumulator "sum,count"; result "sum/count"
  avg.create_accumulator = [](std::string* acc) { *acc = "0,0"; };
  avg.add = [](std::string* acc, std::string_view in) {
    const size_t comma = acc->find(',');
    const int64_t sum = std::stoll(acc->substr(0, comma)) + std::stoll(std::string(in));
    const int64_t n = std::stoll(acc->substr(comma + 1)) + 1;
    *acc = std::to_string(sum) + "," + std::to_string(n);
  };
  avg.get_result = [](std::string_view acc, std::string* out) {
    const std::string s(acc);
    const size_t comma = s.find(',');
    *out = std::to_string(std::stoll(s.substr(0, comma)) / std::stoll(s.substr(comma + 1)));
  };
  AggregatingState* avg_state = *backend->GetAggregatingState({.name = "avg", .function = avg});
  AggregatingState* sum_merge = *backend->GetAggregatingState(
      {.name = "sum_merge", .function = SumFunction(), .associative = true});
  AggregatingState* sum_cached = *backend->GetAggregatingState(
      {.name = "sum_cached", .function = SumFunction(), .associative = true,
       .write_back_cache = true});
  EXPECT_TRUE(sum_merge->uses_merge());
  EXPECT_FALSE(sum_cached->uses_merge());
  EXPECT_TRUE(sum_cached->cached());
  for (int key = 0; key < 50; ++key) {
    backend->SetCurrentKey(key % 7, "key" + std::to_string(key));
    for (int i = 1; i <= 10; ++i) {
      ASSERT_TRUE(avg_state->Add("w", std::to_string(key * i)).ok());
      ASSERT_TRUE(sum_merge->Add("w", EncodeI64(key * i)).ok());
      ASSERT_TRUE(sum_cached->Add("w", EncodeI64(key * i)).ok());
    }
  }
  ASSERT_TRUE(backend->CompactState(sum_merge->id()).ok());  // operands folded in compaction
  for (int key = 0; key < 50; ++key) {
    backend->SetCurrentKey(key % 7, "key" + std::to_string(key));
    std::string v;
    ASSERT_EQ(*avg_state->Get("w", &v), StateLookup::kFound);
    EXPECT_EQ(v, std::to_string(key * 55 / 10));
    ASSERT_EQ(*sum_merge->Get("w", &v), StateLookup::kFound);
    EXPECT_EQ(DecodeI64(v), key * 55);
    ASSERT_EQ(*sum_cached->Get("w", &v), StateLookup::kFound);
    EXPECT_EQ(DecodeI64(v), key * 55);
    EXPECT_EQ(*sum_merge->Get("other", &v), StateLookup::kAbsent);
  }
}

TEST(KeyedStateBackendTest, KeyGroupRangeScanSeesExactlyItsKeys) {
  TestingStateDir dir("key-group-range");
  auto backend = OpenBackend(dir.path());
  ValueState* v = *backend->GetValueState({.name = "v"});
  MapState* m = *backend->GetMapState({.name = "m"});
  std::map<int, std::set<std::string>> keys_by_group;
  for (int i = 0; i < 2000; ++i) {
    const std::string key = "k" + std::to_string(i);
    const int kg = KeyGroupForHash(HashKeyBytes(key), kDefaultMaxParallelism);
    keys_by_group[kg].insert(key);
    backend->SetCurrentKey(kg, key);
    ASSERT_TRUE(v->Put("", "x").ok());
    ASSERT_TRUE(m->Put("ns", "a", "1").ok());
    ASSERT_TRUE(m->Put("ns", "b", "2").ok());
  }
  for (int subtask = 0; subtask < 3; ++subtask) {
    const KeyGroupRange range = KeyGroupRangeForSubtask(kDefaultMaxParallelism, 3, subtask);
    std::set<std::string> expected;
    for (int kg = range.start; kg <= range.end; ++kg) {
      expected.insert(keys_by_group[kg].begin(), keys_by_group[kg].end());
    }
    std::set<std::string> seen;
    int last_group = -1;
    ASSERT_TRUE(backend->ForEachKey(v->id(), range, [&](const StateKeyView& k) {
      EXPECT_GE(k.key_group, range.start);
      EXPECT_LE(k.key_group, range.end);
      EXPECT_GE(k.key_group, last_group);  // one contiguous, ordered range
      last_group = k.key_group;
      EXPECT_EQ(k.key_group, KeyGroupForHash(HashKeyBytes(k.key), kDefaultMaxParallelism));
      seen.insert(std::string(k.key));
    }).ok());
    EXPECT_EQ(seen, expected) << "subtask " << subtask;
    size_t map_entries = 0;
    ASSERT_TRUE(backend->ForEachKey(m->id(), range, [&](const StateKeyView& k) {
      EXPECT_EQ(k.ns, "ns");
      ++map_entries;
    }).ok());
    EXPECT_EQ(map_entries, 2 * expected.size());
  }
  // The last key group of the space scans to the end of the column family.
  backend->SetCurrentKey(kMaxKeyGroups - 1, "last");
  ASSERT_TRUE(v->Put("", "x").ok());
  int n = 0;
  ASSERT_TRUE(backend->ForEachKey(v->id(), {kMaxKeyGroups - 1, kMaxKeyGroups - 1},
                                  [&](const StateKeyView& k) {
                                    EXPECT_EQ(k.key, "last");
                                    ++n;
                                  }).ok());
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(backend->ForEachKey(v->id(), {5, 4}, [](const StateKeyView&) {}).ok());
}

TEST(KeyedStateBackendTest, RegistrationIsIdempotentAndChecked) {
  TestingStateDir dir("registration");
  auto backend = OpenBackend(dir.path());
  ValueState* a = *backend->GetValueState({.name = "a", .ttl_ms = 10});
  EXPECT_EQ(*backend->GetValueState({.name = "a", .ttl_ms = 10}), a);
  EXPECT_TRUE(absl::IsFailedPrecondition(backend->GetValueState({.name = "a"}).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(backend->GetListState({.name = "a", .ttl_ms = 10}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(backend->GetReducingState({.name = "r"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(backend->GetAggregatingState({.name = "g"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(backend->GetValueState({.name = ""}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(backend->GetValueState({.name = "default"}).status()));
  // The id-based API works on value states only.
  ListState* l = *backend->GetListState({.name = "l"});
  std::string v;
  EXPECT_TRUE(absl::IsInvalidArgument(backend->Get(l->id(), 0, "k", &v)));
  EXPECT_TRUE(absl::IsInvalidArgument(backend->Put(99, 0, "k", "v")));
}

TEST(KeyedStateBackendTest, ReopenWithoutWipeKeepsStateOfEveryKind) {
  TestingStateDir dir("reopen");
  {
    auto backend = OpenBackend(dir.path());
    backend->SetCurrentKey(4, "k");
    ASSERT_TRUE((*backend->GetValueState({.name = "v"}))->Put("", "value").ok());
    ASSERT_TRUE((*backend->GetListState({.name = "l"}))->Add("", "e1").ok());
    ASSERT_TRUE((*backend->GetAggregatingState(
                     {.name = "s", .function = SumFunction(), .associative = true}))
                    ->Add("", EncodeI64(40))
                    .ok());
    ASSERT_TRUE((*backend->GetValueState({.name = "cached", .write_back_cache = true}))
                    ->Put("", "in cache")
                    .ok());
  }  // closing writes the cache back
  auto reopened = KeyedStateBackend::Open({.path = dir.path(), .wipe_on_open = false});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  KeyedStateBackend& backend = **reopened;
  backend.SetCurrentKey(4, "k");
  // Registered in another order than before.
  AggregatingState* s = *backend.GetAggregatingState(
      {.name = "s", .function = SumFunction(), .associative = true});
  ASSERT_TRUE(s->Add("", EncodeI64(2)).ok());
  std::string v;
  ASSERT_EQ(*s->Get("", &v), StateLookup::kFound);
  EXPECT_EQ(DecodeI64(v), 42);
  ASSERT_EQ(*(*backend.GetValueState({.name = "v"}))->Get("", &v), StateLookup::kFound);
  EXPECT_EQ(v, "value");
  ASSERT_EQ(*(*backend.GetValueState({.name = "cached"}))->Get("", &v), StateLookup::kFound);
  EXPECT_EQ(v, "in cache");
  ListState* l = *backend.GetListState({.name = "l"});
  ASSERT_TRUE(l->Add("", "e2").ok());
  std::vector<std::string> list;
  ASSERT_EQ(*l->Get("", &list), StateLookup::kFound);
  EXPECT_EQ(list, (std::vector<std::string>{"e1", "e2"}));
}

}  // namespace
}  // namespace vstream
