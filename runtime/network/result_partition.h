#pragma once
// The producer side of the network stack, as in Flink: a task writes each
// output edge into a ResultPartition with one ResultSubpartition per
// consumer subtask (one for a forward edge). A subpartition is a bounded
// queue of buffers: when it is full the producer blocks, which is how a slow
// consumer backpressures its producers with bounded memory. Each
// subpartition has exactly one reader: a LocalInputChannel in the same
// TaskManager or a DataExchange stream to a remote one, which sends only
// against the consumer's credit.
//
// Thread-safe: the producer task thread adds, one reader polls.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/network/buffer.h"

namespace vstream {

class ResultSubpartition {
 public:
  explicit ResultSubpartition(size_t capacity) : capacity_(capacity) {}
  // Called once, when the reader has polled the end-of-partition event.
  void set_on_consumed(std::function<void()> fn) { on_consumed_ = std::move(fn); }

  // Producer: enqueues a buffer, blocking while the queue is full. Returns
  // false if the partition was released (cancelled) meanwhile.
  bool Add(NetworkBuffer buffer);
  // Producer: enqueues the end-of-partition event.
  void Finish();

  // Reader: the next buffer, or nullopt when none is queued.
  std::optional<NetworkBuffer> Poll();
  // Reader: called (from the producer thread) whenever a buffer becomes
  // available; called at once if one already is.
  void SetListener(std::function<void()> listener);
  // Reader gone or job cancelled: wakes and fails a blocked producer.
  void Release();

  size_t queued() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::deque<NetworkBuffer> queue_;
  std::function<void()> listener_;
  std::function<void()> on_consumed_;
  bool released_ = false;
};

class ResultPartition {
 public:
  // on_consumed runs once every subpartition has been read to its end.
  ResultPartition(std::string id, int num_subpartitions, size_t capacity_per_subpartition,
                  std::function<void(const std::string&)> on_consumed = nullptr);
  const std::string& id() const { return id_; }
  int num_subpartitions() const { return static_cast<int>(subpartitions_.size()); }
  ResultSubpartition& subpartition(int i) { return *subpartitions_[i]; }
  void Release();

 private:
  std::string id_;
  std::vector<std::unique_ptr<ResultSubpartition>> subpartitions_;
  std::atomic<int> unconsumed_;
  std::function<void(const std::string&)> on_consumed_;
};

// Per-TaskManager registry of the partitions its tasks produce, so that
// readers (local channels and remote streams) can find them. A reader may
// ask before the producer is deployed; it then waits.
//
// Thread-safe.
class PartitionManager {
 public:
  // shared_ptr: the producing task and its readers both hold it; the last
  // one to finish frees it.
  void Register(std::shared_ptr<ResultPartition> partition);
  // Waits up to timeout_ms for the partition to be registered.
  std::shared_ptr<ResultPartition> Await(const std::string& id, int timeout_ms);
  // Forgets partitions whose id starts with prefix (a job's), releasing them.
  void ReleaseWithPrefix(const std::string& prefix);
  void Unregister(const std::string& id);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<ResultPartition>> partitions_;
};

}  // namespace vstream
