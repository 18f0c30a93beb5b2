#include "common/flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace vstream {

std::optional<std::string> ParsedFlags::Get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<ParsedFlags> ParseFlags(int argc, char** argv, int first,
                                       const std::set<std::string>& value_flags,
                                       const std::set<std::string>& bool_flags) {
  ParsedFlags out;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() > 2 && arg.rfind("--", 0) == 0) {
      std::string name = arg.substr(2);
      std::string value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (bool_flags.count(name)) {
        out.values[name] = has_value ? value : "true";
      } else if (value_flags.count(name)) {
        if (!has_value) {
          if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
          value = argv[++i];
        }
        out.values[name] = value;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
      }
    } else {
      out.positional.push_back(arg);
    }
  }
  return out;
}

absl::StatusOr<int> ParsePort(const std::string& text) {
  int port = 0;
  if (!absl::SimpleAtoi(text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("expected a port number 0-65535, got '", text, "'"));
  }
  return port;
}

}  // namespace vstream
