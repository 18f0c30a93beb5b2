#include "runtime/network/result_partition.h"

#include <chrono>
#include <condition_variable>
#include <utility>

namespace vstream {

// The listener is called outside mu_, so that it may poll, and under
// listener_mu_, so that SetListener(nullptr) guarantees no call is still
// running afterwards (the reader may then be destroyed). Code under mu_
// that has something to tell the reader sets notify_; the caller runs
// Notify() once it has let go of mu_.
// Lock order: listener_mu_, the reader's own lock, mu_.
void ResultSubpartition::Notify() {
  std::lock_guard<std::mutex> listener_lock(listener_mu_);
  uint8_t notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notify = std::exchange(notify_, 0);
  }
  if (notify != 0 && listener_) listener_((notify & kNotifyPriority) != 0);
}

bool ResultSubpartition::Add(NetworkBuffer buffer, bool force) {
  std::unique_lock<std::mutex> lock(mu_);
  // Events (watermarks) are tiny and rare: they never wait for room, so a
  // producer is only ever blocked by records.
  if (buffer.kind == BufferKind::kRecords && !force) {
    while (!released_ && queue_.size() >= capacity_) {
      if (timed_.settled) {
        not_full_.wait(lock);
        continue;
      }
      // Backpressured with an aligned barrier queued: it turns unaligned at
      // its deadline even while the producer waits here.
      const auto deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(timed_.deadline_ms));
      if (not_full_.wait_until(lock, deadline) == std::cv_status::timeout && !timed_.settled) {
        ConvertTimedLocked();
        lock.unlock();
        Notify();  // the barrier goes now, while this producer waits on
        lock.lock();
      }
    }
  }
  if (released_) return false;
  queue_.push_back(std::move(buffer));
  if (queue_.size() > 1) return true;  // the reader was told already
  notify_ |= kNotifyAvailable;
  lock.unlock();
  Notify();
  return true;
}

void ResultSubpartition::PutFrontLocked(NetworkBuffer barrier, size_t ahead, std::vector<NetworkBuffer>* overtaken) {
  // Only the buffers queued ahead of it: the ones behind a barrier that
  // turns unaligned late were emitted after the snapshot.
  for (size_t i = 0; i < ahead && i < queue_.size(); ++i) {
    if (queue_[i].kind == BufferKind::kRecords) overtaken->push_back(queue_[i]);
  }
  barrier.unaligned = true;
  barrier.aligned_deadline_ms = 0;
  queue_.push_front(std::move(barrier));
  notify_ |= kNotifyPriority;
}

void ResultSubpartition::ConvertTimedLocked() {
  timed_.settled = true;
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->kind != BufferKind::kBarrier || it->checkpoint_id != timed_.checkpoint_id) continue;
    const size_t ahead = static_cast<size_t>(it - queue_.begin());
    NetworkBuffer barrier = std::move(*it);
    queue_.erase(it);
    PutFrontLocked(std::move(barrier), ahead, &timed_.overtaken);
    return;
  }
}

bool ResultSubpartition::AddBarrier(NetworkBuffer barrier, std::vector<NetworkBuffer>* overtaken) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!AddBarrierLocked(std::move(barrier), overtaken)) return false;
  }
  Notify();
  return true;
}

bool ResultSubpartition::AddBarrierLocked(NetworkBuffer barrier, std::vector<NetworkBuffer>* overtaken) {
  if (released_) return false;
  if (!timed_.settled) ConvertTimedLocked();  // a newer barrier: it is late
  if (barrier.unaligned) {
    PutFrontLocked(std::move(barrier), queue_.size(), overtaken);
    return true;
  }
  if (barrier.aligned_deadline_ms > 0) {
    timed_ = Timed{barrier.checkpoint_id, barrier.aligned_deadline_ms, false, {}};
  }
  queue_.push_back(std::move(barrier));
  if (queue_.size() == 1) notify_ |= kNotifyAvailable;
  return true;
}

bool ResultSubpartition::SettleBarrier(int64_t checkpoint_id, int64_t now_ms, std::vector<NetworkBuffer>* overtaken) {
  bool converted = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (timed_.checkpoint_id != checkpoint_id) return true;  // replaced by a newer one, which settled it
    if (!timed_.settled && (released_ || now_ms >= timed_.deadline_ms)) {
      ConvertTimedLocked();
      converted = true;
    }
    if (!timed_.settled) return false;
    for (NetworkBuffer& b : timed_.overtaken) overtaken->push_back(std::move(b));
    timed_.overtaken.clear();
  }
  if (converted) Notify();
  return true;
}

void ResultSubpartition::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (released_) return;
    NetworkBuffer eop;
    eop.end_of_partition = true;
    eop.kind = BufferKind::kEndOfPartition;
    queue_.push_back(std::move(eop));  // beyond capacity on purpose: never blocks
    notify_ |= kNotifyAvailable;
  }
  Notify();
}

std::optional<NetworkBuffer> ResultSubpartition::Poll(bool records_allowed) {
  std::optional<NetworkBuffer> b;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return std::nullopt;
    if (!records_allowed && queue_.front().kind == BufferKind::kRecords) return std::nullopt;
    b = std::move(queue_.front());
    queue_.pop_front();
    if (b->kind == BufferKind::kBarrier && b->checkpoint_id == timed_.checkpoint_id) timed_.settled = true;
    not_full_.notify_one();
  }
  if (b->end_of_partition && on_consumed_) on_consumed_();
  return b;
}

std::optional<NetworkBuffer> ResultSubpartition::PollPriority() {
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_.empty() || queue_.front().kind != BufferKind::kBarrier || !queue_.front().unaligned) return std::nullopt;
  std::optional<NetworkBuffer> b(std::move(queue_.front()));
  queue_.pop_front();
  if (b->checkpoint_id == timed_.checkpoint_id) timed_.settled = true;
  not_full_.notify_one();
  return b;
}

void ResultSubpartition::SetListener(Listener listener) {
  std::lock_guard<std::mutex> listener_lock(listener_mu_);
  listener_ = std::move(listener);
  bool available;
  bool priority;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notify_ = 0;  // told now, or no one to tell
    if (listener_ && !attached_) {
      attached_ = true;
      not_full_.notify_all();  // a producer in WaitForReader
    }
    available = !queue_.empty();
    priority = available && queue_.front().kind == BufferKind::kBarrier && queue_.front().unaligned;
  }
  if (available && listener_) listener_(priority);
}

void ResultSubpartition::Release() {
  std::lock_guard<std::mutex> lock(mu_);
  released_ = true;
  queue_.clear();
  not_full_.notify_all();
}

bool ResultSubpartition::WaitForRoom(std::chrono::milliseconds max_wait) {
  std::unique_lock<std::mutex> lock(mu_);
  return not_full_.wait_for(lock, max_wait, [&] { return released_ || queue_.size() < capacity_; });
}

bool ResultSubpartition::WaitForReader(std::chrono::milliseconds max_wait) {
  std::unique_lock<std::mutex> lock(mu_);
  return not_full_.wait_for(lock, max_wait, [&] { return released_ || attached_; });
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
