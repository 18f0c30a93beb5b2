#include "jobmanager/watermark_alignment.h"

#include <algorithm>
#include <climits>

namespace vstream {

int64_t WatermarkAlignment::Report(const proto::SourceWatermark& report, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  // Groups nobody reported to for kStaleMs belong to jobs that ended.
  std::erase_if(groups_, [&](const auto& g) {
    return std::all_of(g.second.members.begin(), g.second.members.end(),
                       [&](const auto& m) { return now_ms - m.second.reported_ms >= kStaleMs; });
  });
  Group& group = groups_[GroupKey(report.job_id(), report.group())];
  if (group.members.empty() || report.attempt() > group.attempt) {
    // A new group, or the job restarted: its subtasks start again, and the
    // older attempt's no longer count.
    group.attempt = report.attempt();
    group.started_ms = now_ms;
    group.members.clear();
  }
  group.size = std::max(group.size, report.group_size());
  if (report.attempt() == group.attempt) {
    Member& m = group.members[MemberKey(report.vertex_id(), report.subtask())];
    m.watermark = report.watermark();
    m.active = report.active();
    m.starting = report.starting();
    m.reported_ms = now_ms;
  }
  // The lowest of the others: a subtask is not held back by itself (alone,
  // or the slowest, it reads freely).
  const MemberKey self(report.vertex_id(), report.subtask());
  int64_t lowest = INT64_MAX;
  bool others_starting = false;
  for (const auto& [key, member] : group.members) {
    if (key == self || now_ms - member.reported_ms >= kStaleMs) continue;
    if (member.active) lowest = std::min(lowest, member.watermark);
    if (member.starting) others_starting = true;
  }
  // Until every subtask of the group has read its first record (or the
  // grace has passed), the others read no further than their first batch:
  // else the first to start runs free until the last one reports.
  if ((others_starting || static_cast<int>(group.members.size()) < group.size) && now_ms - group.started_ms < kStartupGraceMs) lowest = INT64_MIN;
  if (lowest == INT64_MAX) return INT64_MAX;
  int64_t max_watermark;
  if (__builtin_add_overflow(lowest, std::max<int64_t>(report.max_drift_ms(), 0), &max_watermark)) return INT64_MAX;
  return max_watermark;
}

size_t WatermarkAlignment::groups() const {
  std::lock_guard<std::mutex> lock(mu_);
  return groups_.size();
}

}  // namespace vstream
