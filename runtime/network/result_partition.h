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
#include <cstdint>
#include <chrono>
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

  // Producer: enqueues a buffer, blocking while the queue is full (unless
  // `force`: a partial buffer sent ahead of an unaligned barrier, or
  // restored in-flight records). Returns false if the partition was
  // released (cancelled) meanwhile.
  bool Add(NetworkBuffer buffer, bool force = false);
  // Producer: enqueues a checkpoint barrier (kind kBarrier):
  //  - unaligned: at the front, ahead of every buffer queued now; copies of
  //    those (records only) go to *overtaken, the output part of the
  //    task's snapshot. They are still sent, after the barrier.
  //  - aligned: at the back. With a deadline, SettleBarrier tells whether
  //    it left in order or turned unaligned.
  // An aligned barrier with a deadline that is still queued when the next
  // one comes turns unaligned at once.
  bool AddBarrier(NetworkBuffer barrier, std::vector<NetworkBuffer>* overtaken);
  // Producer, for the aligned barrier with a deadline of `checkpoint_id`:
  // true once it is settled: the reader took it in order (nothing to keep),
  // or it turned unaligned (moved to the front once the deadline passed,
  // with what it overtook appended to *overtaken, as AddBarrier does).
  // Turns it unaligned if now_ms is past the deadline. A producer blocked
  // in Add does that too, at the deadline.
  bool SettleBarrier(int64_t checkpoint_id, int64_t now_ms, std::vector<NetworkBuffer>* overtaken);
  // Producer: enqueues the end-of-partition event.
  void Finish();

  // Reader: the next buffer, or nullopt when none is queued (or when the
  // next one holds records and !records_allowed: a reader without credit
  // still takes events).
  std::optional<NetworkBuffer> Poll(bool records_allowed = true);
  // Reader: the next buffer if it is an unaligned barrier, else nullopt.
  std::optional<NetworkBuffer> PollPriority();
  // Reader: called (from the producer thread) whenever a buffer becomes
  // available, with priority set when an unaligned barrier was put at the
  // front; called at once if a buffer already is available. It runs
  // outside the subpartition's lock (it may poll, as a remote stream sends
  // at once) and never after SetListener(nullptr) returned.
  using Listener = std::function<void(bool priority)>;
  void SetListener(Listener listener);
  // Reader gone or job cancelled: wakes and fails a blocked producer.
  void Release();

  size_t queued() const;
  // Producer: waits up to max_wait for room for a records buffer (Add would
  // not block); true if there is room (or the partition was released).
  bool WaitForRoom(std::chrono::milliseconds max_wait);
  // Producer: waits up to max_wait for a reader to have attached (a first
  // SetListener with a listener); true if one has (or the partition was
  // released).
  bool WaitForReader(std::chrono::milliseconds max_wait);

 private:
  bool AddBarrierLocked(NetworkBuffer barrier, std::vector<NetworkBuffer>* overtaken);
  // Calls the listener with what notify_ holds, if anything. Not under mu_.
  void Notify();
  // Moves the barrier with a deadline to the front, unaligned (if still
  // queued), and settles it.
  void ConvertTimedLocked();
  // Puts an unaligned barrier first; copies the records of the `ahead`
  // buffers at the front (the ones it overtakes) to *overtaken.
  void PutFrontLocked(NetworkBuffer barrier, size_t ahead, std::vector<NetworkBuffer>* overtaken);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::deque<NetworkBuffer> queue_;
  std::mutex listener_mu_;  // held while listener_ runs or changes
  Listener listener_;
  // What the listener is to be told (guarded by mu_).
  static constexpr uint8_t kNotifyAvailable = 1;
  static constexpr uint8_t kNotifyPriority = 2;
  uint8_t notify_ = 0;
  // The last aligned barrier with a deadline (guarded by mu_).
  struct Timed {
    int64_t checkpoint_id = 0;
    int64_t deadline_ms = 0;
    bool settled = true;
    std::vector<NetworkBuffer> overtaken;  // if it turned unaligned
  } timed_;
  std::function<void()> on_consumed_;
  bool released_ = false;
  bool attached_ = false;  // a reader has set a listener (guarded by mu_)
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
