#pragma once
// Minimal command-line flag parsing: "--name value" and "--name=value",
// boolean "--name", and positional arguments. Unknown flags are errors.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace vstream {

struct ParsedFlags {
  std::map<std::string, std::string> values;
  std::vector<std::string> positional;

  std::optional<std::string> Get(const std::string& name) const;
  bool Has(const std::string& name) const { return values.count(name) > 0; }
};

// value_flags take a value; bool_flags do not.
absl::StatusOr<ParsedFlags> ParseFlags(int argc, char** argv, int first,
                                       const std::set<std::string>& value_flags,
                                       const std::set<std::string>& bool_flags);

// "host:port" -> port, or error.
absl::StatusOr<int> ParsePort(const std::string& text);

}  // namespace vstream
