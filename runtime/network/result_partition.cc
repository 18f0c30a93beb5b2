#include "runtime/network/result_partition.h"

#include <chrono>

namespace vstream {

// The listener is called under mu_, so that SetListener(nullptr) guarantees
// no call is still running afterwards (the reader may then be destroyed).
// Lock order: subpartition before the reader's own lock.
bool ResultSubpartition::Add(NetworkBuffer buffer) {
  std::unique_lock<std::mutex> lock(mu_);
  // Events (watermarks) are tiny and rare: they never wait for room, so a
  // producer is only ever blocked by records.
  if (buffer.kind == BufferKind::kRecords) {
    not_full_.wait(lock, [&] { return released_ || queue_.size() < capacity_; });
  }
  if (released_) return false;
  queue_.push_back(std::move(buffer));
  if (queue_.size() == 1 && listener_) listener_();
  return true;
}

void ResultSubpartition::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (released_) return;
  NetworkBuffer eop;
  eop.end_of_partition = true;
  eop.kind = BufferKind::kEndOfPartition;
  queue_.push_back(std::move(eop));  // beyond capacity on purpose: never blocks
  if (listener_) listener_();
}

std::optional<NetworkBuffer> ResultSubpartition::Poll() {
  std::optional<NetworkBuffer> b;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return std::nullopt;
    b = std::move(queue_.front());
    queue_.pop_front();
    not_full_.notify_one();
  }
  if (b->end_of_partition && on_consumed_) on_consumed_();
  return b;
}

void ResultSubpartition::SetListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listener_ = std::move(listener);
  if (!queue_.empty() && listener_) listener_();
}

void ResultSubpartition::Release() {
  std::lock_guard<std::mutex> lock(mu_);
  released_ = true;
  queue_.clear();
  not_full_.notify_all();
}

size_t ResultSubpartition::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

ResultPartition::ResultPartition(std::string id, int num_subpartitions,
                                 size_t capacity_per_subpartition,
                                 std::function<void(const std::string&)> on_consumed)
    : id_(std::move(id)), unconsumed_(num_subpartitions), on_consumed_(std::move(on_consumed)) {
  for (int i = 0; i < num_subpartitions; ++i) {
    subpartitions_.push_back(std::make_unique<ResultSubpartition>(capacity_per_subpartition));
    subpartitions_.back()->set_on_consumed([this] {
      if (unconsumed_.fetch_sub(1) == 1 && on_consumed_) on_consumed_(id_);
    });
  }
}

void ResultPartition::Release() {
  for (auto& s : subpartitions_) s->Release();
}

void PartitionManager::Register(std::shared_ptr<ResultPartition> partition) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    partitions_[partition->id()] = std::move(partition);
  }
  cv_.notify_all();
}

std::shared_ptr<ResultPartition> PartitionManager::Await(const std::string& id, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  std::shared_ptr<ResultPartition> found;
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    auto it = partitions_.find(id);
    if (it == partitions_.end()) return false;
    found = it->second;
    return true;
  });
  return found;
}

void PartitionManager::ReleaseWithPrefix(const std::string& prefix) {
  std::vector<std::shared_ptr<ResultPartition>> released;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = partitions_.begin(); it != partitions_.end();) {
      if (it->first.rfind(prefix, 0) == 0) {
        released.push_back(it->second);
        it = partitions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& p : released) p->Release();
}

void PartitionManager::Unregister(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  partitions_.erase(id);
}

}  // namespace vstream
