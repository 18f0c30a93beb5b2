#include "runtime/types.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/time_util.h"

namespace vstream {

const char* FieldTypeName(FieldType type) {
  switch (type) {
    case FieldType::kInt: return "int";
    case FieldType::kDouble: return "double";
    case FieldType::kString: return "string";
    case FieldType::kBool: return "bool";
    case FieldType::kTimestamp: return "timestamp";
  }
  return "unknown";
}

absl::StatusOr<FieldType> ParseFieldType(std::string_view name) {
  std::string n = absl::AsciiStrToLower(AV(name));
  if (n == "int" || n == "long" || n == "bigint" || n == "integer") return FieldType::kInt;
  if (n == "double" || n == "float") return FieldType::kDouble;
  if (n == "string") return FieldType::kString;
  if (n == "bool" || n == "boolean") return FieldType::kBool;
  if (n == "timestamp") return FieldType::kTimestamp;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown type '", AV(name), "', expected one of int, double, string, bool, timestamp"));
}

FieldType FromProto(proto::FieldType type) {
  switch (type) {
    case proto::DOUBLE: return FieldType::kDouble;
    case proto::STRING: return FieldType::kString;
    case proto::BOOL: return FieldType::kBool;
    case proto::TIMESTAMP: return FieldType::kTimestamp;
    default: return FieldType::kInt;
  }
}

proto::FieldType ToProto(FieldType type) {
  switch (type) {
    case FieldType::kInt: return proto::INT;
    case FieldType::kDouble: return proto::DOUBLE;
    case FieldType::kString: return proto::STRING;
    case FieldType::kBool: return proto::BOOL;
    case FieldType::kTimestamp: return proto::TIMESTAMP;
  }
  return proto::INT;
}

Schema Schema::FromProto(const proto::Schema& schema) {
  Schema s;
  for (const auto& f : schema.fields()) s.Add(f.name(), vstream::FromProto(f.type()));
  return s;
}

proto::Schema Schema::ToProto() const {
  proto::Schema out;
  for (const auto& f : fields_) {
    auto* pf = out.add_fields();
    pf->set_name(f.name);
    pf->set_type(vstream::ToProto(f.type));
  }
  return out;
}

int Schema::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (fields_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::string Schema::DebugString() const {
  std::string out = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (i) out += ", ";
    absl::StrAppend(&out, fields_[i].name, ": ", FieldTypeName(fields_[i].type));
  }
  return out + "}";
}

std::string DatumToString(const Datum& d, FieldType type) {
  if (d.is_null) return "null";
  switch (type) {
    case FieldType::kInt: return absl::StrCat(d.i);
    case FieldType::kDouble: return absl::StrCat(d.d);
    case FieldType::kString: return d.s;
    case FieldType::kBool: return d.i ? "true" : "false";
    case FieldType::kTimestamp: return FormatTimestamp(d.i);
  }
  return "?";
}

}  // namespace vstream
