#include "state/state_log.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vstream {

namespace {
constexpr size_t kSequenceDigits = 10;
}  // namespace

void StateLog::Seal() {
  if (open_.empty()) return;
  auto bytes = std::make_shared<const std::string>(std::move(open_).Finish());
  open_ = CacheDelta();
  sealed_bytes_ += bytes->size();
  segments_.push_back(Segment{absl::StrFormat("%s%010u", kFilePrefix, next_sequence_++), std::move(bytes)});
}

void StateLog::DropFirst(size_t n) {
  n = std::min(n, segments_.size());
  for (size_t i = 0; i < n; ++i) sealed_bytes_ -= segments_[i].bytes->size();
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(n));
}

bool StateLog::IsSegmentFile(std::string_view name) {
  if (name.size() != kFilePrefix.size() + kSequenceDigits || !name.starts_with(kFilePrefix)) return false;
  name.remove_prefix(kFilePrefix.size());
  return std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); });
}

absl::StatusOr<std::vector<std::string>> SnapshotDeltaFiles(const std::string& dir) {
  std::vector<std::string> paths;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (StateLog::IsSegmentFile(it->path().filename().string())) paths.push_back(it->path().string());
  }
  if (ec) return absl::DataLossError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  std::sort(paths.begin(), paths.end());  // fixed-width numbers in one directory: write order
  const std::filesystem::path delta = std::filesystem::path(dir) / CacheDelta::kFileName;
  if (std::filesystem::exists(delta, ec)) paths.push_back(delta.string());
  return paths;
}

}  // namespace vstream
