#include "runtime/clinical/pattern_function.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/clinical/early_warning_function.h"

namespace vstream {

namespace {

// The names `sign` takes, in the order the errors list them.
struct SignName {
  std::string_view name;
  VitalSign sign;
};
constexpr SignName kSigns[] = {
    {"respiration_rate", VitalSign::kRespirationRate},
    {"spo2", VitalSign::kSpo2},
    {"oxygen", VitalSign::kOxygen},
    {"systolic_bp", VitalSign::kSystolicBp},
    {"pulse", VitalSign::kPulse},
    {"heart_rate", VitalSign::kPulse},
    {"consciousness", VitalSign::kConsciousness},
    {"temperature", VitalSign::kTemperature},
    {"spo2_scale", VitalSign::kSpo2Scale},
    {"gcs", VitalSign::kGcs},
};

enum class Condition : uint8_t {
  kBelow,  // value < threshold
  kAbove,  // value > threshold
  kRise,   // value - earlier value > threshold
  kFall,   // earlier value - value > threshold
};
// The params of the conditions, by Condition.
constexpr std::string_view kConditionParams[] = {"below", "above", "rise", "fall"};

// The most observations a threshold pattern counts: its state holds fewer.
constexpr int64_t kMaxCount = 100;
// The most observations a rise or fall pattern keeps per key (the oldest
// beyond go): a value is copied in and out of the state on each row.
constexpr size_t kMaxKept = 1024;
// State: [newest: 8][rearm_at: 8], then [time: 8][value: 8][id length: 4][id].
constexpr size_t kHeaderBytes = 16;
constexpr size_t kEntryBytes = 20;

// The names of the output's own fields, which a key field may not take.
constexpr std::string_view kOutputFields[] = {"pattern",  "value", "from_value", "matched_at",
                                              "first_at", "count", "message_id"};

std::string FormatDuration(int64_t ms) {
  if (ms % 3'600'000 == 0) return absl::StrCat(ms / 3'600'000, "h");
  if (ms % 60'000 == 0) return absl::StrCat(ms / 60'000, "m");
  if (ms % 1000 == 0) return absl::StrCat(ms / 1000, "s");
  return absl::StrCat(ms, "ms");
}

// What the parameters say, checked.
struct PatternSpec {
  // The vital sign whose observations count, and its name as the params
  // gave it.
  VitalSign sign = VitalSign::kNone;
  std::string sign_name;
  Condition condition = Condition::kBelow;
  // X of `below: X` and the others.
  double threshold = 0;
  // Observations of a below/above match. Default 1; 2 for rise and fall.
  int64_t count = 1;
  // `within` in ms; 0 with count 1, where there is no window.
  int64_t within_ms = 0;
  // `cooldown` in ms. Default 0: only observations after a match re-arm.
  int64_t cooldown_ms = 0;
  // The `pattern` field of the output rows: `label`, default a summary of
  // the others.
  std::string label;
};

class Pattern final : public KeyedProcessFunction {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Create(const ProcessParams& params) {
    RETURN_IF_ERROR(
        params.CheckKnown({"sign", "below", "above", "rise", "fall", "count", "within", "cooldown", "label"}));
    PatternSpec spec;
    ASSIGN_OR_RETURN(spec.sign_name, params.GetString("sign"));
    for (const SignName& s : kSigns) {
      if (s.name == spec.sign_name) spec.sign = s.sign;
    }
    if (spec.sign == VitalSign::kNone) {
      std::string names;
      for (const SignName& s : kSigns) absl::StrAppend(&names, names.empty() ? "" : ", ", AV(s.name));
      return ProcessParams::Error("sign",
                                  absl::StrCat("'", spec.sign_name, "' is no vital sign, expected one of ", names));
    }

    // Exactly one condition.
    std::string_view condition;
    for (size_t c = 0; c < std::size(kConditionParams); ++c) {
      const std::string_view param = kConditionParams[c];
      if (!params.Has(param)) continue;
      if (!condition.empty()) {
        return ProcessParams::Error(param, absl::StrCat("conflicts with '", AV(condition),
                                                        "': a pattern has exactly one of below, above, rise, fall"));
      }
      condition = param;
      spec.condition = static_cast<Condition>(c);
      ASSIGN_OR_RETURN(spec.threshold, params.GetDouble(param));
      if (!std::isfinite(spec.threshold)) return ProcessParams::Error(param, "must be a finite number");
    }
    if (condition.empty()) {
      return absl::InvalidArgumentError(
          "missing the pattern's condition: one of the params 'below', 'above', 'rise' or 'fall'");
    }
    const bool change = spec.condition == Condition::kRise || spec.condition == Condition::kFall;
    if (change && spec.threshold < 0) {
      return ProcessParams::Error(condition,
                                  absl::StrCat("must be >= 0 (the change must exceed it); for the other direction "
                                               "use '",
                                               spec.condition == Condition::kRise ? "fall" : "rise", "'"));
    }

    if (change) {
      if (params.Has("count")) {
        return ProcessParams::Error(
            "count", absl::StrCat("applies to below and above only; '", AV(condition), "' compares two observations"));
      }
      spec.count = 2;
    } else {
      ASSIGN_OR_RETURN(spec.count, params.GetInt("count", 1));
      if (spec.count < 1 || spec.count > kMaxCount) {
        return ProcessParams::Error("count", absl::StrCat("must be between 1 and ", kMaxCount, ", got ", spec.count));
      }
    }

    // A window only where two observations are compared or counted.
    const bool windowed = change || spec.count > 1;
    if (windowed || params.Has("within")) {
      ASSIGN_OR_RETURN(int64_t within, params.GetDurationMs("within"));
      if (within <= 0) return ProcessParams::Error("within", "must be > 0");
      if (windowed) spec.within_ms = within;
    }
    ASSIGN_OR_RETURN(spec.cooldown_ms, params.GetDurationMs("cooldown", 0));

    std::string summary = absl::StrCat(spec.sign_name, " ", AV(condition), " ", spec.threshold);
    if (spec.count > 1 && !change) absl::StrAppend(&summary, " x", spec.count);
    if (windowed) absl::StrAppend(&summary, " in ", FormatDuration(spec.within_ms));
    ASSIGN_OR_RETURN(spec.label, params.GetString("label", std::move(summary)));
    if (spec.label.empty()) return ProcessParams::Error("label", "must not be empty");
    return std::unique_ptr<KeyedProcessFunction>(new Pattern(std::move(spec)));
  }

  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const override {
    auto check = [&](std::string_view name, FieldType type, bool required) -> absl::Status {
      const int i = input.schema.IndexOf(name);
      if (i < 0) {
        if (!required) return absl::OkStatus();
        return absl::InvalidArgumentError(absl::StrCat("the input has no field '", AV(name), "' (", FieldTypeName(type),
                                                       "); it takes observation rows, as the hl7v2 format makes them"));
      }
      if (input.schema.field(i).type != type) {
        return absl::InvalidArgumentError(absl::StrCat("the input's field '", AV(name), "' is ",
                                                       FieldTypeName(input.schema.field(i).type), ", not ",
                                                       FieldTypeName(type)));
      }
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(check("code", FieldType::kString, true));
    RETURN_IF_ERROR(check("value", FieldType::kDouble, true));
    for (const char* optional : {"value_text", "unit", "status", "message_id"}) {
      RETURN_IF_ERROR(check(optional, FieldType::kString, false));
    }
    if (input.time_index < 0) {
      const int observed_at = input.schema.IndexOf("observed_at");
      if (observed_at < 0 || input.schema.field(observed_at).type != FieldType::kTimestamp) {
        return absl::InvalidArgumentError(
            "the input has no event time and no timestamp field 'observed_at': declare event_time on its source");
      }
    }
    ProcessOutputSchema out;
    for (int k : input.key_fields) {
      const Field& f = input.schema.field(k);
      for (std::string_view own : kOutputFields) {
        if (f.name == own) {
          return absl::InvalidArgumentError(absl::StrCat("key field '", f.name,
                                                         "' would clash with the output's own field of that name; "
                                                         "rename it in a map first"));
        }
      }
    }
    out.AddKeyFields(input);
    out.schema.Add("pattern", FieldType::kString);
    out.schema.Add("matched_at", FieldType::kTimestamp);
    out.time_index = static_cast<int>(out.schema.size()) - 1;
    out.schema.Add("first_at", FieldType::kTimestamp);
    out.schema.Add("count", FieldType::kInt);
    out.schema.Add("value", FieldType::kDouble);
    out.schema.Add("from_value", FieldType::kDouble);
    out.schema.Add("message_id", FieldType::kString);
    return out;
  }

  absl::Status Open(ProcessSetup& setup) override {
    const ProcessInput& input = setup.input();
    const Schema& in = input.schema;
    code_ = in.IndexOf("code");
    value_ = in.IndexOf("value");
    value_text_ = in.IndexOf("value_text");
    unit_ = in.IndexOf("unit");
    status_ = in.IndexOf("status");
    message_ = in.IndexOf("message_id");
    time_ = input.time_index >= 0 ? input.time_index : in.IndexOf("observed_at");
    time_name_ = in.field(time_).name;
    keys_ = input.key_fields.size();
    ValueStateDescriptor recent;
    recent.name = "recent";
    recent.write_back_cache = true;  // read by every row of the sign
    ASSIGN_OR_RETURN(state_, setup.GetValueState(recent));
    return absl::OkStatus();
  }

  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    if (in[code_].is_null) return absl::OkStatus();
    if (status_ >= 0 && !in[status_].is_null && (in[status_].s == "X" || in[status_].s == "W")) {
      return absl::OkStatus();
    }
    const VitalSignValue v =
        ClassifyVitalSign(in[code_].s, in[value_], value_text_ >= 0 ? in[value_text_] : none_,
                          unit_ >= 0 && !in[unit_].is_null ? std::string_view(in[unit_].s) : std::string_view());
    if (v.sign != spec_.sign) return absl::OkStatus();
    if (in[time_].is_null) {
      ctx.EmitDeadLetter(in, absl::StrCat("pattern: the observation has no time ('", time_name_, "' is null)"));
      return absl::OkStatus();
    }
    const int64_t t = in[time_].i;
    const bool change = spec_.condition == Condition::kRise || spec_.condition == Condition::kFall;
    // A threshold pattern holds, and so sees, only the rows that satisfy it.
    if (!change && !Satisfies(v.value)) return absl::OkStatus();

    RETURN_IF_ERROR(Load());
    const bool windowed = spec_.within_ms > 0;
    if (windowed && newest_ != INT64_MIN && t < SatAdd(newest_, -spec_.within_ms)) {
      return absl::OkStatus();  // too late: older than the horizon
    }
    // A row at or before the newest one and before the re-arm time changes
    // nothing.
    if (t <= newest_ && t < rearm_at_) return absl::OkStatus();
    if (t > newest_) {
      newest_ = t;
      // Forget what fell behind the horizon. From here on every kept
      // observation lies within `within` of every other.
      if (windowed) {
        const int64_t horizon = SatAdd(newest_, -spec_.within_ms);
        size_t behind = 0;
        while (behind < kept_.size() && kept_[behind].time < horizon) ++behind;
        kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(behind));
      }
    }
    if (t >= rearm_at_) {
      // In time order, after those of the same time.
      const auto at =
          std::upper_bound(kept_.begin(), kept_.end(), t, [](int64_t time, const Entry& e) { return time < e.time; });
      const size_t i = static_cast<size_t>(at - kept_.begin());
      std::string_view id;
      if (message_ >= 0 && !in[message_].is_null) id = in[message_].s;
      kept_.insert(at, Entry{t, v.value, id});
      size_t first = 0, last = 0;
      if (change ? FindChange(i, &first, &last) : FindCount(&first, &last)) {
        Emit(first, last, change, ctx);
        // Consumed: everything up to the match, and within its cooldown.
        rearm_at_ = SatAdd(kept_[last].time, std::max<int64_t>(spec_.cooldown_ms, 1));
        size_t consumed = 0;
        while (consumed < kept_.size() && kept_[consumed].time < rearm_at_) ++consumed;
        kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(consumed));
      }
      if (kept_.size() > kMaxKept) {
        kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(kept_.size() - kMaxKept));
      }
    }
    return Store();
  }

 private:
  // A kept observation. Its message id points into buf_ (read from the
  // state) or into the current row, both valid until Store.
  struct Entry {
    int64_t time;
    double value;
    std::string_view message_id;
  };

  explicit Pattern(PatternSpec spec) : spec_(std::move(spec)) {}

  bool Satisfies(double value) const {
    return spec_.condition == Condition::kBelow ? value < spec_.threshold : value > spec_.threshold;
  }
  // How far `to` rose (fell) from `from`.
  double Change(double from, double to) const { return spec_.condition == Condition::kRise ? to - from : from - to; }

  // below/above: the kept observations (all within `within` of each other)
  // reach the count. They were fewer before the row: all of them match.
  bool FindCount(size_t* first, size_t* last) const {
    if (kept_.size() < static_cast<size_t>(spec_.count)) return false;
    *first = 0;
    *last = kept_.size() - 1;
    return true;
  }

  // rise/fall: a pair with the new observation kept_[i] (no other pair
  // matched before it came). First as the later one: the largest change
  // from an earlier observation (ties: the earliest). Else as the earlier
  // one: the first later observation that changed enough.
  bool FindChange(size_t i, size_t* first, size_t* last) const {
    const Entry& e = kept_[i];
    bool found = false;
    double best = 0;
    for (size_t k = 0; k < i; ++k) {
      if (kept_[k].time == e.time) break;  // the same time is not earlier; those after it neither
      const double d = Change(kept_[k].value, e.value);
      if (d > spec_.threshold && (!found || d > best)) {
        found = true;
        best = d;
        *first = k;
      }
    }
    if (found) {
      *last = i;
      return true;
    }
    for (size_t k = i + 1; k < kept_.size(); ++k) {
      if (Change(e.value, kept_[k].value) > spec_.threshold) {
        *first = i;
        *last = k;
        return true;
      }
    }
    return false;
  }

  void Emit(size_t first, size_t last, bool change, ProcessContext& ctx) {
    const Row& key = ctx.key_row();
    Row& out = ctx.Emit();
    size_t f = 0;
    for (; f < keys_; ++f) out[f] = key[f];
    out[f++].SetString(spec_.label);
    out[f++].SetInt(kept_[last].time);
    out[f++].SetInt(kept_[first].time);
    out[f++].SetInt(change ? 2 : static_cast<int64_t>(last - first + 1));
    out[f++].SetDouble(kept_[last].value);
    if (change) {
      out[f++].SetDouble(kept_[first].value);
    } else {
      out[f++].SetNull();
    }
    // An empty id is none (the state does not tell null from empty).
    if (kept_[last].message_id.empty()) {
      out[f++].SetNull();
    } else {
      out[f++].SetString(kept_[last].message_id);
    }
  }

  // The current key's state into newest_, rearm_at_ and kept_.
  absl::Status Load() {
    ASSIGN_OR_RETURN(StateLookup r, state_->Get("", &buf_));
    newest_ = rearm_at_ = INT64_MIN;
    kept_.clear();
    if (r == StateLookup::kAbsent) return absl::OkStatus();
    if (buf_.size() < kHeaderBytes) return absl::DataLossError("pattern: corrupt state (short header)");
    std::memcpy(&newest_, buf_.data(), 8);
    std::memcpy(&rearm_at_, buf_.data() + 8, 8);
    size_t pos = kHeaderBytes;
    while (pos < buf_.size()) {
      if (buf_.size() - pos < kEntryBytes) return absl::DataLossError("pattern: corrupt state (short entry)");
      Entry e;
      uint32_t id_len = 0;
      std::memcpy(&e.time, buf_.data() + pos, 8);
      std::memcpy(&e.value, buf_.data() + pos + 8, 8);
      std::memcpy(&id_len, buf_.data() + pos + 16, 4);
      pos += kEntryBytes;
      if (buf_.size() - pos < id_len) return absl::DataLossError("pattern: corrupt state (short message id)");
      e.message_id = std::string_view(buf_.data() + pos, id_len);
      pos += id_len;
      kept_.push_back(e);
    }
    return absl::OkStatus();
  }

  // Writes newest_, rearm_at_ and kept_ back (through out_: kept_ may point
  // into buf_).
  absl::Status Store() {
    out_.clear();
    out_.append(reinterpret_cast<const char*>(&newest_), 8);
    out_.append(reinterpret_cast<const char*>(&rearm_at_), 8);
    for (const Entry& e : kept_) {
      const uint32_t id_len = static_cast<uint32_t>(e.message_id.size());
      out_.append(reinterpret_cast<const char*>(&e.time), 8);
      out_.append(reinterpret_cast<const char*>(&e.value), 8);
      out_.append(reinterpret_cast<const char*>(&id_len), 4);
      out_.append(e.message_id.data(), e.message_id.size());
    }
    return state_->Put("", out_);
  }

  const PatternSpec spec_;
  int code_ = -1, value_ = -1, time_ = -1;
  int value_text_ = -1, unit_ = -1, status_ = -1, message_ = -1;  // -1: the input has none
  std::string time_name_;
  size_t keys_ = 0;
  const Datum none_;  // value_text of an input without it
  ValueState* state_ = nullptr;
  // The current key's state, between Load and Store; reused from row to row.
  int64_t newest_ = INT64_MIN;    // the newest observation seen; INT64_MIN: none
  int64_t rearm_at_ = INT64_MIN;  // the earliest time a new match may use
  std::vector<Entry> kept_;       // in time order, ties in arrival order
  std::string buf_;
  std::string out_;
};

}  // namespace

void RegisterPatternFunction(ProcessFunctionRegistry& registry) {
  (void)registry.Register("pattern", &Pattern::Create);
}

}  // namespace vstream
