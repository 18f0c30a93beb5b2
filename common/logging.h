#pragma once
// Process-wide logging setup on spdlog. Log lines never carry record
// contents: patient identifiers must not reach logs.

#include <string>

#include "spdlog/spdlog.h"

namespace vstream {

// Sets the default logger: "[time] [level] [process] message" to stderr.
// level: trace|debug|info|warn|error|off; defaults from VSTREAM_LOG_LEVEL or "info".
void InitLogging(const std::string& process_name, const std::string& level = "");

}  // namespace vstream
