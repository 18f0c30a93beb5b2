#include "jobmanager/resource_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace vstream {

std::string ResourceManager::Register(const std::string& resource_id, const std::string& address,
                                      int slots, int64_t now_ms, std::string* replaced) {
  replaced->clear();
  for (auto it = tms_.begin(); it != tms_.end(); ++it) {
    if (it->second.resource_id == resource_id || it->second.address == address) {
      *replaced = it->first;
      tms_.erase(it);
      break;
    }
  }
  TaskManagerInfo info;
  info.id = absl::StrCat("tm-", next_id_++);
  info.resource_id = resource_id;
  info.address = address;
  info.slots = slots;
  info.slot_job.assign(slots, "");
  info.last_heartbeat_ms = now_ms;
  std::string id = info.id;
  tms_[id] = std::move(info);
  return id;
}

bool ResourceManager::Heartbeat(const std::string& id, int64_t now_ms) {
  auto it = tms_.find(id);
  if (it == tms_.end()) return false;
  it->second.last_heartbeat_ms = now_ms;
  return true;
}

std::vector<std::string> ResourceManager::ExpireSilent(int64_t now_ms, int64_t timeout_ms) {
  std::vector<std::string> lost;
  for (auto it = tms_.begin(); it != tms_.end();) {
    if (now_ms - it->second.last_heartbeat_ms > timeout_ms) {
      lost.push_back(it->first);
      it = tms_.erase(it);
    } else {
      ++it;
    }
  }
  return lost;
}

int ResourceManager::TotalSlots() const {
  int n = 0;
  for (const auto& [id, tm] : tms_) n += tm.slots;
  return n;
}

int ResourceManager::FreeSlots() const {
  int n = 0;
  for (const auto& [id, tm] : tms_) n += static_cast<int>(std::count(tm.slot_job.begin(), tm.slot_job.end(), ""));
  return n;
}

std::optional<std::vector<SlotRef>> ResourceManager::Allocate(const std::string& job_id, int n) {
  if (FreeSlots() < n) return std::nullopt;
  std::vector<SlotRef> out;
  // Spread out: take one free slot from each TaskManager in turn, the
  // emptiest first, so that a job's subtasks land on different machines.
  while (static_cast<int>(out.size()) < n) {
    std::vector<TaskManagerInfo*> order;
    for (auto& [id, tm] : tms_) order.push_back(&tm);
    std::stable_sort(order.begin(), order.end(), [](TaskManagerInfo* a, TaskManagerInfo* b) {
      return std::count(a->slot_job.begin(), a->slot_job.end(), "") >
             std::count(b->slot_job.begin(), b->slot_job.end(), "");
    });
    for (TaskManagerInfo* tm : order) {
      if (static_cast<int>(out.size()) == n) break;
      for (int s = 0; s < tm->slots; ++s) {
        if (tm->slot_job[s].empty()) {
          tm->slot_job[s] = job_id;
          out.push_back({tm->id, tm->address, s});
          break;
        }
      }
    }
  }
  return out;
}

bool ResourceManager::Remove(const std::string& id) { return tms_.erase(id) > 0; }

void ResourceManager::Release(const std::string& job_id) {
  for (auto& [id, tm] : tms_) {
    for (auto& j : tm.slot_job) {
      if (j == job_id) j.clear();
    }
  }
}

const TaskManagerInfo* ResourceManager::Find(const std::string& id) const {
  auto it = tms_.find(id);
  return it == tms_.end() ? nullptr : &it->second;
}

}  // namespace vstream
