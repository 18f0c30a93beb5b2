#pragma once
// The TaskManager's half of watermark alignment (the JobManager's:
// jobmanager/watermark_alignment.h). A source task whose event time has an
// alignment group (EventTimeSpec.alignment_group) registers an AlignedSource
// here; the TaskManager's reporter thread sends the watermarks of all of
// them to the JobManager every update interval, in one ReportWatermarks
// call, and stores each answer in max_watermark. The task pauses reading
// while its watermark is above that.
//
// Only atomics are shared with the task thread: the record path reads one
// relaxed atomic per batch.

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace vstream {

struct AlignedSource {
  // Set at registration, then constant.
  std::string job_id;
  int attempt = 0;
  std::string group;
  int vertex_id = 0;
  int subtask = 0;
  int64_t max_drift_ms = 0;
  int64_t update_interval_ms = 0;
  int group_size = 0;  // source subtasks in the group, over the whole job

  // Written by the task thread.
  std::atomic<int64_t> watermark{INT64_MIN};  // INT64_MIN: no record read yet
  std::atomic<bool> idle{false};
  std::atomic<bool> done{false};   // the task ended: reported inactive, then dropped
  // Written by the reporter: the highest watermark the source may reach.
  // Until the first answer, none above the minimum: the task then allows
  // max_drift past the source's first watermark (StreamTask::AlignmentPauses)
  // while the reporter asks the JobManager (registering wakes it).
  std::atomic<int64_t> max_watermark{INT64_MIN};
};

// Thread-safe.
class AlignedSourceRegistry {
 public:
  void Register(std::shared_ptr<AlignedSource> source) {
    std::lock_guard<std::mutex> lock(mu_);
    sources_.push_back(std::move(source));
    registered_ = true;
    cv_.notify_all();
  }
  // The reporter's wait between reports: returns after `timeout`, at once
  // when a source registers, or when stopped (then false, and from then on).
  bool Wait(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return stopped_ || registered_; });
    registered_ = false;
    return !stopped_;
  }
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  // The registered sources.
  std::vector<std::shared_ptr<AlignedSource>> Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return sources_;
  }
  // Drops the sources of `reported` that were done when their report went
  // out: the JobManager knows they no longer hold their groups back.
  void ForgetDone(const std::vector<std::shared_ptr<AlignedSource>>& reported, const std::vector<bool>& was_done) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < reported.size(); ++i) {
      if (was_done[i]) std::erase(sources_, reported[i]);
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<AlignedSource>> sources_;
  bool registered_ = false;  // since the last Wait
  bool stopped_ = false;
};

}  // namespace vstream
