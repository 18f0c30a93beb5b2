#include "runtime/operators/window_operator.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/network/buffer.h"
#include "state/cache_delta.h"
#include "state/checkpoint_storage.h"
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
  void PushWatermark(int64_t wm) override { watermarks.push_back(wm); }
  std::vector<std::string> rows;
  std::vector<int64_t> watermarks;

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
    ctx.state_dir = (std::filesystem::temp_directory_path() /
                     ("vstream-window-" + std::to_string(::getpid()) + "-" +
                      ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                        .string();
    ASSERT_TRUE(op_->Open(ctx).ok());
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

TEST_F(WindowOperatorTest, SessionsMergeWhenARecordBridgesTheGap) {
  Start(Spec("session", 10, 0, 0));
  Records({{"a", 0, 1}, {"a", 25, 2}});  // two sessions: [0,10) and [25,35)
  Records({{"a", 12, 3}});               // [12,22) touches neither
  Records({{"a", 10, 4}});               // [10,20) touches [0,10) and [12,22): one session [0,22)
  op_->PushWatermark(kMaxWatermark);
  EXPECT_EQ(out_.rows, (std::vector<std::string>{"a,0,22,3,4", "a,25,35,1,2"}));
}

// A snapshot of a tumbling window without allowed lateness leaves its
// timers out (they follow from the window state); a restore adds them back,
// so every window open at the snapshot fires once, and one that fired
// before it does not fire again. With allowed lateness the timers are in
// the snapshot.
TEST_F(WindowOperatorTest, RestoredTumblingWindowsFireOnceWithoutSnapshottedTimers) {
  const KeyGroupRange all{0, 127};
  for (int64_t lateness : {0, 5}) {
    SCOPED_TRACE(lateness);
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("vstream-window-restore-" + std::to_string(::getpid()) + "-" + std::to_string(lateness)))
                                .string();
    std::filesystem::remove_all(dir);
    auto storage = CheckpointStorage::Open("file://" + dir + "/storage");
    ASSERT_TRUE(storage.ok()) << storage.status();
    std::shared_ptr<CheckpointStorage> shared = std::move(*storage);
    OperatorContext ctx;
    ctx.state_dir = dir + "/op";
    proto::KeyedStateHandle handle;
    size_t timer_records = 0;
    {
      OperatorCounters counters;
      WindowOperator op(counters, kInput, Spec("tumbling", 10, 0, lateness));
      Collect out(kOutput);
      op.set_output(&out);
      ASSERT_TRUE(op.Open(ctx).ok());
      RowBatch batch(3);
      for (int k = 0; k < 50; ++k) {
        for (int64_t ts : {1, 12, 25}) {
          Row& r = batch.Append();
          r[0].SetString("k" + std::to_string(k));
          r[1].SetInt(ts);
          r[2].SetInt(k);
        }
      }
      op.Push(batch);
      op.PushWatermark(9);  // [0,10) fires before the snapshot
      ASSERT_TRUE(op.status().ok()) << op.status();
      ASSERT_EQ(out.rows.size(), 50u);
      auto local = TakeLocalSnapshot(*op.keyed_state(), 1, dir + "/local", all);
      ASSERT_TRUE(local.ok()) << local.status();
      const std::string delta = local->FinishCacheDelta();
      ASSERT_TRUE(CacheDelta::Parse(delta, [&](std::string_view cf, std::string_view, const std::string_view*) {
                    if (cf.starts_with(kTimerStatePrefix)) ++timer_records;
                    return absl::OkStatus();
                  }).ok());
      // FinishCacheDelta spent the delta: take the snapshot again to upload.
      auto again = TakeLocalSnapshot(*op.keyed_state(), 2, dir + "/local2", all);
      ASSERT_TRUE(again.ok()) << again.status();
      IncrementalSnapshotter snap(shared, "window-0");
      auto uploaded = snap.Upload(*again, "chk-2/window-0");
      ASSERT_TRUE(uploaded.ok()) << uploaded.status();
      handle = *uploaded;
    }
    // Without lateness: no timers in the snapshot. With it: the 100 open
    // windows' fire timers and the 50 fired windows' cleanup timers.
    EXPECT_EQ(timer_records, lateness == 0 ? 0u : 150u);
    ASSERT_TRUE(RestoreKeyedState(*shared, handle, all, dir + "/restored").ok());
    OperatorContext ctx2 = ctx;
    ctx2.state_dir = dir + "/restored";
    ctx2.restored = true;
    OperatorCounters counters;
    WindowOperator op(counters, kInput, Spec("tumbling", 10, 0, lateness));
    Collect out(kOutput);
    op.set_output(&out);
    ASSERT_TRUE(op.Open(ctx2).ok());
    op.PushWatermark(19);
    ASSERT_TRUE(op.status().ok()) << op.status();
    std::vector<std::string> want;
    for (int k = 0; k < 50; ++k) want.push_back("k" + std::to_string(k) + ",10,20,1," + std::to_string(k));
    EXPECT_THAT(out.rows, ::testing::UnorderedElementsAreArray(want)) << "[10,20) fires once per key; [0,10) not again";
    op.PushWatermark(kMaxWatermark);
    ASSERT_EQ(out.rows.size(), 100u) << "[20,30) fires once per key";
    want.clear();
    for (int k = 0; k < 50; ++k) want.push_back("k" + std::to_string(k) + ",20,30,1," + std::to_string(k));
    EXPECT_THAT(std::vector<std::string>(out.rows.begin() + 50, out.rows.end()), ::testing::UnorderedElementsAreArray(want));
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace vstream
