#include "runtime/operators/builtin_process_functions.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/clinical/alert_function.h"
#include "runtime/clinical/dedup_function.h"
#include "runtime/clinical/early_warning_function.h"
#include "runtime/clinical/pattern_function.h"
#include "runtime/clinical/pseudonymize_function.h"
#include "runtime/clinical/score_model_function.h"

namespace vstream {

namespace {

constexpr char kNoData[] = "no_data";
constexpr char kNoDataWallClock[] = "no_data_wall_clock";

// See builtin_process_functions.h.
//
// Event time, deterministically (whatever the watermarks' pace): a record
// newer than the watermark is pending (its time in the key's state, and an
// event-time timer at its time) until the watermark passes it; then no
// record at or before it can still come, so records are settled in time
// order. Settling moves the key's latest settled time (last_ts) and its
// alert timer to last_ts + timeout (the old one is deleted). Every timer
// that fires at t settles the pending records up to t, then alerts if t >=
// last_ts + timeout: no record came in (last_ts, last_ts + timeout]. A late
// record (at or before the watermark) is settled at once; it cannot retract
// an alert.
//
// The key's event-time state is one value, through the write-back cache:
// [flags: has last_ts, alerted][last_ts: 8][pending times: 8 each, sorted].
// The pending times are the records within the watermark's lag: few.
//
// Wall clock, independently: each record moves a processing-time deadline
// ("wall": deadline, newest time seen), rounded up to a whole second so a
// key with many records a second re-arms it once a second; the timer at
// the deadline alerts once, until the next record.
class NoDataAlert final : public KeyedProcessFunction {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Create(const ProcessParams& params) {
    RETURN_IF_ERROR(params.CheckKnown({"timeout", "wall_clock_timeout"}));
    ASSIGN_OR_RETURN(int64_t timeout, params.GetDurationMs("timeout"));
    if (timeout <= 0) return ProcessParams::Error("timeout", "must be > 0");
    ASSIGN_OR_RETURN(int64_t wall, params.GetDurationMs("wall_clock_timeout", 0));
    return std::unique_ptr<KeyedProcessFunction>(new NoDataAlert(timeout, wall));
  }

  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const override {
    if (input.time_index < 0) {
      return absl::InvalidArgumentError("the input has no event time: declare event_time on its source");
    }
    ProcessOutputSchema out;
    for (int k : input.key_fields) {
      const Field& f = input.schema.field(k);
      if (f.name == "last_ts" || f.name == "alert_ts" || f.name == "kind") {
        return absl::InvalidArgumentError(absl::StrCat(
            "key field '", f.name, "' would clash with the output's own field of that name; rename it in a map first"));
      }
    }
    out.AddKeyFields(input);
    out.schema.Add("last_ts", FieldType::kTimestamp);
    out.schema.Add("alert_ts", FieldType::kTimestamp);
    out.time_index = static_cast<int>(out.schema.size()) - 1;
    out.schema.Add("kind", FieldType::kString);
    return out;
  }

  absl::Status Open(ProcessSetup& setup) override {
    keys_ = setup.input().key_fields.size();
    ValueStateDescriptor key_state;
    key_state.name = "event_time";
    key_state.write_back_cache = true;  // read and written by every record
    ASSIGN_OR_RETURN(state_, setup.GetValueState(key_state));
    if (wall_timeout_ms_ > 0) {
      ValueStateDescriptor wall;
      wall.name = "wall";
      wall.write_back_cache = true;
      ASSIGN_OR_RETURN(wall_, setup.GetValueState(wall));
    }
    return absl::OkStatus();
  }

  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    if (!ctx.has_timestamp()) {
      ctx.EmitDeadLetter(in, "no_data_alert: the record has no event time");
      return absl::OkStatus();
    }
    const int64_t ts = ctx.timestamp();
    RETURN_IF_ERROR(Load());
    if (ts <= ctx.current_watermark()) {
      RETURN_IF_ERROR(Settle(ts, ctx));
    } else {
      auto at = std::lower_bound(pending_.begin(), pending_.end(), ts);
      if (at == pending_.end() || *at != ts) {
        pending_.insert(at, ts);
        RETURN_IF_ERROR(ctx.RegisterEventTimeTimer(ts));
      }
    }
    RETURN_IF_ERROR(Store());
    if (wall_ != nullptr) RETURN_IF_ERROR(ArmWallClock(ts, ctx));
    return absl::OkStatus();
  }

  absl::Status OnTimer(int64_t time, TimeDomain domain, ProcessContext& ctx) override {
    if (domain == TimeDomain::kProcessingTime) return OnWallClock(time, ctx);
    RETURN_IF_ERROR(Load());
    // The pending records up to now, in time order.
    const auto due_end = std::upper_bound(pending_.begin(), pending_.end(), time);
    for (auto it = pending_.begin(); it != due_end; ++it) RETURN_IF_ERROR(Settle(*it, ctx));
    pending_.erase(pending_.begin(), due_end);
    if (has_last_ && !alerted_ && time >= SatAdd(last_, timeout_ms_)) {
      Alert(last_, SatAdd(last_, timeout_ms_), kNoData, ctx);
      alerted_ = true;
    }
    return Store();
  }

 private:
  NoDataAlert(int64_t timeout_ms, int64_t wall_timeout_ms)
      : timeout_ms_(timeout_ms), wall_timeout_ms_(wall_timeout_ms) {}

  // The current key's event-time state into has_last_, last_, alerted_
  // and pending_.
  absl::Status Load() {
    ASSIGN_OR_RETURN(StateLookup r, state_->Get("", &buf_));
    has_last_ = alerted_ = false;
    pending_.clear();
    if (r == StateLookup::kAbsent) return absl::OkStatus();
    if (buf_.size() < 9 || (buf_.size() - 9) % 8 != 0) {
      return absl::DataLossError("no_data_alert: corrupt state");
    }
    has_last_ = (buf_[0] & 1) != 0;
    alerted_ = (buf_[0] & 2) != 0;
    std::memcpy(&last_, buf_.data() + 1, 8);
    pending_.resize((buf_.size() - 9) / 8);
    if (!pending_.empty()) std::memcpy(pending_.data(), buf_.data() + 9, pending_.size() * 8);
    return absl::OkStatus();
  }

  absl::Status Store() {
    if (!has_last_ && pending_.empty()) return state_->Clear("");
    buf_.resize(9 + pending_.size() * 8);
    buf_[0] = static_cast<char>((has_last_ ? 1 : 0) | (alerted_ ? 2 : 0));
    std::memcpy(buf_.data() + 1, &last_, 8);
    if (!pending_.empty()) std::memcpy(buf_.data() + 9, pending_.data(), pending_.size() * 8);
    return state_->Put("", buf_);
  }

  // A record at `t`, all records before it settled: report the silence
  // before it if no timer did, then make it the latest.
  absl::Status Settle(int64_t t, ProcessContext& ctx) {
    if (has_last_ && t <= last_) return absl::OkStatus();
    if (has_last_) {
      if (!alerted_ && t - last_ > timeout_ms_) Alert(last_, SatAdd(last_, timeout_ms_), kNoData, ctx);
      if (!alerted_) RETURN_IF_ERROR(ctx.DeleteEventTimeTimer(SatAdd(last_, timeout_ms_)));
    }
    has_last_ = true;
    last_ = t;
    alerted_ = false;
    return ctx.RegisterEventTimeTimer(SatAdd(t, timeout_ms_));
  }

  absl::Status ArmWallClock(int64_t ts, ProcessContext& ctx) {
    const int64_t due = SatAdd(ctx.current_processing_time(), wall_timeout_ms_);
    const int64_t deadline = SatAdd(due, (1000 - due % 1000) % 1000);  // up to a whole second
    ASSIGN_OR_RETURN(StateLookup r, wall_->Get("", &buf_));
    int64_t old_deadline = 0, newest = ts;
    const bool armed = r == StateLookup::kFound && buf_.size() == 16;
    if (armed) {
      std::memcpy(&old_deadline, buf_.data(), 8);
      int64_t seen = 0;
      std::memcpy(&seen, buf_.data() + 8, 8);
      newest = std::max(newest, seen);
      if (old_deadline == deadline && seen >= ts) return absl::OkStatus();
      if (old_deadline != deadline) RETURN_IF_ERROR(ctx.DeleteProcessingTimeTimer(old_deadline));
    }
    if (!armed || old_deadline != deadline) RETURN_IF_ERROR(ctx.RegisterProcessingTimeTimer(deadline));
    buf_.resize(16);
    std::memcpy(buf_.data(), &deadline, 8);
    std::memcpy(buf_.data() + 8, &newest, 8);
    return wall_->Put("", buf_);
  }

  absl::Status OnWallClock(int64_t time, ProcessContext& ctx) {
    if (wall_ == nullptr) return absl::OkStatus();
    ASSIGN_OR_RETURN(StateLookup r, wall_->Get("", &buf_));
    if (r == StateLookup::kAbsent || buf_.size() != 16) return absl::OkStatus();
    int64_t deadline = 0, newest = 0;
    std::memcpy(&deadline, buf_.data(), 8);
    std::memcpy(&newest, buf_.data() + 8, 8);
    if (deadline != time) return absl::OkStatus();  // moved since
    Alert(newest, time, kNoDataWallClock, ctx);
    return wall_->Clear("");
  }

  void Alert(int64_t last, int64_t alert_ts, const char* kind, ProcessContext& ctx) {
    const Row& key = ctx.key_row();
    Row& out = ctx.Emit();
    size_t f = 0;
    for (; f < keys_; ++f) out[f] = key[f];
    out[f++].SetInt(last);
    out[f++].SetInt(alert_ts);
    out[f].SetString(kind);
  }

  const int64_t timeout_ms_;
  const int64_t wall_timeout_ms_;  // 0: no wall-clock alerts
  size_t keys_ = 0;
  ValueState* state_ = nullptr;
  ValueState* wall_ = nullptr;  // null without wall_clock_timeout
  // The current key's event-time state, between Load and Store.
  bool has_last_ = false;
  int64_t last_ = 0;
  bool alerted_ = false;
  std::vector<int64_t> pending_;
  std::string buf_;
};

}  // namespace

void RegisterBuiltinProcessFunctions(ProcessFunctionRegistry& registry) {
  // The names are fresh: registration cannot fail.
  (void)registry.Register("no_data_alert", &NoDataAlert::Create);
  RegisterEarlyWarningFunctions(registry);
  RegisterDedupFunction(registry);
  RegisterAlertFunction(registry);
  RegisterPatternFunction(registry);
  RegisterPseudonymizeFunction(registry);
  RegisterScoreModelFunction(registry);
}

}  // namespace vstream
