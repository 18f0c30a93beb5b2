#include "runtime/clinical/early_warning_function.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "runtime/clinical/news2.h"
#include "runtime/formats/format_util.h"

namespace vstream {

namespace {

bool In(std::string_view code, std::initializer_list<std::string_view> codes) {
  for (std::string_view c : codes) {
    if (code == c) return true;
  }
  return false;
}

std::optional<double> Number(const Datum& value, const Datum& value_text) {
  if (!value.is_null && std::isfinite(value.d)) return value.d;
  if (value_text.is_null) return std::nullopt;
  double d = 0;
  if (format_internal::ParseDouble(format_internal::TrimBlanks(value_text.s), &d) ==
          format_internal::NumberParse::kOk &&
      std::isfinite(d)) {
    return d;
  }
  return std::nullopt;
}

std::optional<Acvpu> ConsciousnessOf(std::string_view text) {
  if (std::optional<Acvpu> letter = ParseAcvpu(text)) return letter;
  // SNOMED CT findings for the ACVPU levels.
  if (text == "248234008") return Acvpu::kAlert;         // mentally alert
  if (text == "130987000") return Acvpu::kConfusion;     // acute confusion
  if (text == "300202002") return Acvpu::kVoice;         // responds to voice
  if (text == "450847001") return Acvpu::kPain;          // responds to pain
  if (text == "422768004") return Acvpu::kUnresponsive;  // unresponsive
  return std::nullopt;
}

}  // namespace

VitalSignValue ClassifyVitalSign(std::string_view code, const Datum& value, const Datum& value_text,
                                 std::string_view unit) {
  VitalSignValue out;
  VitalSign sign = VitalSign::kNone;
  if (In(code, {"9279-1", "151562", "151578", "151570"})) {
    sign = VitalSign::kRespirationRate;
  } else if (In(code, {"59408-5", "2708-6", "20564-1", "150456"})) {
    sign = VitalSign::kSpo2;
  } else if (In(code, {"8480-6", "150021", "150017", "150033", "150301"})) {
    sign = VitalSign::kSystolicBp;
  } else if (In(code, {"8867-4", "147842", "149530", "149546"})) {
    sign = VitalSign::kPulse;
  } else if (In(code, {"8310-5", "8331-1", "8332-9", "8328-7", "150344", "188448", "150364"})) {
    sign = VitalSign::kTemperature;
  } else if (code == "9269-2") {
    sign = VitalSign::kGcs;
  } else if (In(code, {"3151-8", "3150-0", "19994-3"})) {
    const std::optional<double> v = Number(value, value_text);
    if (!v) return out;
    out.sign = VitalSign::kOxygen;
    out.value = code == "3151-8" ? (*v > 0 ? 1 : 0) : (*v > 21 ? 1 : 0);
    return out;
  } else if (code == "80288-4" || code == "67775-7") {
    if (value_text.is_null) return out;
    const std::optional<Acvpu> level = ConsciousnessOf(format_internal::TrimBlanks(value_text.s));
    if (!level) return out;
    out.sign = VitalSign::kConsciousness;
    out.value = static_cast<double>(*level);
    return out;
  } else if (code == "NEWS2SCALE") {
    const std::optional<double> v = Number(value, value_text);
    if (!v || (*v != 1 && *v != 2)) return out;
    out.sign = VitalSign::kSpo2Scale;
    out.value = *v;
    return out;
  } else {
    return out;
  }
  const std::optional<double> v = Number(value, value_text);
  if (!v) return out;
  out.sign = sign;
  out.value = *v;
  if (sign == VitalSign::kTemperature &&
      In(unit, {"[degF]", "degF", "\xC2\xB0" "F", "F", "268224", "MDC_DIM_FAHR"})) {
    out.value = (*v - 32) * 5 / 9;
  }
  return out;
}

namespace {

enum class Score { kNews2, kQsofa };

// One function for both scores: the state and the batching are the same.
//
// State per patient, one value through the write-back cache: for each vital
// sign, [observed_at: 8][value: 8] (observed_at INT64_MIN: none).
class EarlyWarning final : public KeyedProcessFunction {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Create(Score score, const ProcessParams& params) {
    RETURN_IF_ERROR(params.CheckKnown({"max_age", "max_future"}));
    ASSIGN_OR_RETURN(int64_t max_age, params.GetDurationMs("max_age", 3'600'000));
    if (max_age <= 0) return ProcessParams::Error("max_age", "must be > 0");
    ASSIGN_OR_RETURN(int64_t max_future, params.GetDurationMs("max_future", 86'400'000));
    if (max_future < 0) return ProcessParams::Error("max_future", "must be >= 0");
    return std::unique_ptr<KeyedProcessFunction>(new EarlyWarning(score, max_age, max_future));
  }

  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const override {
    auto need = [&](std::string_view name, FieldType type, bool required) -> absl::StatusOr<int> {
      const int i = input.schema.IndexOf(name);
      if (i < 0) {
        if (!required) return -1;
        return absl::InvalidArgumentError(absl::StrCat(
            "the input has no field '", std::string(name), "' (", FieldTypeName(type),
            "); it takes observation rows, as the hl7v2 format makes them"));
      }
      if (input.schema.field(i).type != type) {
        return absl::InvalidArgumentError(absl::StrCat("the input's field '", std::string(name), "' is ",
                                                       FieldTypeName(input.schema.field(i).type), ", not ",
                                                       FieldTypeName(type)));
      }
      return i;
    };
    RETURN_IF_ERROR(need("code", FieldType::kString, true).status());
    RETURN_IF_ERROR(need("value", FieldType::kDouble, true).status());
    RETURN_IF_ERROR(need("value_text", FieldType::kString, true).status());
    RETURN_IF_ERROR(need("observed_at", FieldType::kTimestamp, true).status());
    RETURN_IF_ERROR(need("message_id", FieldType::kString, true).status());
    RETURN_IF_ERROR(need("unit", FieldType::kString, false).status());
    RETURN_IF_ERROR(need("status", FieldType::kString, false).status());
    ProcessOutputSchema out;
    out.AddKeyFields(input);
    out.schema.Add("message_id", FieldType::kString);
    out.schema.Add("observed_at", FieldType::kTimestamp);
    out.time_index = static_cast<int>(out.schema.size()) - 1;
    if (score_ == Score::kNews2) {
      for (const char* name : {"rr_score", "spo2_score", "air_o2_score", "sbp_score", "hr_score",
                               "consciousness_score", "temp_score", "news2_total"}) {
        out.schema.Add(name, FieldType::kInt);
      }
      out.schema.Add("red_score", FieldType::kBool);
      out.schema.Add("risk_band", FieldType::kString);
      out.schema.Add("spo2_scale", FieldType::kInt);
    } else {
      out.schema.Add("rr_ge_22", FieldType::kBool);
      out.schema.Add("altered_mentation", FieldType::kBool);
      out.schema.Add("sbp_le_100", FieldType::kBool);
      out.schema.Add("qsofa_total", FieldType::kInt);
      out.schema.Add("qsofa_positive", FieldType::kBool);
    }
    out.schema.Add("missing", FieldType::kInt);
    return out;
  }

  absl::Status Open(ProcessSetup& setup) override {
    const Schema& in = setup.input().schema;
    code_ = in.IndexOf("code");
    value_ = in.IndexOf("value");
    value_text_ = in.IndexOf("value_text");
    observed_at_ = in.IndexOf("observed_at");
    message_id_ = in.IndexOf("message_id");
    unit_ = in.IndexOf("unit");
    status_ = in.IndexOf("status");
    received_at_ = in.IndexOf("received_at");
    if (received_at_ >= 0 && in.field(received_at_).type != FieldType::kTimestamp) received_at_ = -1;
    last_ = in.IndexOf("last_in_message");
    if (last_ >= 0 && in.field(last_).type != FieldType::kBool) last_ = -1;
    keys_ = setup.input().key_fields.size();
    ValueStateDescriptor latest;
    latest.name = "latest";
    latest.write_back_cache = true;
    ASSIGN_OR_RETURN(state_, setup.GetValueState(latest));
    return absl::OkStatus();
  }

  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    if (in[message_id_].is_null) return absl::OkStatus();
    const bool last = last_ >= 0 && !in[last_].is_null && in[last_].i != 0;
    // A row that is no vital sign still ends its message when it is the last.
    auto skip = [&]() -> absl::Status {
      Pending* pending = last ? FindPending(ctx.current_key()) : nullptr;
      if (pending != nullptr && pending->open && pending->message_id == in[message_id_].s) {
        Emit(*pending, ctx);
        pending->open = false;
      }
      return absl::OkStatus();
    };
    if (in[code_].is_null || in[observed_at_].is_null) return skip();
    if (status_ >= 0 && !in[status_].is_null && (in[status_].s == "X" || in[status_].s == "W")) return skip();
    const VitalSignValue v =
        ClassifyVitalSign(in[code_].s, in[value_], in[value_text_], unit_ >= 0 && !in[unit_].is_null
                                                                         ? std::string_view(in[unit_].s)
                                                                         : std::string_view());
    if (v.sign == VitalSign::kNone) return skip();
    const int64_t t = in[observed_at_].i;
    // A time far after the message arrived (a mistyped year) would hold the
    // slot forever and make every other value stale: rejected.
    if (received_at_ >= 0 && !in[received_at_].is_null && t - in[received_at_].i > max_future_ms_) {
      ctx.EmitDeadLetter(in, absl::StrCat("observed_at is ", (t - in[received_at_].i) / 60'000,
                                          " minutes after received_at (max_future allows ", max_future_ms_ / 60'000,
                                          ")"));
      return absl::OkStatus();
    }
    // A row of another message for this patient: that message is complete.
    Pending* pending = FindPending(ctx.current_key());
    if (pending != nullptr && pending->open && pending->message_id != in[message_id_].s) {
      Emit(*pending, ctx);
      pending->open = false;
    }
    RETURN_IF_ERROR(Load());
    Slot& slot = slots_[static_cast<int>(v.sign)];
    if (slot.time == INT64_MIN || t >= slot.time) {
      slot.time = t;
      slot.value = v.value;
      RETURN_IF_ERROR(Store());
    }
    if (pending == nullptr) pending = AddPending(ctx);
    pending->open = true;
    pending->message_id = in[message_id_].s;
    pending->observed_at = t;
    ScoreInto(pending);
    if (last) {
      Emit(*pending, ctx);
      pending->open = false;
    }
    return absl::OkStatus();
  }

  absl::Status FinishBatch(ProcessContext& ctx) override {
    // Without last_in_message, a batch's end is taken as its messages' end.
    if (last_ < 0) {
      for (size_t i = 0; i < used_; ++i) {
        if (pending_[i].open) Emit(pending_[i], ctx);
        pending_[i].open = false;
      }
    }
    // Keep the messages still open (their last row is to come), in order.
    index_.clear();
    size_t kept = 0;
    for (size_t i = 0; i < used_; ++i) {
      if (!pending_[i].open) continue;
      if (kept != i) std::swap(pending_[kept], pending_[i]);
      index_.emplace(pending_[kept].key_bytes, kept);
      ++kept;
    }
    used_ = kept;
    return absl::OkStatus();
  }

 private:
  struct Slot {
    int64_t time = INT64_MIN;
    double value = 0;
  };
  struct Pending {
    bool open = false;
    std::string key_bytes;  // the encoded key, as ctx.current_key()
    Row key;
    std::string message_id;
    int64_t observed_at = 0;
    News2Score news2;
    QsofaScore qsofa;
    bool scale2 = false;
  };

  EarlyWarning(Score score, int64_t max_age_ms, int64_t max_future_ms)
      : score_(score), max_age_ms_(max_age_ms), max_future_ms_(max_future_ms) {}

  Pending* FindPending(std::string_view key) {
    auto it = index_.find(AV(key));
    return it == index_.end() ? nullptr : &pending_[it->second];
  }
  // A slot for the current key's message; the key is set once, here, not
  // per row.
  Pending* AddPending(ProcessContext& ctx) {
    if (used_ == pending_.size()) pending_.emplace_back();
    Pending& p = pending_[used_];
    p.key_bytes.assign(ctx.current_key().data(), ctx.current_key().size());
    index_.emplace(p.key_bytes, used_);
    const Row& key_row = ctx.key_row();
    p.key.resize(keys_);
    for (size_t k = 0; k < keys_; ++k) p.key[k] = key_row[k];
    return &pending_[used_++];
  }

  absl::Status Load() {
    ASSIGN_OR_RETURN(StateLookup r, state_->Get("", &buf_));
    for (Slot& s : slots_) s = Slot();
    if (r == StateLookup::kAbsent) return absl::OkStatus();
    if (buf_.size() != sizeof(slots_)) return absl::DataLossError("news2: corrupt state");
    std::memcpy(slots_, buf_.data(), sizeof(slots_));
    return absl::OkStatus();
  }

  absl::Status Store() {
    buf_.assign(reinterpret_cast<const char*>(slots_), sizeof(slots_));
    return state_->Put("", buf_);
  }

  // The score of the values in slots_ that are fresh.
  void ScoreInto(Pending* p) const {
    // The patient's newest measurement; the scale is a standing order, not
    // a measurement, and does not count.
    int64_t newest = INT64_MIN;
    for (int i = 0; i < kVitalSigns; ++i) {
      if (i != static_cast<int>(VitalSign::kSpo2Scale)) newest = std::max(newest, slots_[i].time);
    }
    auto fresh = [&](VitalSign sign) -> std::optional<double> {
      const Slot& s = slots_[static_cast<int>(sign)];
      if (s.time == INT64_MIN || newest - s.time > max_age_ms_) return std::nullopt;
      return s.value;
    };
    VitalSigns v;
    v.respiration_rate = fresh(VitalSign::kRespirationRate);
    v.spo2 = fresh(VitalSign::kSpo2);
    if (std::optional<double> o = fresh(VitalSign::kOxygen)) v.on_oxygen = *o != 0;
    v.systolic_bp = fresh(VitalSign::kSystolicBp);
    v.pulse = fresh(VitalSign::kPulse);
    if (std::optional<double> c = fresh(VitalSign::kConsciousness)) v.consciousness = static_cast<Acvpu>(*c);
    v.temperature = fresh(VitalSign::kTemperature);
    // The scale is a standing order, not a measurement: it does not age.
    const Slot& scale = slots_[static_cast<int>(VitalSign::kSpo2Scale)];
    v.spo2_scale2 = scale.time != INT64_MIN && scale.value == 2;
    p->scale2 = v.spo2_scale2;
    p->news2 = ScoreNews2(v);
    p->qsofa = ScoreQsofa(v, fresh(VitalSign::kGcs));
  }

  void Emit(const Pending& p, ProcessContext& ctx) {
    Row& out = ctx.Emit();
    size_t f = 0;
    for (; f < keys_; ++f) out[f] = p.key[f];
    out[f++].SetString(p.message_id);
    out[f++].SetInt(p.observed_at);
    if (score_ == Score::kNews2) {
      const News2Score& s = p.news2;
      for (int sub : {s.respiration_rate, s.spo2, s.air_or_oxygen, s.systolic_bp, s.pulse, s.consciousness,
                      s.temperature, s.total}) {
        out[f++].SetInt(sub);
      }
      out[f++].SetBool(s.red);
      out[f++].SetString(News2RiskName(s.risk));
      out[f++].SetInt(p.scale2 ? 2 : 1);
      out[f++].SetInt(s.missing);
    } else {
      const QsofaScore& q = p.qsofa;
      out[f++].SetBool(q.respiration_rate);
      out[f++].SetBool(q.altered_mentation);
      out[f++].SetBool(q.systolic_bp);
      out[f++].SetInt(q.total);
      out[f++].SetBool(q.positive);
      out[f++].SetInt(q.missing);
    }
  }

  const Score score_;
  const int64_t max_age_ms_;
  const int64_t max_future_ms_;
  int code_ = -1, value_ = -1, value_text_ = -1, observed_at_ = -1, message_id_ = -1, unit_ = -1, status_ = -1;
  int last_ = -1;         // last_in_message, -1: the input has none
  int received_at_ = -1;  // -1: the input has none
  size_t keys_ = 0;
  ValueState* state_ = nullptr;
  Slot slots_[kVitalSigns];
  std::string buf_;
  // The messages being scored, one per patient, in order of their first
  // row: those of the current batch, and those whose last row has not come
  // yet (with last_in_message). Slots are reused.
  std::vector<Pending> pending_;
  size_t used_ = 0;
  absl::flat_hash_map<std::string, size_t> index_;
};

}  // namespace

void RegisterEarlyWarningFunctions(ProcessFunctionRegistry& registry) {
  (void)registry.Register("news2", [](const ProcessParams& params) {
    return EarlyWarning::Create(Score::kNews2, params);
  });
  (void)registry.Register("qsofa", [](const ProcessParams& params) {
    return EarlyWarning::Create(Score::kQsofa, params);
  });
}

}  // namespace vstream
