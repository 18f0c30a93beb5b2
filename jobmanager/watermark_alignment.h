#pragma once
// The JobManager's half of watermark alignment (Flink's
// WatermarkStrategy.withWatermarkAlignment, FLIP-182): the source subtasks
// of a job that share an alignment group report their watermarks every
// update interval (proto::SourceWatermark, through each TaskManager's
// reporter, runtime/aligned_source_registry.h); each gets back the highest
// watermark it may reach: the lowest active watermark of the group's other
// subtasks plus its max drift (a subtask alone, or the slowest, is not
// held back by itself). A source subtask ahead of that pauses reading until the others
// catch up, so that a fast source does not fill downstream state with
// windows and join buffers that a slow one holds open.
//
// Until every subtask of the group has read its first record, for at most
// kStartupGraceMs, the others get no bound above the minimum: else the first
// to start would run free until the last one reports. (The source task
// itself allows max_drift past its own first watermark meanwhile:
// StreamTask::AlignmentPauses.) (A source that never
// reads a record, an empty file, holds its group back for the grace only.)
//
// Left out of the lowest: idle and finished subtasks (active = false), and
// subtasks silent for kStaleMs (their TaskManager died; the job restarts
// anyway), and the subtasks of older job attempts than the latest reported
// to the group (a restart rewinds watermarks); a late report of an older
// attempt is ignored. A group no subtask reported to for kStaleMs (its job
// ended) is dropped.
//
// Thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "proto/control.pb.h"

namespace vstream {

class WatermarkAlignment {
 public:
  static constexpr int64_t kStaleMs = 10'000;
  // How long after a group's first report (or a restart) subtasks that have
  // not read a record yet hold the others back.
  static constexpr int64_t kStartupGraceMs = 5'000;

  // Records `report` (received at now_ms) and returns the highest watermark
  // its source subtask may reach: INT64_MAX when no other subtask of the
  // group is active.
  int64_t Report(const proto::SourceWatermark& report, int64_t now_ms);
  // Groups known, for tests.
  size_t groups() const;

 private:
  struct Member {
    int64_t watermark = 0;
    bool active = false;
    bool starting = false;
    int64_t reported_ms = 0;
  };
  using GroupKey = std::tuple<std::string, std::string>;  // job id, group
  using MemberKey = std::tuple<int, int>;                 // vertex id, subtask

  struct Group {
    int attempt = 0;  // the latest reported; members are of this attempt
    int64_t started_ms = 0;  // first report of that attempt
    int size = 0;            // subtasks in the group, as the reports say
    std::map<MemberKey, Member> members;
  };

  mutable std::mutex mu_;
  std::map<GroupKey, Group> groups_;
};

}  // namespace vstream
