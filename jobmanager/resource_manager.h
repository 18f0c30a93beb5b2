#pragma once
// The ResourceManager: which TaskManagers are alive (registration and
// heartbeats) and which of their slots each job holds. Slot sharing: a job
// takes one slot per unit of its largest parallelism; slot i runs subtask i
// of every chain of the job.
//
// Thread-compatible: runs on the JobManager's main executor thread.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vstream {

struct SlotRef {
  std::string task_manager_id;
  std::string address;
  int slot = 0;
};

struct TaskManagerInfo {
  std::string id;
  std::string resource_id;
  std::string address;
  int slots = 0;
  std::vector<std::string> slot_job;  // job id per slot, "" if free
  int64_t last_heartbeat_ms = 0;
};

class ResourceManager {
 public:
  // Returns the new id. A TaskManager registering again with the same
  // resource id replaces its old registration; the old id is returned in
  // *replaced so its jobs can be failed over.
  std::string Register(const std::string& resource_id, const std::string& address, int slots,
                       int64_t now_ms, std::string* replaced);
  // False if the id is unknown (the TaskManager must register again).
  bool Heartbeat(const std::string& id, int64_t now_ms);
  // Removes TaskManagers silent for longer than timeout_ms; returns their ids.
  std::vector<std::string> ExpireSilent(int64_t now_ms, int64_t timeout_ms);
  // Gives a TaskManager up (it could not be reached). False if unknown.
  bool Remove(const std::string& id);

  int TotalSlots() const;
  int FreeSlots() const;
  int NumTaskManagers() const { return static_cast<int>(tms_.size()); }
  // n slots for a job, spread evenly over TaskManagers; nullopt if too few are free.
  std::optional<std::vector<SlotRef>> Allocate(const std::string& job_id, int n);
  void Release(const std::string& job_id);
  const TaskManagerInfo* Find(const std::string& id) const;

 private:
  std::map<std::string, TaskManagerInfo> tms_;
  int64_t next_id_ = 1;
};

}  // namespace vstream
