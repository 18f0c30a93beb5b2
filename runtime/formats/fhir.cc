#include "runtime/formats/fhir.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/formats/format_util.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/formats/json_format.h"

namespace vstream {

namespace {

absl::Status Error(std::string_view where, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AV(where), ": ", AV(what)));
}

void SetText(Datum* d, std::string_view text) {
  if (text.empty()) {
    d->SetNull();
  } else {
    d->SetString(text);
  }
}

std::string_view SystemName(std::string_view system) {
  if (system == "http://loinc.org") return "LN";
  if (system == "http://snomed.info/sct") return "SCT";
  if (system == "urn:iso:std:iso:11073:10101") return "MDC";
  return system;
}

// The coding of a CodeableConcept that names it: the first LOINC one, else
// the first; null if none.
const JsonValue* MainCoding(const JsonValue& cc) {
  const JsonValue* codings = cc.Find("coding");
  if (codings == nullptr || !codings->is_array() || codings->items.empty()) return nullptr;
  for (const JsonValue& c : codings->items) {
    if (c.String("system") == "http://loinc.org") return &c;
  }
  return &codings->items.front();
}

std::string_view HL7Status(std::string_view status) {
  if (status == "final") return "F";
  if (status == "preliminary") return "P";
  if (status == "amended" || status == "corrected") return "C";
  if (status == "cancelled") return "X";
  if (status == "entered-in-error") return "W";
  if (status == "registered") return "I";
  return "";
}

// The value[x] of an Observation or component into the row's value fields.
absl::Status SetValue(const JsonValue& holder, std::string_view where, Row& row) {
  row[kObsValueType].SetNull();
  row[kObsValue].SetNull();
  row[kObsValueText].SetNull();
  row[kObsUnit].SetNull();
  for (const JsonMember& member : holder.members) {
    const std::string& key = member.key;
    const JsonValue& v = member.value;
    if (key.size() <= 5 || key.compare(0, 5, "value") != 0) continue;
    std::string_view type = std::string_view(key).substr(5);
    const bool primitive = type == "String" || type == "Boolean" || type == "Integer" || type == "Time" ||
                           type == "DateTime";
    row[kObsValueType].SetString(type);
    if (primitive) row[kObsValueType].s[0] = static_cast<char>(row[kObsValueType].s[0] - 'A' + 'a');
    auto bad = [&](std::string_view expected) {
      return Error(where, absl::StrCat(key, ": expected ", AV(expected)));
    };
    if (type == "Quantity") {
      if (!v.is_object()) return bad("an object");
      if (const JsonValue* n = v.Find("value")) {
        if (!n->is_number()) return bad("a number in value");
        row[kObsValue].SetDouble(n->number);
      }
      const std::string_view code = v.String("code");
      SetText(&row[kObsUnit], code.empty() ? v.String("unit") : code);
    } else if (type == "CodeableConcept") {
      if (!v.is_object()) return bad("an object");
      const JsonValue* coding = MainCoding(v);
      SetText(&row[kObsValueText], coding != nullptr ? coding->String("code") : v.String("text"));
    } else if (type == "String" || type == "DateTime" || type == "Time") {
      if (!v.is_string()) return bad("a string");
      SetText(&row[kObsValueText], v.text);
    } else if (type == "Integer") {
      if (!v.is_number() || v.number != std::floor(v.number)) return bad("an integer");
      row[kObsValue].SetDouble(v.number);
    } else if (type == "Boolean") {
      if (v.type != JsonValue::Type::kBool) return bad("true or false");
      row[kObsValueText].SetString(v.boolean ? "true" : "false");
    }
    return absl::OkStatus();
  }
  if (const JsonValue* absent = holder.Find("dataAbsentReason")) {
    if (!absent->is_object()) return Error(where, "dataAbsentReason: expected an object");
    row[kObsValueType].SetString("dataAbsentReason");
    const JsonValue* coding = MainCoding(*absent);
    SetText(&row[kObsValueText], coding != nullptr ? coding->String("code") : absent->String("text"));
  }
  return absl::OkStatus();
}

absl::Status SetCode(const JsonValue& holder, std::string_view where, Row& row) {
  const JsonValue* code = holder.Find("code");
  if (code == nullptr || !code->is_object()) return Error(where, "code: expected a CodeableConcept (it is required)");
  const JsonValue* coding = MainCoding(*code);
  if (coding != nullptr) {
    SetText(&row[kObsCode], coding->String("code"));
    SetText(&row[kObsCodeSystem], SystemName(coding->String("system")));
    const std::string_view display = coding->String("display");
    SetText(&row[kObsCodeText], display.empty() ? code->String("text") : display);
  } else {
    row[kObsCode].SetNull();
    row[kObsCodeSystem].SetNull();
    SetText(&row[kObsCodeText], code->String("text"));
  }
  return absl::OkStatus();
}

// The Bundle entry whose resource `reference` names; null if none.
const JsonValue* Resolve(const JsonValue* bundle, std::string_view reference) {
  if (bundle == nullptr || reference.empty()) return nullptr;
  const JsonValue* entries = bundle->Find("entry");
  if (entries == nullptr || !entries->is_array()) return nullptr;
  for (const JsonValue& e : entries->items) {
    const JsonValue* r = e.Find("resource");
    if (r == nullptr) continue;
    if (e.String("fullUrl") == reference) return r;
    const std::string_view type = r->String("resourceType"), id = r->String("id");
    if (!id.empty() && reference.size() == type.size() + 1 + id.size() && reference.substr(0, type.size()) == type &&
        reference[type.size()] == '/' && reference.substr(type.size() + 1) == id) {
      return r;
    }
  }
  return nullptr;
}

// The patient of an Observation (empty views: none), resolved once per
// Observation; the views point into the document.
struct Patient {
  std::string_view id, authority;
};
Patient FindPatient(const JsonValue& obs, const JsonValue* bundle) {
  const JsonValue* subject = obs.Find("subject");
  if (subject == nullptr || !subject->is_object()) return {};
  const JsonValue* identifier = subject->Find("identifier");
  const std::string_view reference = subject->String("reference");
  if (const JsonValue* patient = Resolve(bundle, reference)) {
    const JsonValue* ids = patient->Find("identifier");
    if (ids != nullptr && ids->is_array() && !ids->items.empty()) {
      identifier = &ids->items.front();
    } else if (!patient->String("id").empty()) {
      return {patient->String("id"), {}};
    }
  }
  if (identifier != nullptr && identifier->is_object() && !identifier->String("value").empty()) {
    return {identifier->String("value"), identifier->String("system")};
  }
  const size_t slash = reference.rfind('/');
  return {slash == std::string_view::npos ? reference : reference.substr(slash + 1), {}};
}

}  // namespace

absl::Status ParseFhirDateTime(std::string_view text, int64_t* out_ms) {
  auto bad = [&] { return absl::InvalidArgumentError(absl::StrCat("'", AV(text), "' is not a FHIR dateTime")); };
  size_t pos = 0;
  auto number = [&](size_t digits, int* out) {
    if (pos + digits > text.size()) return false;
    int v = 0;
    for (size_t i = 0; i < digits; ++i) {
      const char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos += digits;
    *out = v;
    return true;
  };
  auto expect = [&](char c) {
    if (pos < text.size() && text[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  };
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0, millis = 0;
  if (!number(4, &year) || year == 0) return bad();
  if (expect('-')) {
    if (!number(2, &month) || month < 1 || month > 12) return bad();
    if (expect('-')) {
      static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
      const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
      if (!number(2, &day) || day < 1 || day > kDays[month - 1] || (month == 2 && day == 29 && !leap)) return bad();
      if (expect('T')) {
        // A time has seconds and a zone (FHIR dateTime); both are required.
        if (!number(2, &hour) || hour > 23 || !expect(':') || !number(2, &minute) || minute > 59) return bad();
        if (!expect(':')) return bad();
        {
          if (!number(2, &second) || second > 60) return bad();
          if (second == 60) second = 59;  // a leap second
          if (expect('.')) {
            int digits = 0, frac = 0;
            while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
              if (digits < 3) frac = frac * 10 + (text[pos] - '0');
              ++digits;
              ++pos;
            }
            if (digits == 0) return bad();
            for (int d = digits; d < 3; ++d) frac *= 10;
            millis = frac;
          }
        }
        int offset_minutes = 0;
        if (expect('Z')) {
        } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
          const int sign = text[pos++] == '-' ? -1 : 1;
          int oh = 0, om = 0;
          if (!number(2, &oh) || !expect(':') || !number(2, &om) || om > 59 || oh * 60 + om > 14 * 60) return bad();
          offset_minutes = sign * (oh * 60 + om);
        } else {
          return bad();  // no zone
        }
        minute -= offset_minutes;
      }
    }
  }
  if (pos != text.size()) return bad();
  *out_ms = ((DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 24 + hour) * 60 +
             minute) * 60000 + second * 1000 + millis;
  return absl::OkStatus();
}

FhirRowExtractor::FhirRowExtractor() : schema_(Hl7ObservationSchema()) {}

absl::Status FhirRowExtractor::Append(const JsonValue& document, int64_t now_ms, RowBatch* rows, int* skipped) {
  const size_t before = rows->size();
  set_open_ = false;
  if (!document.is_object()) return absl::InvalidArgumentError("the document is no JSON object (a FHIR resource)");
  const std::string_view type = document.String("resourceType");
  if (type.empty()) return absl::InvalidArgumentError("the document has no resourceType");
  message_type_.assign(type);
  absl::Status s;
  if (type == "Observation") {
    s = AppendObservation(document, nullptr, "Observation", nullptr, now_ms, rows);
  } else if (type == "Bundle") {
    const JsonValue* entries = document.Find("entry");
    if (entries != nullptr && !entries->is_array()) s = absl::InvalidArgumentError("Bundle.entry: expected an array");
    for (size_t i = 0; s.ok() && entries != nullptr && i < entries->items.size(); ++i) {
      const JsonValue& entry = entries->items[i];
      const JsonValue* resource = entry.Find("resource");
      if (!entry.is_object() || (resource != nullptr && !resource->is_object())) {
        s = absl::InvalidArgumentError(absl::StrCat("entry ", i + 1, ": expected an object with an object resource"));
      } else if (resource != nullptr && resource->String("resourceType") == "Observation") {
        s = AppendObservation(*resource, &entry, absl::StrCat("entry ", i + 1, " (Observation)"), &document, now_ms,
                              rows);
      } else {
        ++*skipped;
      }
    }
  } else {
    ++*skipped;
  }
  if (!s.ok()) {
    rows->Truncate(before);
    set_open_ = false;
    return s;
  }
  if (set_open_) (*rows)[set_last_row_][kObsLastInMessage].SetBool(true);
  set_open_ = false;
  return absl::OkStatus();
}

absl::Status FhirRowExtractor::AppendObservation(const JsonValue& obs, const JsonValue* entry, std::string_view where,
                                                 const JsonValue* bundle, int64_t now_ms, RowBatch* rows) {
  // When it was observed.
  std::string_view effective_name;
  const JsonValue* effective = nullptr;
  for (std::string_view name : {"effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued"}) {
    if ((effective = obs.Find(name)) != nullptr) {
      effective_name = name;
      break;
    }
  }
  if (effective != nullptr && effective_name == "effectivePeriod") {
    if (!effective->is_object()) return Error(where, "effectivePeriod: expected an object");
    effective = effective->Find("start");
    effective_name = "effectivePeriod.start";
  }
  int64_t observed_at = 0;
  const bool has_time = effective != nullptr;
  if (has_time) {
    if (!effective->is_string()) return Error(where, absl::StrCat(AV(effective_name), ": expected a string"));
    if (absl::Status s = ParseFhirDateTime(effective->text, &observed_at); !s.ok()) {
      return Error(where, absl::StrCat(AV(effective_name), ": ", s.message()));
    }
  }
  // The observation set it belongs to.
  const JsonValue* subject = obs.Find("subject");
  std::string key = subject != nullptr ? std::string(subject->String("reference")) : std::string();
  if (subject != nullptr && key.empty()) {
    if (const JsonValue* id = subject->Find("identifier")) key = absl::StrCat(AV(id->String("system")), "|", AV(id->String("value")));
  }
  absl::StrAppend(&key, "@", has_time ? effective->text : std::string());
  if (bundle == nullptr || !set_open_ || key != set_key_) {
    if (set_open_) (*rows)[set_last_row_][kObsLastInMessage].SetBool(true);
    std::string_view id = obs.String("id");
    if (id.empty() && entry != nullptr) id = entry->String("fullUrl");
    if (id.empty()) {
      if (const JsonValue* ids = obs.Find("identifier"); ids != nullptr && ids->is_array() && !ids->items.empty()) {
        id = ids->items.front().String("value");
      }
    }
    if (id.empty()) return Error(where, "no id, fullUrl or identifier to name its rows by (message_id)");
    set_key_ = std::move(key);
    set_message_id_.assign(id);
    set_rows_ = 0;
    set_open_ = true;
  }

  const Patient patient = FindPatient(obs, bundle);
  auto begin_row = [&](int component) -> Row& {
    set_last_row_ = rows->size();
    Row& row = rows->Append();
    row[kObsMessageId].SetString(set_message_id_);
    row[kObsSetId].SetInt(++set_rows_);
    if (component > 0) {
      row[kObsSubId].SetString(std::to_string(component));
    } else {
      row[kObsSubId].SetNull();
    }
    row[kObsMessageType].SetString(message_type_);
    row[kObsSendingFacility].SetNull();
    SetText(&row[kObsPatientId], patient.id);
    SetText(&row[kObsPatientAuthority], patient.authority);
    SetText(&row[kObsStatus], HL7Status(obs.String("status")));
    if (has_time) {
      row[kObsObservedAt].SetInt(observed_at);
    } else {
      row[kObsObservedAt].SetNull();
    }
    row[kObsDevice].SetNull();
    if (const JsonValue* device = obs.Find("device"); device != nullptr && device->is_object()) {
      const std::string_view ref = device->String("reference");
      SetText(&row[kObsDevice], ref.empty() ? device->String("display") : ref);
    }
    row[kObsReceivedAt].SetInt(now_ms);
    row[kObsLastInMessage].SetBool(false);
    return row;
  };

  const JsonValue* components = obs.Find("component");
  if (components != nullptr && !components->is_array()) return Error(where, "component: expected an array");
  bool own_value = components == nullptr || components->items.empty() || obs.Find("dataAbsentReason") != nullptr;
  for (const JsonMember& m : obs.members) own_value |= m.key.size() > 5 && m.key.compare(0, 5, "value") == 0;
  if (own_value) {
    Row& row = begin_row(0);
    RETURN_IF_ERROR(SetCode(obs, where, row));
    RETURN_IF_ERROR(SetValue(obs, where, row));
  }
  for (size_t c = 0; components != nullptr && c < components->items.size(); ++c) {
    const JsonValue& comp = components->items[c];
    const std::string at = absl::StrCat(AV(where), ": component ", c + 1);
    if (!comp.is_object()) return Error(at, "expected an object");
    Row& row = begin_row(static_cast<int>(c + 1));
    RETURN_IF_ERROR(SetCode(comp, at, row));
    RETURN_IF_ERROR(SetValue(comp, at, row));
  }
  return absl::OkStatus();
}

namespace {

struct SubScore {
  const char* field;
  const char* code;  // SNOMED CT (UK); "" when none is known
  const char* display;
};

constexpr SubScore kNews2SubScores[] = {
    {"rr_score", "1104301000000104", "NEWS2 - respiration rate score"},
    {"spo2_score", "1104311000000102", "NEWS2 - oxygen saturation scale 1 score"},
    {"air_o2_score", "1104331000000105", "NEWS2 - air or oxygen score"},
    {"sbp_score", "1104341000000101", "NEWS2 - systolic blood pressure score"},
    {"hr_score", "1104351000000103", "NEWS2 - pulse score"},
    {"consciousness_score", "1104361000000100", "NEWS2 - consciousness score"},
    {"temp_score", "1104371000000107", "NEWS2 - temperature score"},
};

constexpr const char* kQsofaCriteria[] = {"rr_ge_22", "altered_mentation", "sbp_le_100"};

class FhirObservationWriter final : public RecordWriter {
 public:
  explicit FhirObservationWriter(const Schema& schema) : news2_(schema.IndexOf("news2_total") >= 0) {
    message_id_ = schema.IndexOf("message_id");
    observed_at_ = schema.IndexOf("observed_at");
    patient_id_ = schema.IndexOf("patient_id");
    total_ = schema.IndexOf(news2_ ? "news2_total" : "qsofa_total");
    band_ = schema.IndexOf("risk_band");
    red_ = schema.IndexOf("red_score");
    scale_ = schema.IndexOf("spo2_scale");
    if (news2_) {
      for (const SubScore& s : kNews2SubScores) parts_.push_back(schema.IndexOf(s.field));
    } else {
      for (const char* c : kQsofaCriteria) parts_.push_back(schema.IndexOf(c));
    }
  }

  std::string Header() const override { return ""; }

  void Write(const Row& row, std::string* out) override {
    const char* kind = news2_ ? "news2" : "qsofa";
    out->append(R"({"resourceType":"Observation","id":")");
    out->append(kind);
    out->push_back('-');
    const std::string_view message_id = row[message_id_].is_null ? std::string_view() : row[message_id_].s;
    // FHIR ids are [A-Za-z0-9-.]{1,64}: other characters become '-', and an
    // id that had to change gets a hash of the original, so that two
    // message ids never give one resource id.
    bool changed = message_id.size() > 40;
    for (size_t i = 0; i < message_id.size() && i < 40; ++i) {
      const char c = message_id[i];
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
      changed |= !ok;
      out->push_back(ok ? c : '-');
    }
    if (changed) {
      char hex[18];
      std::snprintf(hex, sizeof(hex), "-%016llx", static_cast<unsigned long long>(Fnv1a64(message_id)));
      out->append(hex, 17);
    }
    out->append(R"(","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"survey","display":"Survey"}]}],"code":)");
    if (news2_) {
      out->append(R"({"coding":[{"system":"http://snomed.info/sct","code":"1104051000000101","display":"Royal College of Physicians NEWS2 (National Early Warning Score 2) total score"}]})");
    } else {
      out->append(R"({"text":"qSOFA score"})");
    }
    if (patient_id_ >= 0 && !row[patient_id_].is_null) {
      out->append(R"(,"subject":{"identifier":{"value":)");
      AppendJsonString(row[patient_id_].s, out);
      out->append("}}");
    }
    if (!row[observed_at_].is_null) {
      out->append(R"(,"effectiveDateTime":")");
      AppendTimestamp(row[observed_at_].i, out);
      out->push_back('"');
    }
    if (!row[total_].is_null) {
      out->append(R"(,"valueInteger":)");
      format_internal::AppendInt64(row[total_].i, out);
    }
    if (news2_ && band_ >= 0 && !row[band_].is_null) {
      out->append(R"(,"interpretation":[{"text":)");
      std::string text = "clinical risk: " + row[band_].s;
      if (red_ >= 0 && !row[red_].is_null && row[red_].i != 0) text += " (red score)";
      AppendJsonString(text, out);
      out->append("}]");
    }
    if (!message_id.empty()) {
      out->append(R"(,"derivedFrom":[{)");
      const bool reference = message_id.find(':') != std::string_view::npos ||
                             message_id.substr(0, 12) == "Observation/";
      out->append(reference ? R"("reference":)" : R"("type":"Observation","identifier":{"value":)");
      AppendJsonString(message_id, out);
      out->append(reference ? "}]" : "}}]");
    }
    out->append(R"(,"component":[)");
    for (size_t i = 0; i < parts_.size(); ++i) {
      if (i > 0) out->push_back(',');
      const Datum* d = parts_[i] >= 0 ? &row[parts_[i]] : nullptr;
      if (news2_) {
        const SubScore& s = kNews2SubScores[i];
        const bool scale2 = i == 1 && scale_ >= 0 && !row[scale_].is_null && row[scale_].i == 2;
        if (scale2) {
          out->append(R"({"code":{"text":"NEWS2 - oxygen saturation scale 2 score"})");
        } else {
          out->append(R"({"code":{"coding":[{"system":"http://snomed.info/sct","code":")");
          out->append(s.code);
          out->append(R"(","display":")");
          out->append(s.display);
          out->append(R"("}]})");
        }
        if (d == nullptr || d->is_null) {
          out->append(R"(,"dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"unknown"}]}})");
        } else {
          out->append(R"(,"valueInteger":)");
          format_internal::AppendInt64(d->i, out);
          out->push_back('}');
        }
      } else {
        out->append(R"({"code":{"text":")");
        out->append(kQsofaCriteria[i]);
        out->append("\"}");
        if (d == nullptr || d->is_null) {
          out->append(R"(,"dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"unknown"}]}})");
        } else {
          out->append(d->i != 0 ? R"(,"valueBoolean":true})" : R"(,"valueBoolean":false})");
        }
      }
    }
    out->append("]}\n");
  }

 private:
  const bool news2_;
  int message_id_ = -1, observed_at_ = -1, patient_id_ = -1, total_ = -1, band_ = -1, red_ = -1, scale_ = -1;
  std::vector<int> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RecordWriter>> CreateFhirObservationWriter(const Schema& schema) {
  auto has = [&](const char* name, FieldType type) {
    const int i = schema.IndexOf(name);
    return i >= 0 && schema.field(static_cast<size_t>(i)).type == type;
  };
  const bool news2 = has("news2_total", FieldType::kInt);
  const bool qsofa = has("qsofa_total", FieldType::kInt);
  if ((!news2 && !qsofa) || !has("message_id", FieldType::kString) || !has("observed_at", FieldType::kTimestamp)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "format fhir writes the rows of a news2 or qsofa operator (message_id, observed_at, news2_total or "
        "qsofa_total, ...), not ",
        schema.DebugString()));
  }
  return std::unique_ptr<RecordWriter>(new FhirObservationWriter(schema));
}

}  // namespace vstream
