#include "runtime/operators/process_operator.h"

#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/dead_letter.h"
#include "runtime/network/buffer.h"
#include "runtime/operators/process_function_registry.h"
#include "runtime/row_codec.h"
#include "state/key_groups.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

// Logs rows and watermarks in the order they arrive: "row:a,count,1,5",
// "wm:30".
class Collect : public Output {
 public:
  explicit Collect(Schema schema) : schema_(std::move(schema)) {}
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      std::string line;
      for (size_t f = 0; f < schema_.size(); ++f) {
        if (f) line += ",";
        line += DatumToString(batch[i][f], schema_.field(f).type);
      }
      rows.push_back(line);
      log.push_back("row:" + line);
    }
  }
  void Finish() override { finished = true; }
  void PushWatermark(int64_t wm) override { log.push_back(absl::StrCat("wm:", wm)); }
  std::vector<std::string> rows;
  std::vector<std::string> log;
  bool finished = false;

 private:
  Schema schema_;
};

// Input: key, event time, an action for the test function and its argument.
const Schema kInput(
    {{"k", FieldType::kString}, {"ts", FieldType::kTimestamp}, {"action", FieldType::kString}, {"t", FieldType::kInt}});
const Schema kOutput(
    {{"k", FieldType::kString}, {"what", FieldType::kString}, {"n", FieldType::kInt}, {"at", FieldType::kInt}});

// A function driven by its records' `action`:
//   count            count the key's records in a ValueState; emit k,count,N,ts
//   event/proc       register an event-/processing-time timer at t
//   del_event/del_proc  delete it
//   reject           send the record to the dead letters
// On a timer it emits k,event|proc,<key's count>,time; a timer at 50 also
// deletes the key's timer at 60, and one at 70 registers one at 75.
class ScriptedFunction : public KeyedProcessFunction {
 public:
  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const override {
    if (input.schema.DebugString() != kInput.DebugString()) return absl::InvalidArgumentError("wrong input");
    return ProcessOutputSchema{kOutput, -1};
  }
  absl::Status Open(ProcessSetup& setup) override {
    ValueStateDescriptor d;
    d.name = "count";
    ASSIGN_OR_RETURN(count_, setup.GetValueState(d));
    ttl_ms = count_->ttl_ms();
    return absl::OkStatus();
  }
  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    const std::string& action = in[2].s;
    const int64_t t = in[3].i;
    if (action == "count") {
      ASSIGN_OR_RETURN(int64_t n, Count());
      RETURN_IF_ERROR(count_->Put("", std::to_string(n + 1)));
      Row& out = ctx.Emit();
      out[0] = ctx.key_row()[0];
      out[1].SetString("count");
      out[2].SetInt(n + 1);
      if (ctx.has_timestamp()) out[3].SetInt(ctx.timestamp());
      return absl::OkStatus();
    }
    if (action == "event") return ctx.RegisterEventTimeTimer(t);
    if (action == "del_event") return ctx.DeleteEventTimeTimer(t);
    if (action == "proc") return ctx.RegisterProcessingTimeTimer(t);
    if (action == "del_proc") return ctx.DeleteProcessingTimeTimer(t);
    if (action == "reject") {
      ctx.EmitDeadLetter(in, "rejected on purpose");
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat("unknown action ", action));
  }
  absl::Status OnTimer(int64_t time, TimeDomain domain, ProcessContext& ctx) override {
    if (domain == TimeDomain::kEventTime && (!ctx.has_timestamp() || ctx.timestamp() != time)) {
      return absl::InternalError("an event-time timer's timestamp is its time");
    }
    if (domain == TimeDomain::kEventTime && ctx.current_watermark() < time) {
      return absl::InternalError("an event-time timer fired before the watermark reached it");
    }
    ASSIGN_OR_RETURN(int64_t n, Count());
    Row& out = ctx.Emit();
    out[0] = ctx.key_row()[0];
    out[1].SetString(domain == TimeDomain::kEventTime ? "event" : "proc");
    out[2].SetInt(n);
    out[3].SetInt(time);
    if (time == 50) RETURN_IF_ERROR(ctx.DeleteEventTimeTimer(60));
    if (time == 70) RETURN_IF_ERROR(ctx.RegisterEventTimeTimer(75));
    return absl::OkStatus();
  }

  int64_t ttl_ms = -1;

 private:
  absl::StatusOr<int64_t> Count() {
    ASSIGN_OR_RETURN(StateLookup r, count_->Get("", &buf_));
    return r == StateLookup::kFound ? std::stoll(buf_) : 0;
  }
  ValueState* count_ = nullptr;
  std::string buf_;
};

std::string TempPath(const std::string& name) {
  auto p = fs::temp_directory_path() / absl::StrCat("vstream-process-", ::getpid(), "-",
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                                    "-", name);
  fs::remove_all(p);
  return p.string();
}

proto::ProcessSpec Spec(const std::string& function) {
  proto::ProcessSpec spec;
  spec.set_function(function);
  spec.add_key_by("k");
  spec.set_time_field_index(1);
  return spec;
}

class ProcessOperatorTest : public ::testing::Test {
 protected:
  void Start(std::unique_ptr<KeyedProcessFunction> fn, int64_t state_ttl_ms = 0, const Schema& output = kOutput,
             const proto::ProcessSpec& spec = Spec("scripted")) {
    out_ = std::make_unique<Collect>(output);
    op_ = std::make_unique<ProcessOperator>(counters_, kInput, output, spec, std::move(fn));
    op_->set_output(out_.get());
    op_->set_dead_letter_output(&dead_);
    OperatorContext ctx;
    ctx.job_id = "job";
    ctx.vertex_name = "proc";
    ctx.state_dir = TempPath("state");
    ctx.data_dir = TempPath("data");
    dirs_ = {ctx.state_dir, ctx.data_dir};
    ctx.state_ttl_ms = state_ttl_ms;
    ctx.clock = &clock_;
    ctx.parallelism = parallelism_;
    ctx.subtask_index = subtask_;
    absl::Status s = op_->Open(ctx);
    ASSERT_TRUE(s.ok()) << s;
  }
  ScriptedFunction* StartScripted(int64_t state_ttl_ms = 0) {
    auto fn = std::make_unique<ScriptedFunction>();
    ScriptedFunction* raw = fn.get();
    Start(std::move(fn), state_ttl_ms);
    return raw;
  }
  // Rows of (key, ts, action, t); ts < 0: a null event time.
  void Records(const std::vector<std::tuple<std::string, int64_t, std::string, int64_t>>& rows) {
    RowBatch batch(kInput.size());
    for (const auto& [k, ts, action, t] : rows) {
      Row& r = batch.Append();
      r[0].SetString(k);
      if (ts >= 0) {
        r[1].SetInt(ts);
      } else {
        r[1].SetNull();
      }
      r[2].SetString(action);
      r[3].SetInt(t);
    }
    op_->Push(batch);
    ASSERT_TRUE(op_->status().ok()) << op_->status();
  }
  void Watermark(int64_t wm) {
    op_->PushWatermark(wm);
    ASSERT_TRUE(op_->status().ok()) << op_->status();
  }

  void TearDown() override {
    op_.reset();  // closes RocksDB
    for (const std::string& dir : dirs_) fs::remove_all(dir);
  }

  int parallelism_ = 1;
  int subtask_ = 0;
  std::vector<std::string> dirs_;
  OperatorCounters counters_;
  ManualStateClock clock_{1'000'000};
  std::unique_ptr<Collect> out_;
  Collect dead_{DeadLetterSchema()};
  std::unique_ptr<ProcessOperator> op_;
};

// Over a FORWARD edge planned for a stream partitioned by the key, a record
// of another subtask's key group would mean a wrong plan: the operator fails
// rather than keep the key's state where no restore looks for it, and the
// error names key groups, never the key (a patient identifier).
TEST_F(ProcessOperatorTest, ARecordOfAnotherSubtasksKeyGroupFailsTheOperatorWithoutNamingTheKey) {
  parallelism_ = 2;
  subtask_ = 0;  // key groups 0-63 of 128
  StartScripted();
  std::string mine, theirs;
  int theirs_group = -1;
  for (int i = 0; mine.empty() || theirs.empty(); ++i) {
    const std::string k = absl::StrCat("patient-", i);
    Row row(kInput.size());
    row[0].SetString(k);
    std::string encoded;
    EncodeKey(kInput, row, {0}, &encoded);
    const int group = KeyGroupForHash(HashKeyBytes(encoded), kDefaultMaxParallelism);
    if (group < 64) {
      mine = k;
    } else {
      theirs = k;
      theirs_group = group;
    }
  }
  Records({{mine, 1, "count", 0}});
  RowBatch batch(kInput.size());
  Row& r = batch.Append();
  r[0].SetString(theirs);
  r[1].SetInt(2);
  r[2].SetString("count");
  r[3].SetInt(0);
  op_->Push(batch);
  ASSERT_FALSE(op_->status().ok());
  const std::string message(op_->status().message());
  EXPECT_THAT(message, ::testing::HasSubstr(absl::StrCat("process operator 'proc' subtask 0 (key groups 0-63 of 128) "
                                                         "got a record of key group ",
                                                         theirs_group, ", which subtask 1 owns")));
  EXPECT_THAT(message, ::testing::Not(::testing::HasSubstr(theirs)));
  EXPECT_EQ(out_->rows, (std::vector<std::string>{mine + ",count,1,1"}));  // not counted
}

TEST_F(ProcessOperatorTest, StateIsKeptPerKey) {
  StartScripted();
  Records({{"a", 1, "count", 0}, {"b", 2, "count", 0}, {"a", 3, "count", 0}});
  Records({{"a", 4, "count", 0}, {"c", -1, "count", 0}, {"b", 6, "count", 0}});
  EXPECT_EQ(out_->rows, (std::vector<std::string>{"a,count,1,1", "b,count,1,2", "a,count,2,3", "a,count,3,4",
                                                  "c,count,1,null", "b,count,2,6"}));
  EXPECT_EQ(counters_.records_in, 6);
  EXPECT_EQ(counters_.records_out, 6);
}

TEST_F(ProcessOperatorTest, EventTimersFireOnceInTimeOrderBeforeTheWatermarkGoesOn) {
  StartScripted();
  Records({{"a", 1, "count", 0},
           {"a", 1, "event", 30},
           {"b", 1, "event", 10},
           {"a", 1, "event", 20},
           {"b", 1, "event", 10},  // the same timer again: fires once
           {"c", 1, "event", 25},
           {"c", 1, "event", 25}});
  Watermark(9);
  EXPECT_EQ(out_->log, (std::vector<std::string>{"row:a,count,1,1", "wm:9"}));
  Watermark(19);
  Watermark(19);  // not an advance: ignored
  Watermark(30);
  EXPECT_EQ(out_->log, (std::vector<std::string>{"row:a,count,1,1", "wm:9", "row:b,event,0,10", "wm:19",
                                                 "row:a,event,1,20", "row:c,event,0,25", "row:a,event,1,30", "wm:30"}));
  // A timer at or before the watermark fires with the next one.
  Records({{"b", 1, "event", 5}});
  Watermark(31);
  EXPECT_EQ(out_->log.size(), 10u);
  EXPECT_EQ(out_->log[8], "row:b,event,0,5");
  EXPECT_EQ(out_->log[9], "wm:31");
  Watermark(kMaxWatermark);
  EXPECT_EQ(out_->log.size(), 11u) << "every timer fired exactly once";
}

TEST_F(ProcessOperatorTest, DeletedTimersDoNotFire) {
  StartScripted();
  Records({{"a", 1, "event", 10},
           {"a", 1, "event", 20},
           {"b", 1, "event", 10},
           {"a", 1, "del_event", 10},
           {"b", 1, "del_event", 99}});  // not set: no-op
  // Deleted from within OnTimer of an earlier timer of the same watermark:
  // the timer at 50 deletes the one at 60; the one at 70 adds one at 75.
  Records({{"c", 1, "event", 50}, {"c", 1, "event", 60}, {"c", 1, "event", 70}});
  Watermark(100);
  EXPECT_EQ(out_->rows,
            (std::vector<std::string>{"b,event,0,10", "a,event,0,20", "c,event,0,50", "c,event,0,70", "c,event,0,75"}));
  // Deleted, then registered again: fires.
  Records({{"d", 1, "event", 200}, {"d", 1, "del_event", 200}, {"d", 1, "event", 200}});
  Watermark(kMaxWatermark);
  EXPECT_EQ(out_->rows.back(), "d,event,0,200");
  EXPECT_EQ(out_->rows.size(), 6u);
}

TEST_F(ProcessOperatorTest, ProcessingTimeTimersFireWithTheWallClock) {
  StartScripted();
  EXPECT_TRUE(op_->wants_processing_time());
  Records({{"a", 1, "count", 0},
           {"a", 1, "proc", 1'001'000},
           {"b", 1, "proc", 1'002'000},
           {"c", 1, "proc", 1'003'000},
           {"c", 1, "del_proc", 1'003'000}});
  op_->OnProcessingTime(1'000'999);
  EXPECT_EQ(out_->rows.size(), 1u);
  op_->OnProcessingTime(1'001'500);
  EXPECT_EQ(out_->rows.back(), "a,proc,1,1001000");
  // Watermarks do not fire processing-time timers.
  Watermark(kMaxWatermark - 1);
  EXPECT_EQ(out_->rows.size(), 2u);
  Records({{"b", 1, "del_proc", 1'002'000}});
  op_->OnProcessingTime(2'000'000);
  EXPECT_EQ(out_->rows.size(), 2u) << "b's timer was deleted, c's too";
  Records({{"d", 1, "proc", 1'500'000}});  // already past: fires at the next tick
  op_->OnProcessingTime(2'000'001);
  EXPECT_EQ(out_->rows.back(), "d,proc,0,1500000");
  ASSERT_TRUE(op_->status().ok()) << op_->status();
}

TEST_F(ProcessOperatorTest, ManyKeysTimersSpillToRocksDbAndFireOnceEach) {
  StartScripted();
  // 200,000 keys, each with a count and a timer at (i % 1000) * 10 + 1 (not
  // the times the function acts on): more than the 100,000 timers the queue
  // keeps in memory.
  constexpr int kKeys = 200'000;
  for (int base = 0; base < kKeys; base += 1000) {
    std::vector<std::tuple<std::string, int64_t, std::string, int64_t>> rows;
    for (int i = base; i < base + 1000; ++i) {
      rows.emplace_back(absl::StrCat("k", i), 1, "count", 0);
      rows.emplace_back(absl::StrCat("k", i), 1, "event", (i % 1000) * 10 + 1);
    }
    Records(rows);
  }
  // Delete every fourth key's timer, most of them on disk by now.
  for (int base = 0; base < kKeys; base += 4000) {
    std::vector<std::tuple<std::string, int64_t, std::string, int64_t>> rows;
    for (int i = base; i < base + 4000; i += 4)
      rows.emplace_back(absl::StrCat("k", i), 1, "del_event", (i % 1000) * 10 + 1);
    Records(rows);
  }
  out_->rows.clear();
  out_->log.clear();
  for (int64_t wm = 0; wm <= 10'000; wm += 997) Watermark(wm);
  Watermark(kMaxWatermark);
  std::set<std::string> fired;
  int64_t last_time = INT64_MIN;
  int out_of_order = 0, duplicates = 0, wrong = 0;
  for (const std::string& row : out_->rows) {
    // "k<i>,event,1,<time>": the key's state was current when it fired.
    const size_t c1 = row.find(','), c3 = row.rfind(',');
    const std::string key = row.substr(0, c1);
    const int64_t time = std::stoll(row.substr(c3 + 1));
    const int i = std::stoi(key.substr(1));
    out_of_order += time < last_time;
    last_time = time;
    duplicates += !fired.insert(key).second;
    const bool bad = row != absl::StrCat(key, ",event,1,", (i % 1000) * 10 + 1) || i % 4 == 0;
    if (bad && wrong < 5) ADD_FAILURE() << "unexpected timer row " << row;
    wrong += bad;
  }
  EXPECT_EQ(fired.size(), static_cast<size_t>(kKeys - kKeys / 4));
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(wrong, 0);
  // Between watermarks in time order: each timer came before the first
  // watermark at or after its time.
  int64_t watermark = INT64_MIN;
  int early = 0;
  for (const std::string& e : out_->log) {
    if (e.rfind("wm:", 0) == 0) {
      watermark = std::stoll(e.substr(3));
    } else {
      early += std::stoll(e.substr(e.rfind(',') + 1)) <= watermark;
    }
  }
  EXPECT_EQ(early, 0) << "a timer fired after a watermark that had passed it";
}

TEST_F(ProcessOperatorTest, StateTtlAppliesToTheFunctionsStatesByDefault) {
  ScriptedFunction* fn = StartScripted(/*state_ttl_ms=*/60'000);
  EXPECT_EQ(fn->ttl_ms, 60'000);
  Records({{"a", 1, "count", 0}, {"a", 2, "count", 0}});
  clock_.Advance(60'000);
  Records({{"a", 3, "count", 0}});
  EXPECT_EQ(out_->rows, (std::vector<std::string>{"a,count,1,1", "a,count,2,2", "a,count,1,3"}));
}

TEST_F(ProcessOperatorTest, RejectedRecordsAreDeadLetters) {
  StartScripted();
  Records({{"a", 7, "reject", 3}, {"b", 1, "count", 0}});
  ASSERT_EQ(dead_.rows.size(), 1u);
  EXPECT_EQ(dead_.rows[0],
            "proc,scripted,rejected on purpose,"
            "{\"k\":\"a\",\"ts\":\"1970-01-01T00:00:00.007Z\",\"action\":\"reject\",\"t\":3}");
  EXPECT_EQ(counters_.dead_letters, 1);
  Watermark(5);
  EXPECT_EQ(dead_.log.back(), "wm:5") << "the dead-letter stream gets watermarks too";
}

// Rejects each record while filling the row it emits for it.
class EmitThenReject : public KeyedProcessFunction {
 public:
  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput&) const override {
    return ProcessOutputSchema{kOutput, -1};
  }
  absl::Status Open(ProcessSetup&) override { return absl::OkStatus(); }
  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    Row& out = ctx.Emit();
    ctx.EmitDeadLetter(in, "rejected while emitting");
    out[0] = in[0];
    out[1].SetString("emitted");
    return absl::OkStatus();
  }
};

TEST_F(ProcessOperatorTest, AFullDeadLetterBatchLeavesTheRowBeingFilled) {
  Start(std::make_unique<EmitThenReject>());
  // The dead-letter batch fills in the middle of a call.
  std::vector<std::tuple<std::string, int64_t, std::string, int64_t>> rows;
  for (size_t i = 0; i <= RowBatch::kDefaultCapacity; ++i) rows.emplace_back(absl::StrCat("k", i), 1, "", 0);
  Records(rows);
  ASSERT_EQ(out_->rows.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(out_->rows[i], absl::StrCat("k", i, ",emitted,null,null"));
  EXPECT_EQ(dead_.rows.size(), rows.size());
}

TEST_F(ProcessOperatorTest, OpenFailsWhenTheFunctionDisagreesWithTheJobsOutputSchema) {
  proto::ProcessSpec spec = Spec("scripted");
  spec.set_declared_output_schema(true);
  const Schema other({{"k", FieldType::kString}, {"n", FieldType::kInt}});
  op_ = std::make_unique<ProcessOperator>(counters_, kInput, other, spec, std::make_unique<ScriptedFunction>());
  OperatorContext ctx;
  ctx.state_dir = TempPath("state");
  dirs_ = {ctx.state_dir};
  absl::Status s = op_->Open(ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("but the job declares output_schema {k: string, n: int}"), std::string::npos) << s;
}

// ---- the built-in no_data_alert --------------------------------------------

const Schema kAlertOutput({{"k", FieldType::kString},
                           {"last_ts", FieldType::kTimestamp},
                           {"alert_ts", FieldType::kTimestamp},
                           {"kind", FieldType::kString}});

std::unique_ptr<KeyedProcessFunction> NoDataAlert(ProcessParams::Map params) {
  auto fn = ProcessFunctionRegistry::Global().Create("no_data_alert", ProcessParams(std::move(params)));
  EXPECT_TRUE(fn.ok()) << fn.status();
  return fn.ok() ? std::move(*fn) : nullptr;
}

TEST_F(ProcessOperatorTest, NoDataAlertFiresOncePerSilenceInEventTime) {
  // Records newer than the watermark wait for it, so the alerts do not
  // depend on how often watermarks come.
  Start(NoDataAlert({{"timeout", "100ms"}}), 0, kAlertOutput, Spec("no_data_alert"));
  // a: 0, 50, 120 (re-armed each time), then silent. b: 10, then silent;
  // out of order: 40 before 30.
  Records({{"a", 0, "", 0}, {"b", 10, "", 0}, {"a", 50, "", 0}, {"b", 40, "", 0}, {"b", 30, "", 0}});
  Watermark(110);  // a's first timer (100) was moved to 150: nothing
  EXPECT_EQ(out_->rows, std::vector<std::string>{});
  Records({{"a", 120, "", 0}});
  Watermark(140);  // b: 40 + 100
  EXPECT_EQ(out_->rows, std::vector<std::string>{"b,1970-01-01T00:00:00.040Z,1970-01-01T00:00:00.140Z,no_data"});
  Watermark(1000);
  EXPECT_EQ(out_->rows.back(), "a,1970-01-01T00:00:00.120Z,1970-01-01T00:00:00.220Z,no_data");
  EXPECT_EQ(out_->rows.size(), 2u);
  // After an alert, the next record arms it again.
  Records({{"b", 2000, "", 0}, {"c", -1, "", 0}});  // c has no event time: a dead letter
  Watermark(kMaxWatermark);
  EXPECT_EQ(out_->rows.back(), "b,1970-01-01T00:00:02.000Z,1970-01-01T00:00:02.100Z,no_data");
  EXPECT_EQ(out_->rows.size(), 3u);
  EXPECT_EQ(dead_.rows.size(), 1u);
}

TEST_F(ProcessOperatorTest, NoDataAlertOnTheWallClockWhenTheFeedStops) {
  Start(NoDataAlert({{"timeout", "1h"}, {"wall_clock_timeout", "30s"}}), 0, kAlertOutput, Spec("no_data_alert"));
  clock_.Set(1'000'000'000'400);
  Records({{"a", 5, "", 0}});
  clock_.Advance(10'000);
  Records({{"a", 6, "", 0}});  // deadline moves to 1'000'000'041'000 (rounded up to a second)
  op_->OnProcessingTime(1'000'000'031'000);
  EXPECT_TRUE(out_->rows.empty());
  op_->OnProcessingTime(1'000'000'041'000);
  EXPECT_EQ(out_->rows,
            std::vector<std::string>{"a,1970-01-01T00:00:00.006Z,2001-09-09T01:47:21.000Z,no_data_wall_clock"});
  // Once per silence: no other wall-clock alert until the next record.
  op_->OnProcessingTime(1'000'000'100'000);
  EXPECT_EQ(out_->rows.size(), 1u);
  // Event time is judged on its own: the end of the input ends a's silence too.
  Watermark(kMaxWatermark);
  EXPECT_EQ(out_->rows.back(), "a,1970-01-01T00:00:00.006Z,1970-01-01T01:00:00.006Z,no_data");
  EXPECT_EQ(out_->rows.size(), 2u);
}

// ---- the registry ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> MakeScripted(const ProcessParams& params) {
  RETURN_IF_ERROR(params.CheckKnown({}));
  return std::unique_ptr<KeyedProcessFunction>(new ScriptedFunction());
}

VSTREAM_REGISTER_PROCESS_FUNCTION(scripted_by_macro, &MakeScripted);

TEST(ProcessFunctionRegistryTest, NamesBuiltinsAndExplainsUnknownNamesAndParams) {
  ProcessFunctionRegistry& registry = ProcessFunctionRegistry::Global();
  EXPECT_TRUE(registry.Contains("no_data_alert"));
  EXPECT_TRUE(registry.Contains("scripted_by_macro")) << "registered at static initialization";
  auto none = registry.Create("scripted_by_macro", ProcessParams(ProcessParams::Map{{"x", "1"}}));
  EXPECT_EQ(none.status().message(), "unknown param 'x', the function takes none");
  auto unknown = registry.Create("nope", ProcessParams());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("unknown process function 'nope', expected one of "), std::string::npos);
  EXPECT_NE(unknown.status().message().find("no_data_alert"), std::string::npos);

  auto bad = registry.Create("no_data_alert", ProcessParams(ProcessParams::Map{{"timeout", "soon"}}));
  EXPECT_EQ(bad.status().message(), "param 'timeout': expected a duration such as 5ms, 1s, 2m or 1h, got 'soon'");
  EXPECT_EQ(ParamOfError(bad.status()), "timeout");
  auto missing = registry.Create("no_data_alert", ProcessParams());
  EXPECT_EQ(missing.status().message(), "missing required param 'timeout'");
  auto extra =
      registry.Create("no_data_alert", ProcessParams(ProcessParams::Map{{"timeout", "1m"}, {"colour", "red"}}));
  EXPECT_EQ(extra.status().message(), "unknown param 'colour', expected one of timeout, wall_clock_timeout");
  EXPECT_EQ(ParamOfError(extra.status()), "colour");

  ProcessFunctionRegistry own;
  auto factory = [](const ProcessParams&) -> absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> {
    return std::unique_ptr<KeyedProcessFunction>(new ScriptedFunction());
  };
  EXPECT_TRUE(own.Register("scripted", factory).ok());
  EXPECT_EQ(own.Register("scripted", factory).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(own.Register("bad name", factory).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(own.Names(), std::vector<std::string>{"scripted"});
}

}  // namespace
}  // namespace vstream
