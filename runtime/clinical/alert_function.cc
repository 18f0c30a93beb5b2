#include "runtime/clinical/alert_function.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "runtime/formats/format_util.h"

namespace vstream {

namespace {

constexpr std::string_view kBands[] = {"low", "low-medium", "medium", "high"};

std::string FormatDuration(int64_t ms) {
  if (ms % 3'600'000 == 0) return absl::StrCat(ms / 3'600'000, "h");
  if (ms % 60'000 == 0) return absl::StrCat(ms / 60'000, "m");
  if (ms % 1000 == 0) return absl::StrCat(ms / 1000, "s");
  return absl::StrCat(ms, "ms");
}

class Alert final : public KeyedProcessFunction {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Create(const ProcessParams& params) {
    RETURN_IF_ERROR(params.CheckKnown({"level", "min_level", "cooldown", "detail"}));
    ASSIGN_OR_RETURN(std::string level, params.GetString("level", "risk_band"));
    ASSIGN_OR_RETURN(std::string detail, params.GetString("detail", ""));
    ASSIGN_OR_RETURN(std::string min_level, params.GetString("min_level", ""));
    ASSIGN_OR_RETURN(int64_t cooldown, params.GetDurationMs("cooldown", 3'600'000));
    if (cooldown <= 0) return ProcessParams::Error("cooldown", "must be > 0");
    auto alert = std::unique_ptr<Alert>(new Alert(std::move(level), std::move(min_level), cooldown));
    alert->detail_name_ = std::move(detail);
    return std::unique_ptr<KeyedProcessFunction>(std::move(alert));
  }

  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const override {
    const int level = input.schema.IndexOf(level_name_);
    if (level < 0) {
      return ProcessParams::Error("level", absl::StrCat("the input has no field '", level_name_, "'; it has ",
                                                        input.schema.DebugString()));
    }
    const FieldType type = input.schema.field(level).type;
    if (type != FieldType::kString && type != FieldType::kBool && type != FieldType::kInt) {
      return ProcessParams::Error("level", absl::StrCat("field '", level_name_, "' is ", FieldTypeName(type),
                                                        "; a level is a string (risk band), bool or int"));
    }
    int64_t rank = 0;
    if (!min_level_text_.empty() && !Rank(type, min_level_text_, &rank)) {
      return ProcessParams::Error("min_level", absl::StrCat("'", min_level_text_, "' is no level of a ",
                                                            FieldTypeName(type), " field"));
    }
    if (!detail_name_.empty() && input.schema.IndexOf(detail_name_) < 0) {
      return ProcessParams::Error("detail", absl::StrCat("the input has no field '", detail_name_, "'; it has ",
                                                         input.schema.DebugString()));
    }
    const int message = input.schema.IndexOf("message_id");
    if (message < 0 || input.schema.field(message).type != FieldType::kString) {
      return absl::InvalidArgumentError("the input has no string field 'message_id' (score rows have one)");
    }
    if (input.time_index < 0) {
      return absl::InvalidArgumentError("the input has no event time (score rows have observed_at)");
    }
    ProcessOutputSchema out;
    out.AddKeyFields(input);
    out.schema.Add("alert_id", FieldType::kString);
    out.schema.Add("alert_at", FieldType::kTimestamp);
    out.time_index = static_cast<int>(out.schema.size()) - 1;
    out.schema.Add("message_id", FieldType::kString);
    out.schema.Add("level", FieldType::kString);
    out.schema.Add("previous_level", FieldType::kString);
    out.schema.Add("reason", FieldType::kString);
    return out;
  }

  absl::Status Open(ProcessSetup& setup) override {
    const Schema& in = setup.input().schema;
    level_ = in.IndexOf(level_name_);
    type_ = in.field(level_).type;
    message_ = in.IndexOf("message_id");
    if (!detail_name_.empty()) {
      detail_ = in.IndexOf(detail_name_);
      detail_type_ = in.field(detail_).type;
    }
    keys_ = setup.input().key_fields.size();
    for (int k : setup.input().key_fields) key_types_.push_back(in.field(k).type);
    if (min_level_text_.empty()) {
      min_level_ = 1;  // low-medium, true, 1
    } else {
      Rank(type_, min_level_text_, &min_level_);
    }
    ValueStateDescriptor last;
    last.name = "last_alert";
    last.write_back_cache = true;
    ASSIGN_OR_RETURN(state_, setup.GetValueState(last));
    return absl::OkStatus();
  }

  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    if (in[level_].is_null || !ctx.has_timestamp()) return absl::OkStatus();
    int64_t rank = 0;
    if (type_ == FieldType::kString) {
      if (!Rank(type_, in[level_].s, &rank)) {
        ctx.EmitDeadLetter(in, absl::StrCat("alert: '", in[level_].s, "' is no risk band (low, low-medium, medium, high)"));
        return absl::OkStatus();
      }
    } else {
      rank = in[level_].i;
    }
    // State: [alerted: 1][rank: 8][at: 8].
    ASSIGN_OR_RETURN(StateLookup r, state_->Get("", &buf_));
    bool alerted = false;
    int64_t last_rank = 0, last_at = 0;
    if (r == StateLookup::kFound && buf_.size() == 17) {
      alerted = buf_[0] != 0;
      std::memcpy(&last_rank, buf_.data() + 1, 8);
      std::memcpy(&last_at, buf_.data() + 9, 8);
    }
    const int64_t t = ctx.timestamp();
    if (rank < min_level_) {
      if (alerted) RETURN_IF_ERROR(state_->Clear(""));
      return absl::OkStatus();
    }
    std::string reason;
    if (!alerted) {
      reason = absl::StrCat("reached ", LevelText(rank));
    } else if (rank > last_rank) {
      reason = absl::StrCat("rose from ", LevelText(last_rank), " to ", LevelText(rank));
    } else if (t - last_at >= cooldown_ms_) {
      reason = absl::StrCat("still ", LevelText(rank), " after ", FormatDuration(t - last_at));
    } else {
      return absl::OkStatus();  // suppressed
    }
    if (detail_ >= 0 && !in[detail_].is_null) {
      // "spo2 below 90 x3 in 5m; reached 3", "news2_total 7; rose from low to high".
      reason = detail_type_ == FieldType::kString
                   ? absl::StrCat(in[detail_].s, "; ", reason)
                   : absl::StrCat(detail_name_, " ", DatumToString(in[detail_], detail_type_), "; ", reason);
    }
    Row& out = ctx.Emit();
    const Row& key = ctx.key_row();
    size_t f = 0;
    uint64_t h = kFnv1a64Offset;
    for (; f < keys_; ++f) {
      out[f] = key[f];
      h = Fnv1a64(DatumToString(key[f], key_types_[f]), h);
      h = Fnv1a64("\x1f", h);
    }
    h = Fnv1a64(in[message_].is_null ? "" : in[message_].s, h);
    h = Fnv1a64(absl::StrCat("\x1f", t, "\x1f", rank), h);
    char id[17];
    std::snprintf(id, sizeof(id), "%016llx", static_cast<unsigned long long>(h));
    out[f++].SetString(std::string_view(id, 16));
    out[f++].SetInt(t);
    if (in[message_].is_null) out[f++].SetNull();
    else out[f++].SetString(in[message_].s);
    out[f++].SetString(LevelText(rank));
    if (alerted) out[f++].SetString(LevelText(last_rank));
    else out[f++].SetNull();
    out[f++].SetString(reason);
    buf_.resize(17);
    buf_[0] = 1;
    std::memcpy(buf_.data() + 1, &rank, 8);
    std::memcpy(buf_.data() + 9, &t, 8);
    return state_->Put("", buf_);
  }

 private:
  Alert(std::string level, std::string min_level, int64_t cooldown_ms)
      : level_name_(std::move(level)), min_level_text_(std::move(min_level)), cooldown_ms_(cooldown_ms) {}

  static bool Rank(FieldType type, std::string_view text, int64_t* rank) {
    if (type == FieldType::kString) {
      for (size_t i = 0; i < std::size(kBands); ++i) {
        if (text == kBands[i]) {
          *rank = static_cast<int64_t>(i);
          return true;
        }
      }
      return false;
    }
    if (type == FieldType::kBool) {
      bool b = false;
      if (!format_internal::ParseBool(text, &b)) return false;
      *rank = b ? 1 : 0;
      return true;
    }
    return format_internal::ParseInt64(text, rank) == format_internal::NumberParse::kOk;
  }

  std::string LevelText(int64_t rank) const {
    if (type_ == FieldType::kString && rank >= 0 && rank < static_cast<int64_t>(std::size(kBands))) {
      return std::string(kBands[rank]);
    }
    if (type_ == FieldType::kBool) return rank != 0 ? "true" : "false";
    return absl::StrCat(rank);
  }

  const std::string level_name_;
  const std::string min_level_text_;
  const int64_t cooldown_ms_;
  int level_ = -1;
  FieldType type_ = FieldType::kString;
  int message_ = -1;
  std::string detail_name_;  // empty: no detail
  int detail_ = -1;
  FieldType detail_type_ = FieldType::kString;
  size_t keys_ = 0;
  std::vector<FieldType> key_types_;
  int64_t min_level_ = 1;
  ValueState* state_ = nullptr;
  std::string buf_;
};

}  // namespace

void RegisterAlertFunction(ProcessFunctionRegistry& registry) { (void)registry.Register("alert", &Alert::Create); }

}  // namespace vstream
