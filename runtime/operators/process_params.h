#pragma once
// The parameters of a keyed process function, as a job spec writes them
// (`params: {timeout: 5m, field: hr}`): names to text, carried in
// proto::ProcessSpec.params. A function's factory reads them with the typed
// getters, which parse and explain:
//
//   ASSIGN_OR_RETURN(int64_t timeout_ms, params.GetDurationMs("timeout"));
//   ASSIGN_OR_RETURN(int64_t n, params.GetInt("count", /*fallback=*/3));
//   RETURN_IF_ERROR(params.CheckKnown({"timeout", "count"}));
//
// Their errors are InvalidArgument with a message that names the parameter
// ("param 'timeout': expected a duration such as 5ms, 1s, 2m or 1h, got
// 'soon'") and carry its name as a payload (ParamOfError), so that the
// job-spec compiler points at that parameter's line and column.
//
// Thread-compatible; immutable once built.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/map.h"

namespace vstream {

class ProcessParams {
 public:
  // Names to text; ordered, with string_view lookups.
  using Map = std::map<std::string, std::string, std::less<>>;

  ProcessParams() = default;
  explicit ProcessParams(Map values) : values_(std::move(values)) {}
  static ProcessParams FromProto(const google::protobuf::Map<std::string, std::string>& values);

  const Map& values() const { return values_; }
  bool Has(std::string_view name) const { return values_.find(name) != values_.end(); }

  // Required parameters: InvalidArgument when missing or malformed.
  absl::StatusOr<std::string> GetString(std::string_view name) const;
  absl::StatusOr<int64_t> GetInt(std::string_view name) const;
  absl::StatusOr<double> GetDouble(std::string_view name) const;
  // "true" or "false".
  absl::StatusOr<bool> GetBool(std::string_view name) const;
  // "1500ms", "30s", "5m", "2h", or a plain integer of milliseconds; >= 0.
  absl::StatusOr<int64_t> GetDurationMs(std::string_view name) const;

  // Optional parameters: `fallback` when missing, InvalidArgument when
  // malformed.
  absl::StatusOr<std::string> GetString(std::string_view name, std::string fallback) const;
  absl::StatusOr<int64_t> GetInt(std::string_view name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(std::string_view name, double fallback) const;
  absl::StatusOr<bool> GetBool(std::string_view name, bool fallback) const;
  absl::StatusOr<int64_t> GetDurationMs(std::string_view name, int64_t fallback) const;

  // InvalidArgument naming the first parameter that is not in `known`.
  absl::Status CheckKnown(std::initializer_list<std::string_view> known) const;

  // An InvalidArgument "param 'NAME': MESSAGE" about parameter `name`, for
  // checks of a function's own (e.g. that a named field exists).
  static absl::Status Error(std::string_view name, std::string_view message);

 private:
  // The text of `name`, or null when it is missing.
  const std::string* Find(std::string_view name) const;

  Map values_;
};

// The parameter a ProcessParams error is about; empty for any other status.
std::string ParamOfError(const absl::Status& status);

}  // namespace vstream
