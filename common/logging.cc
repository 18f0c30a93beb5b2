#include "common/logging.h"

#include <cstdlib>

#include "spdlog/sinks/stdout_color_sinks.h"

namespace vstream {

void InitLogging(const std::string& process_name, const std::string& level) {
  auto logger = spdlog::stderr_color_mt(process_name);
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [%n] %v");
  std::string lvl = level;
  if (lvl.empty()) {
    const char* env = std::getenv("VSTREAM_LOG_LEVEL");
    lvl = env ? env : "info";
  }
  logger->set_level(spdlog::level::from_str(lvl));
  spdlog::set_default_logger(logger);
}

}  // namespace vstream
