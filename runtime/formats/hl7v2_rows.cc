#include "runtime/formats/hl7v2_rows.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "runtime/formats/format_util.h"

namespace vstream {

namespace {

using format_internal::NumberParse;
using format_internal::ParseDouble;
using format_internal::ParseInt64;
using format_internal::TrimBlanks;

enum AdmissionField : int {
  kAdmMessageId,
  kAdmMessageType,
  kAdmSendingFacility,
  kAdmEvent,
  kAdmEventAt,
  kAdmPatientId,
  kAdmPatientAuthority,
  kAdmPriorPatientId,
  kAdmLocation,
  kAdmVisitId,
  kAdmPatientClass,
  kAdmReceivedAt,
  kAdmFields,
};

bool IsAdmissionEvent(std::string_view e) {
  return e == "A01" || e == "A02" || e == "A03" || e == "A08" || e == "A11" || e == "A13" || e == "A40";
}

bool IsCoded(std::string_view type) { return type == "CE" || type == "CWE" || type == "CNE" || type == "CF"; }

absl::Status FieldError(const Hl7Message& msg, int segment, int field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", msg.line(segment), ": ", AV(msg.segment_id(segment)), "-",
                                                  field, ": ", AV(what)));
}

}  // namespace

Schema Hl7ObservationSchema() {
  return Schema({{"message_id", FieldType::kString},
                 {"set_id", FieldType::kInt},
                 {"sub_id", FieldType::kString},
                 {"message_type", FieldType::kString},
                 {"sending_facility", FieldType::kString},
                 {"patient_id", FieldType::kString},
                 {"patient_id_authority", FieldType::kString},
                 {"code", FieldType::kString},
                 {"code_system", FieldType::kString},
                 {"code_text", FieldType::kString},
                 {"value_type", FieldType::kString},
                 {"value", FieldType::kDouble},
                 {"value_text", FieldType::kString},
                 {"unit", FieldType::kString},
                 {"status", FieldType::kString},
                 {"observed_at", FieldType::kTimestamp},
                 {"device", FieldType::kString},
                 {"received_at", FieldType::kTimestamp},
                 {"last_in_message", FieldType::kBool}});
}

Schema Hl7AdmissionSchema() {
  return Schema({{"message_id", FieldType::kString},
                 {"message_type", FieldType::kString},
                 {"sending_facility", FieldType::kString},
                 {"event", FieldType::kString},
                 {"event_at", FieldType::kTimestamp},
                 {"patient_id", FieldType::kString},
                 {"patient_id_authority", FieldType::kString},
                 {"prior_patient_id", FieldType::kString},
                 {"location", FieldType::kString},
                 {"visit_id", FieldType::kString},
                 {"patient_class", FieldType::kString},
                 {"received_at", FieldType::kTimestamp}});
}

Hl7RowExtractor::Hl7RowExtractor(Hl7Rows kind, Hl7RowsOptions options)
    : kind_(kind),
      options_(options),
      schema_(kind == Hl7Rows::kObservations ? Hl7ObservationSchema() : Hl7AdmissionSchema()) {}

absl::Status Hl7RowExtractor::SetText(const Hl7Message& msg, int segment, int field, std::string_view raw,
                                      Datum* datum) {
  if (raw.empty() || Hl7Message::IsExplicitNull(raw)) {
    datum->SetNull();
    return absl::OkStatus();
  }
  if (absl::Status s = msg.Unescape(raw, &datum->s); !s.ok()) return FieldError(msg, segment, field, std::string_view(s.message().data(), s.message().size()));
  datum->is_null = datum->s.empty();
  return absl::OkStatus();
}

absl::Status Hl7RowExtractor::SetTime(const Hl7Message& msg, int segment, int field, Datum* datum) {
  const std::string_view raw = TrimBlanks(msg.Get(segment, field, 1));
  int64_t ms = 0;
  if (absl::Status s = ParseHl7Timestamp(raw, options_.default_offset_minutes, &ms); !s.ok()) {
    return FieldError(msg, segment, field, std::string_view(s.message().data(), s.message().size()));
  }
  datum->SetInt(ms);
  return absl::OkStatus();
}

absl::Status Hl7RowExtractor::Append(const Hl7Message& msg, int64_t received_at_ms, RowBatch* batch,
                                     bool* skipped) {
  *skipped = false;
  const std::string_view type = msg.Get(0, 9, 1);
  const std::string_view event = msg.Get(0, 9, 2);
  const size_t before = batch->size();
  absl::Status s;
  if (kind_ == Hl7Rows::kObservations && type == "ORU") {
    s = AppendObservations(msg, received_at_ms, batch);
  } else if (kind_ == Hl7Rows::kAdmissions && type == "ADT" &&
             IsAdmissionEvent(event.empty() ? msg.Get(msg.Find("EVN"), 1) : event)) {
    s = AppendAdmission(msg, received_at_ms, batch);
  } else {
    *skipped = true;
    return absl::OkStatus();
  }
  if (!s.ok()) batch->Truncate(before);
  return s;
}

absl::Status Hl7RowExtractor::AppendObservations(const Hl7Message& msg, int64_t received_at_ms, RowBatch* batch) {
  const std::string_view message_id = msg.Field(0, 10);
  if (message_id.empty()) return FieldError(msg, 0, 10, "the message control id is empty");
  int pid = -1;
  int obr = -1;
  int64_t ordinal = 0;  // of the OBX in the message
  const size_t first_row = batch->size();
  for (int seg = 1; seg < msg.segment_count(); ++seg) {
    const std::string_view id = msg.segment_id(seg);
    if (id == "PID") {
      pid = seg;
      if (TrimBlanks(msg.Get(pid, 3, 1)).empty() || Hl7Message::IsExplicitNull(msg.Get(pid, 3, 1))) {
        return FieldError(msg, pid, 3, "no patient identifier in the first repetition");
      }
      continue;
    }
    if (id == "OBR") {
      obr = seg;
      continue;
    }
    if (id != "OBX") continue;
    if (pid < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", msg.line(seg), ": OBX before any PID (the observation has no patient)"));
    }
    Row& row = batch->Append();
    RETURN_IF_ERROR(SetText(msg, 0, 10, message_id, &row[kObsMessageId]));
    ++ordinal;
    const std::string_view set_id = TrimBlanks(msg.Field(seg, 1));
    if (set_id.empty()) {
      row[kObsSetId].SetInt(ordinal);  // the OBX's place, so that [message_id, set_id] stays a key
    } else {
      int64_t n = 0;
      if (ParseInt64(set_id, &n) != NumberParse::kOk) {
        return FieldError(msg, seg, 1, absl::StrCat("the set id '", format_internal::Abbreviate(set_id),
                                                   "' is not a whole number"));
      }
      row[kObsSetId].SetInt(n);
    }
    RETURN_IF_ERROR(SetText(msg, seg, 4, TrimBlanks(msg.Field(seg, 4)), &row[kObsSubId]));
    Datum& type = row[kObsMessageType];
    type.is_null = false;
    type.s.assign(msg.Get(0, 9, 1).data(), msg.Get(0, 9, 1).size());
    if (!msg.Get(0, 9, 2).empty()) {
      type.s.push_back('^');
      type.s.append(msg.Get(0, 9, 2).data(), msg.Get(0, 9, 2).size());
    }
    RETURN_IF_ERROR(SetText(msg, 0, 4, msg.Get(0, 4, 1), &row[kObsSendingFacility]));
    RETURN_IF_ERROR(SetText(msg, pid, 3, msg.Get(pid, 3, 1), &row[kObsPatientId]));
    RETURN_IF_ERROR(SetText(msg, pid, 3, msg.Get(pid, 3, 4, 1), &row[kObsPatientAuthority]));
    RETURN_IF_ERROR(SetText(msg, seg, 3, msg.Get(seg, 3, 1), &row[kObsCode]));
    RETURN_IF_ERROR(SetText(msg, seg, 3, msg.Get(seg, 3, 3), &row[kObsCodeSystem]));
    RETURN_IF_ERROR(SetText(msg, seg, 3, msg.Get(seg, 3, 2), &row[kObsCodeText]));
    const std::string_view value_type = TrimBlanks(msg.Field(seg, 2));
    RETURN_IF_ERROR(SetText(msg, seg, 2, value_type, &row[kObsValueType]));

    // The value: the first repetition of OBX-5.
    const std::string_view value = msg.Get(seg, 5, 0, 0, 1);
    Datum& number = row[kObsValue];
    Datum& text = row[kObsValueText];
    number.SetNull();
    if (value_type == "NM") {
      RETURN_IF_ERROR(SetText(msg, seg, 5, value, &text));
      const std::string_view trimmed = TrimBlanks(text.s);
      if (!text.is_null && !trimmed.empty()) {
        double d = 0;
        if (ParseDouble(trimmed, &d) != NumberParse::kOk) {
          return FieldError(msg, seg, 5, absl::StrCat("'", format_internal::Abbreviate(trimmed),
                                                     "' is not a number (OBX-2 is NM)"));
        }
        number.SetDouble(d);
      }
    } else if (value_type == "SN") {
      // <comparator>^<num1>^<separator/suffix>^<num2>
      const std::string_view comparator = TrimBlanks(msg.Component(value, 1));
      const std::string_view num1 = TrimBlanks(msg.Component(value, 2));
      const std::string_view separator = TrimBlanks(msg.Component(value, 3));
      const std::string_view num2 = TrimBlanks(msg.Component(value, 4));
      if (value.empty()) {
        text.SetNull();
      } else {
        RETURN_IF_ERROR(SetText(msg, seg, 5, comparator, &text));
        if (text.is_null) text.s.clear();  // SetNull keeps the reused string's old bytes
        text.is_null = false;
        text.s.append(num1.data(), num1.size());
        text.s.append(separator.data(), separator.size());
        text.s.append(num2.data(), num2.size());
        double d = 0;
        if (!num1.empty() && ParseDouble(num1, &d) != NumberParse::kOk) {
          return FieldError(msg, seg, 5, absl::StrCat("'", format_internal::Abbreviate(num1),
                                                     "' is not a number (OBX-2 is SN)"));
        }
        if (!num1.empty() && (comparator.empty() || comparator == "=") && separator.empty() && num2.empty()) {
          number.SetDouble(d);
        }
      }
    } else if (IsCoded(value_type)) {
      const std::string_view code = msg.Component(value, 1);
      RETURN_IF_ERROR(SetText(msg, seg, 5, code.empty() ? msg.Component(value, 2) : code, &text));
    } else {
      RETURN_IF_ERROR(SetText(msg, seg, 5, value, &text));
    }
    RETURN_IF_ERROR(SetText(msg, seg, 6, msg.Get(seg, 6, 1), &row[kObsUnit]));
    RETURN_IF_ERROR(SetText(msg, seg, 11, TrimBlanks(msg.Field(seg, 11)), &row[kObsStatus]));
    if (!TrimBlanks(msg.Get(seg, 14, 1)).empty()) {
      RETURN_IF_ERROR(SetTime(msg, seg, 14, &row[kObsObservedAt]));
    } else if (obr >= 0 && !TrimBlanks(msg.Get(obr, 7, 1)).empty()) {
      RETURN_IF_ERROR(SetTime(msg, obr, 7, &row[kObsObservedAt]));
    } else if (!TrimBlanks(msg.Get(0, 7, 1)).empty()) {
      RETURN_IF_ERROR(SetTime(msg, 0, 7, &row[kObsObservedAt]));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", msg.line(seg), ": no observation time (OBX-14, OBR-7 and MSH-7 are all empty)"));
    }
    RETURN_IF_ERROR(SetText(msg, seg, 18, msg.Get(seg, 18, 1), &row[kObsDevice]));
    row[kObsReceivedAt].SetInt(received_at_ms);
    row[kObsLastInMessage].SetBool(false);
  }
  if (batch->size() > first_row) (*batch)[batch->size() - 1][kObsLastInMessage].SetBool(true);
  return absl::OkStatus();
}

absl::Status Hl7RowExtractor::AppendAdmission(const Hl7Message& msg, int64_t received_at_ms, RowBatch* batch) {
  const std::string_view message_id = msg.Field(0, 10);
  if (message_id.empty()) return FieldError(msg, 0, 10, "the message control id is empty");
  const int pid = msg.Find("PID");
  if (pid < 0) return absl::InvalidArgumentError("an ADT message without a PID segment (whose event is it?)");
  if (TrimBlanks(msg.Get(pid, 3, 1)).empty() || Hl7Message::IsExplicitNull(msg.Get(pid, 3, 1))) {
    return FieldError(msg, pid, 3, "no patient identifier in the first repetition");
  }
  const int evn = msg.Find("EVN");
  const int pv1 = msg.Find("PV1");
  const int mrg = msg.Find("MRG");
  Row& row = batch->Append();
  RETURN_IF_ERROR(SetText(msg, 0, 10, message_id, &row[kAdmMessageId]));
  Datum& type = row[kAdmMessageType];
  type.is_null = false;
  type.s.assign(msg.Get(0, 9, 1).data(), msg.Get(0, 9, 1).size());
  std::string_view event = msg.Get(0, 9, 2);
  if (event.empty()) event = msg.Get(evn, 1);
  type.s.push_back('^');
  type.s.append(event.data(), event.size());
  RETURN_IF_ERROR(SetText(msg, 0, 4, msg.Get(0, 4, 1), &row[kAdmSendingFacility]));
  RETURN_IF_ERROR(SetText(msg, 0, 9, event, &row[kAdmEvent]));
  if (!TrimBlanks(msg.Get(evn, 2, 1)).empty()) {
    RETURN_IF_ERROR(SetTime(msg, evn, 2, &row[kAdmEventAt]));
  } else if (!TrimBlanks(msg.Get(0, 7, 1)).empty()) {
    RETURN_IF_ERROR(SetTime(msg, 0, 7, &row[kAdmEventAt]));
  } else {
    return absl::InvalidArgumentError("no event time (EVN-2 and MSH-7 are empty)");
  }
  RETURN_IF_ERROR(SetText(msg, pid, 3, msg.Get(pid, 3, 1), &row[kAdmPatientId]));
  RETURN_IF_ERROR(SetText(msg, pid, 3, msg.Get(pid, 3, 4, 1), &row[kAdmPatientAuthority]));
  RETURN_IF_ERROR(SetText(msg, mrg, 1, msg.Get(mrg, 1, 1), &row[kAdmPriorPatientId]));
  // The location's components stay joined by '^' (point of care^room^bed^facility).
  {
    // Each component decoded, joined by '^' whatever the message's delimiters.
    Datum& location = row[kAdmLocation];
    location.s.clear();
    const std::string_view pl = msg.Get(pv1, 3);
    const int components = pl.empty() ? 0 : 1 + static_cast<int>(std::count(pl.begin(), pl.end(),
                                                                               msg.delimiters().component));
    for (int c = 1; c <= components; ++c) {
      if (absl::Status st = msg.Unescape(msg.Component(pl, c), &scratch_); !st.ok()) {
        return FieldError(msg, pv1, 3, std::string_view(st.message().data(), st.message().size()));
      }
      if (c > 1) location.s.push_back('^');
      location.s += scratch_;
    }
    while (!location.s.empty() && location.s.back() == '^') location.s.pop_back();
    location.is_null = location.s.empty();
  }
  RETURN_IF_ERROR(SetText(msg, pv1, 19, msg.Get(pv1, 19, 1), &row[kAdmVisitId]));
  RETURN_IF_ERROR(SetText(msg, pv1, 2, TrimBlanks(msg.Field(pv1, 2)), &row[kAdmPatientClass]));
  row[kAdmReceivedAt].SetInt(received_at_ms);
  return absl::OkStatus();
}

}  // namespace vstream
