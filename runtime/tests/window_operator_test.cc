#include "runtime/operators/window_operator.h"

#include <algorithm>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/network/buffer.h"
#include "runtime/row_codec.h"
#include "state/cache_delta.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/state_key.h"
#include "state/state_snapshot.h"

namespace vstream {
namespace {

// Collects rows as "k,start,end,count,max" text, and watermarks.
class Collect : public Output {
 public:
  explicit Collect(Schema schema) : schema_(std::move(schema)) {}
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      std::string line;
      for (size_t f = 0; f < schema_.size(); ++f) {
        if (f) line += ",";
        line += batch[i][f].is_null ? "null"
                : schema_.field(f).type == FieldType::kString ? batch[i][f].s
                : schema_.field(f).type == FieldType::kDouble ? std::to_string(batch[i][f].d)
                                                              : std::to_string(batch[i][f].i);
      }
      rows.push_back(line);
    }
  }
  void Finish() override {}
  void PushWatermark(int64_t wm) override {
    watermarks.push_back(wm);
    events.push_back("W" + std::to_string(wm) + "@" + std::to_string(rows.size()));
  }
  void PushIdle() override { events.push_back("I@" + std::to_string(rows.size())); }
  std::vector<std::string> rows;
  std::vector<int64_t> watermarks;
  // Watermarks and idle markers in order, each with the rows before it.
  std::vector<std::string> events;

 private:
  Schema schema_;
};

const Schema kInput({{"k", FieldType::kString}, {"ts", FieldType::kTimestamp}, {"v", FieldType::kInt}});
const Schema kOutput({{"k", FieldType::kString},
                      {"window_start", FieldType::kTimestamp},
                      {"window_end", FieldType::kTimestamp},
                      {"n", FieldType::kInt},
                      {"hi", FieldType::kInt}});

proto::WindowSpec Spec(const std::string& kind, int64_t a, int64_t b, int64_t lateness) {
  proto::WindowSpec spec;
  spec.add_key_by("k");
  spec.set_kind(kind);
  if (kind == "session") {
    spec.set_gap_ms(a);
  } else {
    spec.set_size_ms(a);
    spec.set_slide_ms(b);
  }
  spec.set_allowed_lateness_ms(lateness);
  spec.set_time_field_index(1);
  auto* n = spec.add_aggregates();
  n->set_name("n");
  n->set_func("count");
  auto* hi = spec.add_aggregates();
  hi->set_name("hi");
  hi->set_func("max");
  hi->set_arg("v");
  return spec;
}

class WindowOperatorTest : public ::testing::Test {
 protected:
  void Start(const proto::WindowSpec& spec) {
    op_ = std::make_unique<WindowOperator>(counters_, kInput, spec);
    op_->set_output(&out_);
    op_->set_late_output(&late_);
    OperatorContext ctx;
    ctx.state_dir = state_dir_ = (std::filesystem::temp_directory_path() /
                                  ("vstream-window-" + std::to_string(::getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                                     .string();
    ASSERT_TRUE(op_->Open(ctx).ok());
  }
  // The operator closes its backend first; its directory goes with it.
  void TearDown() override {
    op_.reset();
    if (!state_dir_.empty()) std::filesystem::remove_all(state_dir_);
  }
  void Records(std::vector<std::tuple<std::string, int64_t, int64_t>> rows) {
    RowBatch batch(3);
    for (auto& [k, ts, v] : rows) {
      Row& r = batch.Append();
      r[0].SetString(k);
      r[1].SetInt(ts);
      r[2].SetInt(v);
    }
    op_->Push(batch);
    ASSERT_TRUE(op_->status().ok()) << op_->status();
  }

  OperatorCounters counters_;
  Collect out_{kOutput};
  Collect late_{kInput};
  std::unique_ptr<WindowOperator> op_;
  std::string state_dir_;
};

TEST_F(WindowOperatorTest, TumblingFiresWhenTheWatermarkPassesTheEnd) {
  Start(Spec("tumbling", 10, 0, 0));
  Records({{"a", 1, 5}, {"a", 9, 7}, {"b", 3, 1}, {"a", 12, 2}});
  op_->PushWatermark(8);
  EXPECT_TRUE(out_.rows.empty()) << "window [0,10) is still open at watermark 8";
  op_->PushWatermark(9);
  // Timers due at one time fire in key-group order, not key order: the keys
  // of one window come out in any order.
  EXPECT_THAT(out_.rows, ::testing::UnorderedElementsAre("a,0,10,2,7", "b,0,10,1,1"));
  EXPECT_EQ(out_.watermarks, (std::vector<int64_t>{8, 9}));
  Records({{"a", 5, 100}});  // window [0,10) has fired: late
  EXPECT_EQ(late_.rows, (std::vector<std::string>{"a,5,100"}));
  EXPECT_EQ(counters_.late_records, 1);
  op_->PushWatermark(kMaxWatermark);
  EXPECT_EQ(out_.rows.back(), "a,10,20,1,2");
}

TEST_F(WindowOperatorTest, AllowedLatenessEmitsCorrectionsThenDropsState) {
  Start(Spec("tumbling", 10, 0, 5));
  Records({{"a", 1, 5}});
  op_->PushWatermark(9);
  Records({{"a", 2, 8}});  // late, within lateness: corrected result now
  EXPECT_EQ(out_.rows, (std::vector<std::string>{"a,0,10,1,5", "a,0,10,2,8"}));
  op_->PushWatermark(14);  // 9 + 5: cleaned up
  Records({{"a", 3, 9}});
  EXPECT_EQ(late_.rows.size(), 1u);
  EXPECT_EQ(out_.rows.size(), 2u);
}

TEST_F(WindowOperatorTest, SlidingMergesPanesIntoEachWindow) {
  Start(Spec("sliding", 10, 5, 0));
  Records({{"a", 1, 1}, {"a", 6, 6}, {"a", 11, 11}});
  op_->PushWatermark(kMaxWatermark);
  // Windows [-5,5) [0,10) [5,15) [10,20).
  EXPECT_EQ(out_.rows, (std::vector<std::string>{"a,-5,5,1,1", "a,0,10,2,6", "a,5,15,2,11", "a,10,20,1,11"}));
}

// The keys with state in the window's state `name`.
std::vector<std::string> StateKeys(KeyedStateBackend& backend, const std::string& name) {
  ValueStateDescriptor descriptor;
  descriptor.name = name;
  descriptor.write_back_cache = true;
  auto state = backend.GetValueState(descriptor);
  EXPECT_TRUE(state.ok()) << state.status();
  std::vector<std::string> keys;
  if (!state.ok()) return keys;
  EXPECT_TRUE(backend
                  .ForEachKey((*state)->id(), {0, 127},
                              [&](const StateKeyView& k) { keys.emplace_back(k.key); })
                  .ok());
  return keys;
}

// A key's panes are one entry: a fired window's corrections within the
// allowed lateness read it, and the cleanups drop its panes until none is
// left. A pane that only a late record opened, in windows that have all
// fired, is dropped by the cleanup it adds.
TEST_F(WindowOperatorTest, SlidingPanesAreDroppedOnceNoWindowNeedsThem) {
  Start(Spec("sliding", 10, 5, 5));
  Records({{"a", 1, 1}});
  op_->PushWatermark(9);  // [-5,5) and [0,10) fire
  EXPECT_EQ(out_.rows, (std::vector<std::string>{"a,-5,5,1,1", "a,0,10,1,1"}));
  Records({{"a", 6, 6}});  // [0,10) within its lateness: corrected; [5,15) still open
  Records({{"b", 2, 3}});  // b's first pane: only [0,10) takes it, as a correction
  EXPECT_EQ(out_.rows, (std::vector<std::string>{"a,-5,5,1,1", "a,0,10,1,1", "a,0,10,2,6", "b,0,10,1,3"}));
  EXPECT_EQ(StateKeys(*op_->keyed_state(), "window_panes").size(), 2u);
  op_->PushWatermark(14);  // [0,10) cleaned up (panes before 5 go: b's entry), [5,15) fires
  EXPECT_EQ(out_.rows.back(), "a,5,15,1,6");
  EXPECT_EQ(StateKeys(*op_->keyed_state(), "window_panes").size(), 1u);
  op_->PushWatermark(19);  // [5,15) cleaned up: a's last pane goes
  EXPECT_TRUE(StateKeys(*op_->keyed_state(), "window_panes").empty());
  EXPECT_EQ(out_.rows.size(), 5u);
  EXPECT_TRUE(late_.rows.empty());
}

// Records in any order of their panes (the pane of an earlier one comes
// after a later one's in the entry): each window merges exactly its panes.
TEST_F(WindowOperatorTest, SlidingPanesOfOneKeyInAnyOrder) {
  Start(Spec("sliding", 6, 2, 0));
  Records({{"a", 5, 5}, {"a", 1, 1}, {"a", 3, 3}, {"a", 4, 4}, {"a", 0, 7}});
  op_->PushWatermark(kMaxWatermark);
  // Panes [0,2): 2 records, hi 7; [2,4): 1, hi 3; [4,6): 2, hi 5.
  EXPECT_EQ(out_.rows, (std::vector<std::string>{"a,-4,2,2,7", "a,-2,4,3,7", "a,0,6,5,7", "a,2,8,3,5",
                                                 "a,4,10,2,5"}));
  EXPECT_TRUE(StateKeys(*op_->keyed_state(), "window_panes").empty());
}

// A batch's records of one key and window (or pane) are added to an
// accumulator of their own and merged into the state once (PushCombined):
// the results, the late records and the state are those of a record at a
// time, for every aggregate that allows it, with ties of first and last.
TEST(WindowCombineTest, ABatchAtOnceGivesWhatARecordAtATimeGives) {
  for (const std::string kind : {"tumbling", "sliding"}) {
    SCOPED_TRACE(kind);
    proto::WindowSpec spec = Spec(kind, 10, kind == "sliding" ? 5 : 0, 0);
    spec.clear_aggregates();
    for (const std::string func : {"count", "sum", "min", "max", "first", "last", "avg"}) {
      auto* call = spec.add_aggregates();
      call->set_name(func);
      call->set_func(func);
      if (func != "count") call->set_arg("v");
    }
    Schema out_schema({{"k", FieldType::kString}, {"window_start", FieldType::kTimestamp},
                       {"window_end", FieldType::kTimestamp}});
    for (const std::string func : {"count", "sum", "min", "max", "first", "last"}) {
      out_schema.Add(func, FieldType::kInt);
    }
    out_schema.Add("avg", FieldType::kDouble);
    // Records over 3 keys and 60 ms, a few times each (ties for first and
    // last), with an event time missing and records behind the watermark.
    std::vector<std::tuple<std::string, int64_t, int64_t, bool>> records;  // k, ts, v, ts null
    uint64_t x = 12345;
    for (int i = 0; i < 600; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const int64_t ts = static_cast<int64_t>((x >> 33) % 20) + (i / 100) * 8;
      records.emplace_back(std::string(1, static_cast<char>('a' + (x >> 20) % 3)), ts,
                           static_cast<int64_t>((x >> 40) % 1000) - 500, i % 97 == 5);
    }
    std::vector<std::vector<std::string>> outs, lates;
    for (const size_t batch_size : {size_t{1}, size_t{64}}) {
      OperatorCounters counters;
      Collect out(out_schema), late(kInput);
      const std::string dir = (std::filesystem::temp_directory_path() /
                               ("vstream-window-combine-" + std::to_string(::getpid()) + "-" + kind + "-" +
                                std::to_string(batch_size)))
                                  .string();
      {
        WindowOperator op(counters, kInput, spec);
        op.set_output(&out);
        op.set_late_output(&late);
        OperatorContext ctx;
        ctx.state_dir = dir;
        ASSERT_TRUE(op.Open(ctx).ok());
        RowBatch batch(3);
        for (size_t i = 0; i < records.size(); ++i) {
          const auto& [k, ts, v, null_ts] = records[i];
          Row& r = batch.Append();
          r[0].SetString(k);
          r[1].SetInt(ts);
          if (null_ts) r[1].SetNull();
          r[2].SetInt(v);
          if (i % 13 == 7) r[2].SetNull();  // count(*) counts it, the others skip it
          // Watermarks in between, after the records before them, so later
          // records are late for windows that fired.
          const bool watermark = i % 100 == 99;
          if (batch.size() == batch_size || watermark || i + 1 == records.size()) {
            op.Push(batch);
            batch.Clear();
          }
          if (watermark) op.PushWatermark(static_cast<int64_t>(i / 100) * 8 + 14);
          ASSERT_TRUE(op.status().ok()) << op.status();
        }
        op.PushWatermark(kMaxWatermark);
        ASSERT_TRUE(op.status().ok()) << op.status();
        if (batch_size == 1) {
          EXPECT_EQ(op.records_combined(), 0);
        } else {
          EXPECT_GT(op.records_combined(), 300) << "most records share a key and window with another in their batch";
        }
      }
      std::filesystem::remove_all(dir);
      outs.push_back(out.rows);
      lates.push_back(late.rows);
    }
    EXPECT_GT(outs[0].size(), 15u);
    EXPECT_GT(std::count_if(lates[0].begin(), lates[0].end(),
                            [](const std::string& r) { return r.find(",null,") == std::string::npos; }),
              0)
        << "records behind the watermark";
    EXPECT_GT(lates[0].size(), 6u) << "and those without a time";
    EXPECT_EQ(outs[1], outs[0]);
    EXPECT_EQ(lates[1], lates[0]);
  }
}

TEST_F(WindowOperatorTest, SessionsMergeWhenARecordBridgesTheGap) {
  Start(Spec("session", 10, 0, 0));
  Records({{"a", 0, 1}, {"a", 25, 2}});  // two sessions: [0,10) and [25,35)
  Records({{"a", 12, 3}});               // [12,22) touches neither
  Records({{"a", 10, 4}});               // [10,20) touches [0,10) and [12,22): one session [0,22)
  op_->PushWatermark(kMaxWatermark);
  EXPECT_EQ(out_.rows, (std::vector<std::string>{"a,0,22,3,4", "a,25,35,1,2"}));
}

// Snapshots of one operator subtask into checkpoint storage under a
// scratch directory, and restores of them, as a task makes them.
class Checkpoints {
 public:
  explicit Checkpoints(const std::string& name)
      : dir_((std::filesystem::temp_directory_path() / ("vstream-window-" + name + "-" + std::to_string(::getpid())))
                 .string()) {
    std::filesystem::remove_all(dir_);
    auto storage = CheckpointStorage::Open("file://" + dir_ + "/storage");
    EXPECT_TRUE(storage.ok()) << storage.status();
    if (storage.ok()) shared_ = std::move(*storage);
    snap_ = std::make_unique<IncrementalSnapshotter>(shared_, "window-0");
  }
  ~Checkpoints() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  OperatorContext Fresh() const {
    OperatorContext ctx;
    ctx.state_dir = dir_ + "/op";
    return ctx;
  }
  // Snapshot `id` of `state`; *timer_records (if given): how many records
  // of its CACHE-DELTA are timers.
  proto::KeyedStateHandle Take(KeyedStateBackend& state, int64_t id, size_t* timer_records = nullptr) {
    auto local = TakeLocalSnapshot(state, id, dir_ + "/local-" + std::to_string(id), kAll);
    EXPECT_TRUE(local.ok()) << local.status();
    if (!local.ok()) return {};
    if (timer_records != nullptr) {
      // Timers are in the delta's synchronous part (the cache's entries
      // come later): counted on a copy of it, as Upload finishes the delta.
      CacheDelta copy = local->cache_delta;
      const std::string delta = std::move(copy).Finish();
      *timer_records = 0;
      EXPECT_TRUE(CacheDelta::Parse(delta, [&](std::string_view cf, std::string_view, const std::string_view*) {
                    if (cf.starts_with(kTimerStatePrefix)) ++*timer_records;
                    return absl::OkStatus();
                  }).ok());
    }
    auto uploaded = snap_->Upload(*local, "chk-" + std::to_string(id) + "/window-0");
    EXPECT_TRUE(uploaded.ok()) << uploaded.status();
    return uploaded.ok() ? *uploaded : proto::KeyedStateHandle();
  }
  OperatorContext Restore(const proto::KeyedStateHandle& handle, const std::string& name) {
    OperatorContext ctx;
    ctx.state_dir = dir_ + "/" + name;
    ctx.restored = true;
    EXPECT_TRUE(RestoreKeyedState(*shared_, handle, kAll, ctx.state_dir).ok());
    return ctx;
  }

 private:
  static constexpr KeyGroupRange kAll{0, 127};
  std::string dir_;
  std::shared_ptr<CheckpointStorage> shared_;
  std::unique_ptr<IncrementalSnapshotter> snap_;
};

RowBatch Rows(int keys, std::initializer_list<int64_t> times) {
  RowBatch batch(3);
  for (int k = 0; k < keys; ++k) {
    for (int64_t ts : times) {
      Row& r = batch.Append();
      r[0].SetString("k" + std::to_string(k));
      r[1].SetInt(ts);
      r[2].SetInt(k);
    }
  }
  return batch;
}

// "k<i>,<start>,<end>,1,<i>" for every key i below `keys`.
std::vector<std::string> OnePerKey(int keys, int64_t start, int64_t end) {
  std::vector<std::string> rows;
  for (int k = 0; k < keys; ++k) {
    rows.push_back("k" + std::to_string(k) + "," + std::to_string(start) + "," + std::to_string(end) + ",1," +
                   std::to_string(k));
  }
  return rows;
}

// A snapshot of a tumbling window without allowed lateness leaves its
// timers out (they follow from the window state); a restore adds them back,
// so every window open at the snapshot fires once, and one that fired
// before it does not fire again. With allowed lateness the timers are in
// the snapshot. Either restores into a window whose allowed lateness
// changed meanwhile.
TEST(WindowRestoreTest, RestoredTumblingWindowsFireOnceWithoutSnapshottedTimers) {
  for (const auto& [lateness, restored_lateness] :
       std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {5, 5}, {0, 5}, {5, 0}}) {
    SCOPED_TRACE(::testing::Message() << "lateness " << lateness << ", restored with " << restored_lateness);
    Checkpoints checkpoints("restore-" + std::to_string(lateness) + "-" + std::to_string(restored_lateness));
    proto::KeyedStateHandle handle;
    size_t timer_records = 0;
    {
      OperatorCounters counters;
      WindowOperator op(counters, kInput, Spec("tumbling", 10, 0, lateness));
      Collect out(kOutput);
      op.set_output(&out);
      ASSERT_TRUE(op.Open(checkpoints.Fresh()).ok());
      RowBatch batch = Rows(50, {1, 12, 25});
      op.Push(batch);
      op.PushWatermark(9);  // [0,10) fires before the snapshot
      ASSERT_TRUE(op.status().ok()) << op.status();
      ASSERT_EQ(out.rows.size(), 50u);
      handle = checkpoints.Take(*op.keyed_state(), 1, &timer_records);
    }
    // Without lateness: no timers in the snapshot. With it: the 100 open
    // windows' fire timers and the 50 fired windows' cleanup timers.
    EXPECT_EQ(timer_records, lateness == 0 ? 0u : 150u);
    OperatorCounters counters;
    WindowOperator op(counters, kInput, Spec("tumbling", 10, 0, restored_lateness));
    Collect out(kOutput);
    op.set_output(&out);
    ASSERT_TRUE(op.Open(checkpoints.Restore(handle, "restored")).ok());
    op.PushWatermark(19);
    ASSERT_TRUE(op.status().ok()) << op.status();
    EXPECT_THAT(out.rows, ::testing::UnorderedElementsAreArray(OnePerKey(50, 10, 20)))
        << "[10,20) fires once per key; [0,10) not again";
    op.PushWatermark(kMaxWatermark);
    ASSERT_EQ(out.rows.size(), 100u) << "[20,30) fires once per key";
    EXPECT_THAT(std::vector<std::string>(out.rows.begin() + 50, out.rows.end()),
                ::testing::UnorderedElementsAreArray(OnePerKey(50, 20, 30)));
  }
}

// Many windows due at one watermark fire kFireSlice at a time: the
// watermark goes on after the last, records in between are late for the
// windows being fired, a later watermark is held with it, and a snapshot
// between two slices restores into exactly the windows not fired yet.
TEST(WindowRestoreTest, ManyDueWindowsFireInSlicesAndASnapshotBetweenThemMissesNone) {
  constexpr int kKeys = 5000;
  constexpr size_t kSlice = WindowOperator::kFireSlice;
  static_assert(kKeys > 3 * kSlice);
  Checkpoints checkpoints("slices");
  OperatorCounters counters;
  WindowOperator op(counters, kInput, Spec("tumbling", 10, 0, 0));
  Collect out(kOutput);
  Collect late(kInput);
  op.set_output(&out);
  op.set_late_output(&late);
  ASSERT_TRUE(op.Open(checkpoints.Fresh()).ok());
  RowBatch batch = Rows(kKeys, {1, 12});
  op.Push(batch);
  op.PushWatermark(9);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_EQ(out.rows.size(), kSlice);
  EXPECT_TRUE(op.has_pending_work());
  EXPECT_TRUE(out.watermarks.empty()) << "held until the last window fired";
  RowBatch more = Rows(1, {5, 15});  // [0,10) is late for every key now; [10,20) is not
  op.Push(more);
  EXPECT_EQ(late.rows, (std::vector<std::string>{"k0,5,0"}));
  op.DoPendingWork();
  EXPECT_EQ(out.rows.size(), 2 * kSlice);
  const proto::KeyedStateHandle handle = checkpoints.Take(*op.keyed_state(), 1);
  std::vector<std::string> before(out.rows.begin(), out.rows.end());
  // Held with the first, which it replaces; [10,20) is due at 19 too.
  op.PushWatermark(19);
  EXPECT_EQ(out.rows.size(), 2 * kSlice) << "a watermark during a fire leaves the slices to the task's pacing";
  int calls = 0;
  while (op.has_pending_work() && calls < 100) {
    op.DoPendingWork();
    ++calls;
  }
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_EQ(out.watermarks, (std::vector<int64_t>{19}));
  ASSERT_EQ(out.rows.size(), 2u * kKeys) << "every window of [0,10) and [10,20) before the watermark";
  EXPECT_THAT(std::vector<std::string>(out.rows.begin(), out.rows.begin() + kKeys),
              ::testing::UnorderedElementsAreArray(OnePerKey(kKeys, 0, 10)));
  std::vector<std::string> second = OnePerKey(kKeys, 10, 20);
  second[0] = "k0,10,20,2,0";  // k0 had a second record at 15
  EXPECT_THAT(std::vector<std::string>(out.rows.begin() + kKeys, out.rows.end()),
              ::testing::UnorderedElementsAreArray(second));

  // An idle marker while a watermark is held: the rest fires first, then
  // the watermark, then the idle marker.
  RowBatch third = Rows(kKeys, {25});
  op.Push(third);
  op.PushWatermark(29);
  EXPECT_TRUE(op.has_pending_work());
  op.PushIdle();
  EXPECT_FALSE(op.has_pending_work());
  EXPECT_EQ(out.events, (std::vector<std::string>{"W19@10000", "W29@15000", "I@15000"}));

  // Restored from between the slices: the windows of [0,10) not fired at
  // the snapshot fire, and only those.
  OperatorCounters counters2;
  WindowOperator restored(counters2, kInput, Spec("tumbling", 10, 0, 0));
  Collect out2(kOutput);
  restored.set_output(&out2);
  ASSERT_TRUE(restored.Open(checkpoints.Restore(handle, "restored")).ok());
  restored.PushWatermark(9);
  while (restored.has_pending_work()) restored.DoPendingWork();
  ASSERT_TRUE(restored.status().ok()) << restored.status();
  std::vector<std::string> all = before;
  all.insert(all.end(), out2.rows.begin(), out2.rows.end());
  EXPECT_THAT(all, ::testing::UnorderedElementsAreArray(OnePerKey(kKeys, 0, 10)));
  // The end of input fires the rest at once.
  restored.PushWatermark(kMaxWatermark);
  EXPECT_FALSE(restored.has_pending_work());
  EXPECT_EQ(out2.watermarks.back(), kMaxWatermark);
}

// The watermark is not in a snapshot: until the first one after a restore,
// a new pane gets timers for all its windows, also those another pane of
// the key is in (whose timers may have fired before the snapshot), so a
// record for a fired window within its allowed lateness still corrects it.
TEST(WindowRestoreTest, ANewPaneAfterARestoreCorrectsAWindowThatHadFired) {
  Checkpoints checkpoints("restored-pane");
  const proto::WindowSpec spec = Spec("sliding", 10, 5, 10);
  proto::KeyedStateHandle handle;
  {
    OperatorCounters counters;
    WindowOperator op(counters, kInput, spec);
    Collect out(kOutput);
    op.set_output(&out);
    ASSERT_TRUE(op.Open(checkpoints.Fresh()).ok());
    RowBatch batch = Rows(1, {1});
    op.Push(batch);
    op.PushWatermark(9);  // [-5,5) and [0,10) fire, kept for their lateness
    ASSERT_EQ(out.rows, (std::vector<std::string>{"k0,-5,5,1,0", "k0,0,10,1,0"}));
    handle = checkpoints.Take(*op.keyed_state(), 1);
  }
  OperatorCounters counters;
  WindowOperator op(counters, kInput, spec);
  Collect out(kOutput);
  op.set_output(&out);
  ASSERT_TRUE(op.Open(checkpoints.Restore(handle, "restored")).ok());
  RowBatch batch = Rows(1, {6});
  op.Push(batch);
  op.PushWatermark(14);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_THAT(out.rows, ::testing::ElementsAre("k0,0,10,2,0", "k0,5,15,1,0"));
  op.PushWatermark(kMaxWatermark);
  EXPECT_EQ(out.rows.size(), 2u);
  EXPECT_TRUE(StateKeys(*op.keyed_state(), "window_panes").empty());
}

// A sliding window's snapshot from before per-key panes (an entry per key
// and pane in state "window", and its timers) restores: the panes move into
// one entry per key, and every window fires as it would have.
TEST(WindowRestoreTest, ASlidingWindowsSnapshotOfAnEntryPerPaneRestores) {
  Checkpoints checkpoints("old-panes");
  const proto::WindowSpec spec = Spec("sliding", 10, 5, 0);
  proto::KeyedStateHandle handle;
  {
    OperatorContext ctx = checkpoints.Fresh();
    std::unique_ptr<KeyedStateBackend> backend;
    StateId state = 0;
    ASSERT_TRUE(OpenKeyedValueState(ctx, "window", &backend, &state).ok());
    auto timers = TimerQueue::Create(*backend, "window_timers");
    ASSERT_TRUE(timers.ok()) << timers.status();
    std::vector<proto::AggregateCall> calls(spec.aggregates().begin(), spec.aggregates().end());
    auto accs = AccumulatorSet::Create(calls, kInput);
    ASSERT_TRUE(accs.ok()) << accs.status();
    // As that layout wrote them: [key][pane start] -> accumulator; a timer
    // [key group][key][window start][kind] at each window's end - 1.
    RowBatch batch(3);
    for (auto [k, ts, v] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
             {"a", 1, 1}, {"a", 6, 6}, {"a", 8, 2}, {"b", 7, 3}}) {
      Row& r = batch.Append();
      r[0].SetString(k);
      r[1].SetInt(ts);
      r[2].SetInt(v);
      std::string key;
      EncodeKey(kInput, r, {0}, &key);
      const int key_group = KeyGroupForHash(HashKeyBytes(key), 128);
      const int64_t pane = ts - ts % 5;
      std::string ns_key = key, acc;
      AppendOrderedTime(pane, &ns_key);
      absl::Status got = backend->Get(state, key_group, ns_key, &acc);
      ASSERT_TRUE(got.ok() || absl::IsNotFound(got)) << got;
      (*accs)->Add(r, ts, &acc);
      ASSERT_TRUE(backend->Put(state, key_group, ns_key, acc).ok());
      for (int64_t start : {pane - 5, pane}) {
        std::string payload;
        AppendKeyGroupBytes(key_group, &payload);
        payload += key;
        AppendOrderedTime(start, &payload);
        payload.push_back(0);  // fire
        ASSERT_TRUE((*timers)->Add(start + 9, payload).ok());
      }
    }
    handle = checkpoints.Take(*backend, 1);
  }
  OperatorCounters counters;
  WindowOperator op(counters, kInput, spec);
  Collect out(kOutput);
  op.set_output(&out);
  ASSERT_TRUE(op.Open(checkpoints.Restore(handle, "restored")).ok());
  EXPECT_TRUE(StateKeys(*op.keyed_state(), "window").empty()) << "moved out of the old state";
  EXPECT_EQ(StateKeys(*op.keyed_state(), "window_panes").size(), 2u);
  op.PushWatermark(kMaxWatermark);
  ASSERT_TRUE(op.status().ok()) << op.status();
  EXPECT_THAT(out.rows, ::testing::UnorderedElementsAre("a,-5,5,1,1", "a,0,10,3,6", "a,5,15,2,6", "b,0,10,1,3",
                                                        "b,5,15,1,3"));
  EXPECT_TRUE(StateKeys(*op.keyed_state(), "window_panes").empty());
}

}  // namespace
}  // namespace vstream
