#include "runtime/operators/process_params.h"

#include <limits>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"

namespace vstream {

namespace {

// The payload that names the parameter of an error.
constexpr char kParamPayload[] = "type.vstream.dev/process_param";

absl::Status Malformed(std::string_view name, std::string_view expected, const std::string& text) {
  return ProcessParams::Error(name, absl::StrCat("expected ", AV(expected), ", got '", text, "'"));
}

absl::Status Missing(std::string_view name) {
  absl::Status s = absl::InvalidArgumentError(absl::StrCat("missing required param '", AV(name), "'"));
  s.SetPayload(kParamPayload, absl::Cord(AV(name)));
  return s;
}

bool ParseDurationMs(std::string_view s, int64_t* ms) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  const std::string_view unit = s.substr(digits);
  int64_t scale = 0;
  if (unit.empty() || unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 3600 * 1000;
  }
  int64_t n = 0;
  if (digits == 0 || scale == 0 || !absl::SimpleAtoi(AV(s.substr(0, digits)), &n) ||
      n > std::numeric_limits<int64_t>::max() / scale) {
    return false;
  }
  *ms = n * scale;
  return true;
}

}  // namespace

ProcessParams ProcessParams::FromProto(const google::protobuf::Map<std::string, std::string>& values) {
  Map m;
  for (const auto& [k, v] : values) m.emplace(k, v);
  return ProcessParams(std::move(m));
}

const std::string* ProcessParams::Find(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

absl::Status ProcessParams::Error(std::string_view name, std::string_view message) {
  absl::Status s = absl::InvalidArgumentError(absl::StrCat("param '", AV(name), "': ", AV(message)));
  s.SetPayload(kParamPayload, absl::Cord(AV(name)));
  return s;
}

std::string ParamOfError(const absl::Status& status) {
  auto name = status.GetPayload(kParamPayload);  // absl::optional in Debian's Abseil
  return name ? std::string(*name) : std::string();
}

absl::Status ProcessParams::CheckKnown(std::initializer_list<std::string_view> known) const {
  for (const auto& [name, value] : values_) {
    bool ok = false;
    for (std::string_view k : known) ok |= k == name;
    if (ok) continue;
    std::string expected;
    for (std::string_view k : known) absl::StrAppend(&expected, expected.empty() ? "" : ", ", AV(k));
    absl::Status s = absl::InvalidArgumentError(
        known.size() == 0 ? absl::StrCat("unknown param '", name, "', the function takes none")
                          : absl::StrCat("unknown param '", name, "', expected one of ", expected));
    s.SetPayload(kParamPayload, absl::Cord(name));
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ProcessParams::GetString(std::string_view name) const {
  const std::string* v = Find(name);
  if (v == nullptr) return Missing(name);
  return *v;
}

absl::StatusOr<int64_t> ProcessParams::GetInt(std::string_view name) const {
  const std::string* v = Find(name);
  if (v == nullptr) return Missing(name);
  int64_t out = 0;
  if (!absl::SimpleAtoi(AV(*v), &out)) return Malformed(name, "an integer", *v);
  return out;
}

absl::StatusOr<double> ProcessParams::GetDouble(std::string_view name) const {
  const std::string* v = Find(name);
  if (v == nullptr) return Missing(name);
  double out = 0;
  if (!absl::SimpleAtod(AV(*v), &out)) return Malformed(name, "a number", *v);
  return out;
}

absl::StatusOr<bool> ProcessParams::GetBool(std::string_view name) const {
  const std::string* v = Find(name);
  if (v == nullptr) return Missing(name);
  if (*v == "true") return true;
  if (*v == "false") return false;
  return Malformed(name, "true or false", *v);
}

absl::StatusOr<int64_t> ProcessParams::GetDurationMs(std::string_view name) const {
  const std::string* v = Find(name);
  if (v == nullptr) return Missing(name);
  int64_t ms = 0;
  if (!ParseDurationMs(*v, &ms)) return Malformed(name, "a duration such as 5ms, 1s, 2m or 1h", *v);
  return ms;
}

absl::StatusOr<std::string> ProcessParams::GetString(std::string_view name, std::string fallback) const {
  return Has(name) ? GetString(name) : absl::StatusOr<std::string>(std::move(fallback));
}

absl::StatusOr<int64_t> ProcessParams::GetInt(std::string_view name, int64_t fallback) const {
  return Has(name) ? GetInt(name) : absl::StatusOr<int64_t>(fallback);
}

absl::StatusOr<double> ProcessParams::GetDouble(std::string_view name, double fallback) const {
  return Has(name) ? GetDouble(name) : absl::StatusOr<double>(fallback);
}

absl::StatusOr<bool> ProcessParams::GetBool(std::string_view name, bool fallback) const {
  return Has(name) ? GetBool(name) : absl::StatusOr<bool>(fallback);
}

absl::StatusOr<int64_t> ProcessParams::GetDurationMs(std::string_view name, int64_t fallback) const {
  return Has(name) ? GetDurationMs(name) : absl::StatusOr<int64_t>(fallback);
}

}  // namespace vstream
