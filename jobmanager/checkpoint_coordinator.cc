#include "jobmanager/checkpoint_coordinator.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace vstream {
namespace {

constexpr int64_t kDefaultTimeoutMs = 10 * 60 * 1000;
constexpr int kDefaultMaxConcurrent = 1;
constexpr int kDefaultRetained = 3;
// Tasks named in a timeout message.
constexpr size_t kWaitingListed = 3;

std::string ChkDir(CheckpointId id) { return absl::StrCat("chk-", id.value); }
std::string MetadataPath(CheckpointId id) { return absl::StrCat(ChkDir(id), "/_metadata"); }

bool TerminalTask(proto::TaskState s) {
  return s == proto::TASK_FINISHED || s == proto::TASK_CANCELED || s == proto::TASK_FAILED;
}

std::string TaskStateWord(proto::TaskState s) {
  switch (s) {
    case proto::TASK_FAILED: return "failed";
    case proto::TASK_CANCELED: return "was canceled";
    default: return "ended";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointCoordinator>> CheckpointCoordinator::Create(
    CheckpointCoordinatorOptions options, std::unique_ptr<CheckpointStorage> storage,
    std::unique_ptr<CompletedCheckpointStore> store, CheckpointGateway& gateway, MainThreadTimers& timers) {
  const proto::CheckpointingSpec& spec = options.spec;
  if (options.job_id.empty()) return absl::InvalidArgumentError("checkpoint coordinator: no job id");
  if (storage == nullptr) return absl::InvalidArgumentError("checkpoint coordinator: no checkpoint storage");
  if (spec.interval_ms() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpointing interval must be > 0 to coordinate checkpoints, got ", spec.interval_ms(), " ms"));
  }
  if (spec.timeout_ms() < 0 || spec.min_pause_ms() < 0 || spec.max_concurrent() < 0 || spec.retained() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpointing settings must not be negative: timeout ", spec.timeout_ms(), " ms, min_pause ",
        spec.min_pause_ms(), " ms, max_concurrent ", spec.max_concurrent(), ", retained ", spec.retained()));
  }
  if (options.spec.timeout_ms() == 0) options.spec.set_timeout_ms(kDefaultTimeoutMs);
  if (options.spec.max_concurrent() == 0) options.spec.set_max_concurrent(kDefaultMaxConcurrent);
  if (options.spec.retained() == 0) options.spec.set_retained(kDefaultRetained);
  std::unique_ptr<CheckpointCoordinator> c(
      new CheckpointCoordinator(std::move(options), std::move(storage), std::move(store), gateway, timers));
  RETURN_IF_ERROR(c->Recover());
  return c;
}

CheckpointCoordinator::CheckpointCoordinator(CheckpointCoordinatorOptions options,
                                             std::unique_ptr<CheckpointStorage> storage,
                                             std::unique_ptr<CompletedCheckpointStore> store,
                                             CheckpointGateway& gateway, MainThreadTimers& timers)
    : options_(std::move(options)),
      storage_(std::move(storage)),
      store_(std::move(store)),
      gateway_(gateway),
      timers_(timers) {}

CheckpointCoordinator::~CheckpointCoordinator() = default;

absl::Status CheckpointCoordinator::Recover() {
  if (store_ == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(proto::CompletedCheckpointList list, store_->Load());
  for (const proto::CompletedCheckpointRef& ref : list.checkpoints()) {
    next_id_ = std::max(next_id_, ref.checkpoint_id() + 1);
    absl::StatusOr<std::string> bytes = storage_->Read(ref.metadata_path());
    Completed c;
    if (!bytes.ok() || !c.metadata.ParseFromString(*bytes)) {
      spdlog::warn("job {}: completed checkpoint {} is recorded in {} but its metadata {} cannot be read{}{}",
                   options_.job_id, ref.checkpoint_id(), store_->path(), ref.metadata_path(),
                   bytes.ok() ? "" : ": ", bytes.ok() ? "" : std::string(bytes.status().message()));
      continue;
    }
    for (const auto& op : c.metadata.operators()) {
      for (const auto& f : op.keyed().files()) {
        if (f.shared() && c.shared.insert(f.path()).second) refs_[f.path()]++;
      }
    }
    last_completed_at_ms_ = std::max(last_completed_at_ms_, ref.completed_at_ms());
    completed_.push_back(std::move(c));
  }
  if (!completed_.empty()) {
    spdlog::info("job {}: {} completed checkpoint(s) recovered from {}, the latest {}", options_.job_id,
                 completed_.size(), store_->path(), completed_.back().metadata.checkpoint_id());
  }
  return absl::OkStatus();
}

const std::string& CheckpointCoordinator::storage_uri() const { return storage_->uri(); }

int CheckpointCoordinator::max_concurrent() const {
  return options_.spec.min_pause_ms() > 0 ? 1 : options_.spec.max_concurrent();
}

// ---- tasks ------------------------------------------------------------------

void CheckpointCoordinator::SetTasks(std::vector<CheckpointTask> tasks) {
  tasks_.clear();
  task_index_.clear();
  for (auto& t : tasks) {
    task_index_[t.task_id] = tasks_.size();
    tasks_.push_back(TaskEntry{std::move(t), proto::TASK_SCHEDULED});
  }
}

void CheckpointCoordinator::Reset(const std::string& reason) {
  trigger_queued_ = false;
  ++trigger_generation_;
  started_ = false;
  AbortAll(reason);
  tasks_.clear();
  task_index_.clear();
  OnCheckpointsEnded();
}

const proto::CheckpointMetadata* CheckpointCoordinator::latest_metadata() const {
  return completed_.empty() ? nullptr : &completed_.back().metadata;
}

bool CheckpointCoordinator::AllTasksStarted() const {
  if (tasks_.empty()) return false;
  for (const TaskEntry& t : tasks_) {
    if (t.state != proto::TASK_RUNNING && t.state != proto::TASK_FINISHED) return false;
  }
  return true;
}

void CheckpointCoordinator::OnTaskState(const std::string& task_id, proto::TaskState state) {
  auto it = task_index_.find(task_id);
  if (it == task_index_.end()) return;
  const size_t index = it->second;
  TaskEntry& t = tasks_[index];
  if (t.state == state || TerminalTask(t.state)) return;
  t.state = state;
  if (state == proto::TASK_FINISHED) {
    // Flink 1.14+: a finished task has nothing left to snapshot and cannot
    // acknowledge; it counts as acknowledged with no state.
    std::vector<CheckpointId> ids;
    for (const auto& [id, p] : pending_) {
      if (p.waiting.count(index) != 0) ids.push_back(id);
    }
    for (CheckpointId id : ids) {
      auto p = pending_.find(id);
      if (p == pending_.end()) continue;
      p->second.finished.push_back(index);
      TaskDone(p->second, index);
    }
    OnCheckpointsEnded();
  } else if (state == proto::TASK_FAILED || state == proto::TASK_CANCELED) {
    if (!pending_.empty()) {
      AbortAll(absl::StrCat("task ", task_id, " ", TaskStateWord(state)));
      OnCheckpointsEnded();
    }
  }
  MaybeStartPeriodic();
}

// ---- triggering ---------------------------------------------------------------

void CheckpointCoordinator::MaybeStartPeriodic() {
  if (started_ || stopped_ || !AllTasksStarted()) return;
  started_ = true;
  spdlog::info("job {}: all tasks run; a checkpoint every {} ms to {}", options_.job_id,
               options_.spec.interval_ms(), storage_->uri());
  ArmTrigger(options_.spec.interval_ms());
}

void CheckpointCoordinator::ArmTrigger(int64_t delay_ms) {
  const uint64_t generation = ++trigger_generation_;
  timers_.Schedule(std::max<int64_t>(0, delay_ms), [this, generation] {
    if (generation == trigger_generation_) PeriodicTrigger();
  });
}

void CheckpointCoordinator::PeriodicTrigger() {
  const TriggerResult result = TriggerCheckpoint();
  switch (result) {
    case TriggerResult::kTriggered:
    case TriggerResult::kTasksNotRunning:
    case TriggerResult::kNoRunningSource:
      ArmTrigger(options_.spec.interval_ms());
      break;
    case TriggerResult::kTooManyConcurrent:
      // Runs again when a checkpoint ends (OnCheckpointsEnded).
      trigger_queued_ = true;
      break;
    case TriggerResult::kMinPause:
      ArmTrigger(last_completed_at_ms_ + options_.spec.min_pause_ms() - timers_.Now());
      break;
    case TriggerResult::kStopped:
      break;
  }
}

CheckpointId CheckpointCoordinator::StartCheckpoint(int64_t now, bool savepoint) {
  // Every running task hears of it: sources start it; the others act on
  // it only once their input ended (their final checkpoint), and take it
  // with the barriers otherwise.
  std::vector<size_t> running;
  int sources = 0;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    if (tasks_[i].state != proto::TASK_RUNNING) continue;
    running.push_back(i);
    sources += tasks_[i].task.source ? 1 : 0;
  }

  const CheckpointId id{next_id_++};
  Pending& p = pending_[id];
  p.id = id;
  p.triggered_at_ms = now;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    if (tasks_[i].state != proto::TASK_FINISHED) {
      p.waiting.insert(i);
    } else {
      p.finished.push_back(i);
    }
  }
  p.tasks = static_cast<int>(p.waiting.size());
  spdlog::debug("job {}: triggering checkpoint {} ({} running source task(s)); {} task(s) take part",
                options_.job_id, id.value, sources, p.tasks);
  timers_.Schedule(options_.spec.timeout_ms(), [this, id] { OnTimeout(id); });
  for (size_t i : running) {
    proto::TriggerCheckpointRequest req;
    req.set_task_id(tasks_[i].task.task_id);
    req.set_checkpoint_id(id.value);
    req.set_timestamp_ms(now);
    // A savepoint is always aligned: it has no in-flight records, so it
    // can be restored at another parallelism.
    if (!savepoint && options_.spec.mode() != proto::AT_LEAST_ONCE) {
      req.set_unaligned(options_.spec.unaligned());
      if (!options_.spec.unaligned() && options_.spec.aligned_timeout_ms() > 0) {
        req.set_aligned_deadline_ms(now + options_.spec.aligned_timeout_ms());
      }
    }
    gateway_.TriggerCheckpoint(tasks_[i].task.address, req,
                               [this, id, i](const std::string& error) {
                                 if (!error.empty()) OnTriggerFailed(id, i, error);
                               });
  }
  return id;
}

void CheckpointCoordinator::TriggerSavepoint(const std::string& target_dir, SavepointDone done) {
  if (stopped_) {
    done(absl::FailedPreconditionError("the job ended"));
    return;
  }
  if (!AllTasksStarted()) {
    done(absl::FailedPreconditionError("not every task of the job is running yet"));
    return;
  }
  if (std::none_of(tasks_.begin(), tasks_.end(), [](const TaskEntry& t) { return t.state == proto::TASK_RUNNING; })) {
    done(absl::FailedPreconditionError("every task of the job finished"));
    return;
  }
  const CheckpointId id = StartCheckpoint(timers_.Now(), /*savepoint=*/true);
  spdlog::info("job {}: savepoint triggered as checkpoint {}, to {}", options_.job_id, id.value, target_dir);
  pending_[id].savepoints.emplace_back(target_dir, std::move(done));
}

absl::StatusOr<std::string> CheckpointCoordinator::WriteSavepoint(const proto::CheckpointMetadata& metadata,
                                                                 const std::string& target_dir) {
  const std::string name =
      absl::StrCat("savepoint-", options_.job_id.substr(0, 6), "-", metadata.checkpoint_id());
  ASSIGN_OR_RETURN(std::unique_ptr<CheckpointStorage> target,
                   CheckpointStorage::Open(absl::StrCat(target_dir, target_dir.back() == '/' ? "" : "/", name)));
  // Every file, under the same relative path: the metadata stays valid.
  std::error_code ec;
  const std::filesystem::path tmp =
      std::filesystem::temp_directory_path() / absl::StrCat("vstream-savepoint-", options_.job_id, "-", name);
  for (const proto::OperatorSnapshot& op : metadata.operators()) {
    for (const proto::StateFile& f : op.keyed().files()) {
      if (IsInlineStateFile(f)) continue;  // in the metadata
      RETURN_IF_ERROR(storage_->Download(f.path(), tmp.string()));
      absl::Status s = target->Upload(tmp.string(), f.path());
      std::filesystem::remove(tmp, ec);
      RETURN_IF_ERROR(s);
    }
  }
  RETURN_IF_ERROR(target->Write("_metadata", metadata.SerializeAsString()));
  return target->uri();
}

TriggerResult CheckpointCoordinator::TriggerCheckpoint() {
  if (stopped_) return TriggerResult::kStopped;
  if (!AllTasksStarted()) {
    spdlog::debug("job {}: checkpoint not triggered: not every task is running", options_.job_id);
    return TriggerResult::kTasksNotRunning;
  }
  if (static_cast<int>(pending_.size()) >= max_concurrent()) return TriggerResult::kTooManyConcurrent;
  const int64_t now = timers_.Now();
  if (options_.spec.min_pause_ms() > 0 && last_completed_at_ms_ > 0 &&
      now < last_completed_at_ms_ + options_.spec.min_pause_ms()) {
    return TriggerResult::kMinPause;
  }
  if (std::none_of(tasks_.begin(), tasks_.end(), [](const TaskEntry& t) { return t.state == proto::TASK_RUNNING; })) {
    spdlog::debug("job {}: checkpoint not triggered: every task finished", options_.job_id);
    return TriggerResult::kNoRunningSource;
  }
  StartCheckpoint(now, /*savepoint=*/false);
  return TriggerResult::kTriggered;
}

void CheckpointCoordinator::OnTriggerFailed(CheckpointId id, size_t task, const std::string& error) {
  auto it = pending_.find(id);
  const TaskEntry& t = tasks_[task];
  // A source that finished meanwhile counts as acknowledged: no failure.
  // Other tasks get barriers in-band; the trigger only matters to them
  // after their input ended, and a task that cannot be reached fails.
  if (it == pending_.end() || it->second.waiting.count(task) == 0 || t.state == proto::TASK_FINISHED ||
      !t.task.source) {
    return;
  }
  Abort(id, absl::StrCat("cannot trigger it at task ", t.task.task_id, " on ", t.task.address, ": ", error));
  OnCheckpointsEnded();
}

void CheckpointCoordinator::OnTimeout(CheckpointId id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  const Pending& p = it->second;
  std::string waiting;
  size_t listed = 0;
  for (size_t i : p.waiting) {
    if (listed++ == kWaitingListed) {
      absl::StrAppend(&waiting, ", ...");
      break;
    }
    absl::StrAppend(&waiting, listed > 1 ? ", " : "", tasks_[i].task.task_id);
  }
  Abort(id, absl::StrCat("expired after ", options_.spec.timeout_ms(), " ms with ", p.tasks - p.waiting.size(),
                         " of ", p.tasks, " tasks done; waiting for ", waiting));
  OnCheckpointsEnded();
}

// ---- acknowledgements ------------------------------------------------------------

void CheckpointCoordinator::ReceiveAcknowledge(const proto::AcknowledgeCheckpointRequest& ack) {
  const CheckpointId id{ack.checkpoint_id()};
  auto task = task_index_.find(ack.task_id());
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    spdlog::debug("job {}: acknowledgement of checkpoint {} from task {} ignored: the checkpoint is not pending",
                  options_.job_id, id.value, ack.task_id());
    DiscardLateAcknowledge(ack);
    return;
  }
  if (task == task_index_.end() || it->second.waiting.count(task->second) == 0) {
    spdlog::debug("job {}: acknowledgement of checkpoint {} from task {} ignored: {}", options_.job_id, id.value,
                  ack.task_id(), task == task_index_.end() ? "no such task" : "it already answered or finished");
    // Its new shared files go once nothing refers to them; its private ones
    // go with chk-<id>/ if the checkpoint fails, else stay unreferenced.
    for (const proto::OperatorSnapshot& op : ack.operators()) {
      for (const proto::StateFile& f : op.keyed().files()) {
        if (f.shared() && refs_.count(f.path()) == 0) discard_later_.insert(f.path());
      }
    }
    return;
  }
  Pending& p = it->second;
  const std::string chk_prefix = ChkDir(id) + "/";
  for (const proto::OperatorSnapshot& op : ack.operators()) {
    for (const proto::StateFile& f : op.keyed().files()) {
      if (f.shared()) {
        if (p.shared.insert(f.path()).second) refs_[f.path()]++;
      } else if (!IsInlineStateFile(f) && !absl::StartsWith(f.path(), chk_prefix)) {
        p.private_elsewhere.push_back(f.path());
      }
    }
    p.operators.push_back(op);
  }
  p.bytes += ack.stats().bytes_total();
  p.bytes_uploaded += ack.stats().bytes_uploaded();
  p.alignment_ms = std::max(p.alignment_ms, ack.stats().alignment_ms());
  p.sync_ms = std::max(p.sync_ms, ack.stats().sync_ms());
  p.async_ms = std::max(p.async_ms, ack.stats().async_ms());
  p.unaligned = p.unaligned || ack.stats().unaligned();
  p.channel_state_bytes += ack.stats().channel_state_bytes();
  p.acknowledged++;
  spdlog::debug("job {}: task {} acknowledged checkpoint {} ({} of {})", options_.job_id, ack.task_id(), id.value,
                p.tasks - p.waiting.size() + 1, p.tasks);
  TaskDone(p, task->second);
  OnCheckpointsEnded();
}

void CheckpointCoordinator::TaskDone(Pending& p, size_t task) {
  p.waiting.erase(task);
  if (p.waiting.empty()) Complete(p.id);
}

void CheckpointCoordinator::ReceiveDecline(const proto::DeclineCheckpointRequest& decline) {
  const CheckpointId id{decline.checkpoint_id()};
  if (pending_.count(id) == 0) {
    spdlog::debug("job {}: decline of checkpoint {} by task {} ignored: the checkpoint is not pending ({})",
                  options_.job_id, id.value, decline.task_id(), decline.reason());
    return;
  }
  Abort(id, absl::StrCat("task ", decline.task_id(), " declined it: ",
                         decline.reason().empty() ? "no reason given" : decline.reason()));
  OnCheckpointsEnded();
}

void CheckpointCoordinator::DiscardLateAcknowledge(const proto::AcknowledgeCheckpointRequest& ack) {
  const CheckpointId id{ack.checkpoint_id()};
  for (const Completed& c : completed_) {
    if (c.metadata.checkpoint_id() == id.value) return;  // a duplicate of a kept one
  }
  bool any = false;
  for (const proto::OperatorSnapshot& op : ack.operators()) {
    for (const proto::StateFile& f : op.keyed().files()) {
      any = true;
      if (f.shared()) {
        if (refs_.count(f.path()) == 0) discard_later_.insert(f.path());
      } else if (!IsInlineStateFile(f) && !absl::StartsWith(f.path(), ChkDir(id) + "/")) {
        DeleteQuietly(f.path(), id);
      }
    }
  }
  if (!any) return;
  DeleteQuietly(ChkDir(id), id);
  if (pending_.empty()) CollectGarbage();
}

// ---- completion and abort ------------------------------------------------------------

void CheckpointCoordinator::Complete(CheckpointId id) {
  auto it = pending_.find(id);
  Pending& p = it->second;
  if (p.acknowledged == 0) {
    Abort(id, "every task finished before taking part");
    return;
  }
  const int64_t now = timers_.Now();
  Completed c;
  proto::CheckpointMetadata& m = c.metadata;
  m.set_job_id(options_.job_id);
  m.set_checkpoint_id(id.value);
  m.set_timestamp_ms(p.triggered_at_ms);
  m.set_completed_at_ms(now);
  m.set_channel_layout(options_.channel_layout);
  m.mutable_key_group_fields()->insert(options_.key_group_fields.begin(), options_.key_group_fields.end());
  for (size_t i : p.finished) {
    for (int v : tasks_[i].task.vertices) {
      proto::OperatorSnapshot finished;
      finished.set_vertex_id(v);
      finished.set_subtask_index(tasks_[i].task.subtask);
      finished.set_finished(true);
      p.operators.push_back(std::move(finished));
    }
  }
  std::sort(p.operators.begin(), p.operators.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.vertex_id(), a.subtask_index()) < std::make_pair(b.vertex_id(), b.subtask_index());
  });
  for (auto& op : p.operators) *m.add_operators() = std::move(op);
  // The metadata is written last: a checkpoint without it is incomplete.
  if (absl::Status s = storage_->Write(MetadataPath(id), m.SerializeAsString()); !s.ok()) {
    Abort(id, absl::StrCat("cannot write its metadata: ", s.message()));
    return;
  }
  c.shared = std::move(p.shared);
  const proto::CheckpointStatus status = StatusOf(p, proto::CHECKPOINT_COMPLETED, now);
  std::vector<std::pair<std::string, SavepointDone>> savepoints = std::move(p.savepoints);
  pending_.erase(it);

  // Older pending checkpoints are subsumed: the tasks moved past them.
  std::vector<CheckpointId> older;
  for (const auto& [pid, pp] : pending_) {
    if (pid < id) older.push_back(pid);
  }
  for (CheckpointId o : older) Abort(o, absl::StrCat("subsumed by checkpoint ", id.value));

  completed_.push_back(std::move(c));
  last_completed_at_ms_ = now;
  std::vector<Completed> subsumed;
  while (static_cast<int>(completed_.size()) > options_.spec.retained()) {
    subsumed.push_back(std::move(completed_.front()));
    completed_.pop_front();
  }
  AddHistory(status);
  spdlog::info("job {}: checkpoint {} completed in {} ms ({} bytes, {} uploaded, max alignment {} ms, max sync {} ms, "
               "max async {} ms, {} task(s){})",
               options_.job_id, id.value, status.duration_ms(), status.bytes(), status.bytes_uploaded(), status.alignment_ms(),
               status.sync_ms(), status.async_ms(), status.tasks(),
               status.unaligned() ? absl::StrCat(", unaligned with ", status.channel_state_bytes(), " bytes in flight")
                                  : std::string());
  // Recorded before the tasks hear of it: sinks commit on the notification,
  // so a restart must find this checkpoint once any of them may have.
  if (absl::Status s = RecordCompleted(); !s.ok()) {
    spdlog::error("job {}: checkpoint {} completed but cannot be recorded in the job store: {}",
                  options_.job_id, id.value, std::string(s.message()));
  }
  Notify(id, /*completed=*/true);
  for (auto& [target, done] : savepoints) {
    absl::StatusOr<std::string> path = WriteSavepoint(completed_.back().metadata, target);
    if (path.ok()) {
      spdlog::info("job {}: savepoint {} written to {}", options_.job_id, id.value, *path);
      done(std::make_pair(*path, id.value));
    } else {
      spdlog::warn("job {}: savepoint {} completed but cannot be copied to {}: {}", options_.job_id, id.value,
                   target, std::string(path.status().message()));
      done(absl::Status(path.status().code(), absl::StrCat("checkpoint ", id.value, " completed but cannot be "
                                                           "copied to ", target, ": ", path.status().message())));
    }
  }

  // Only now that the record no longer lists them: delete subsumed ones.
  for (Completed& old : subsumed) {
    const CheckpointId old_id{old.metadata.checkpoint_id()};
    for (const std::string& path : old.shared) {
      auto r = refs_.find(path);
      if (r != refs_.end() && --r->second == 0) {
        refs_.erase(r);
        DeleteQuietly(path, old_id);
      }
    }
    DeleteQuietly(ChkDir(old_id), old_id);
    spdlog::debug("job {}: checkpoint {} subsumed by {} and deleted", options_.job_id, old_id.value, id.value);
  }
  DeleteChkDirsNotKept();
}

void CheckpointCoordinator::Abort(CheckpointId id, const std::string& reason) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  proto::CheckpointStatus status = StatusOf(p, proto::CHECKPOINT_FAILED, timers_.Now());
  status.set_failure(reason);
  AddHistory(std::move(status));
  spdlog::warn("job {}: checkpoint {} failed: {}", options_.job_id, id.value, reason);
  for (const std::string& path : p.shared) {
    auto r = refs_.find(path);
    if (r != refs_.end() && --r->second == 0) {
      refs_.erase(r);
      discard_later_.insert(path);
    }
  }
  DeleteQuietly(ChkDir(id), id);
  for (const std::string& path : p.private_elsewhere) DeleteQuietly(path, id);
  Notify(id, /*completed=*/false);
  for (auto& [target, done] : p.savepoints) {
    done(absl::AbortedError(absl::StrCat("savepoint (checkpoint ", id.value, ") failed: ", reason)));
  }
}

void CheckpointCoordinator::AbortAll(const std::string& reason) {
  std::vector<CheckpointId> ids;
  for (const auto& [id, p] : pending_) ids.push_back(id);
  for (CheckpointId id : ids) Abort(id, reason);
}

void CheckpointCoordinator::OnCheckpointsEnded() {
  if (pending_.empty()) CollectGarbage();
  if (trigger_queued_ && !stopped_ && static_cast<int>(pending_.size()) < max_concurrent()) {
    trigger_queued_ = false;
    PeriodicTrigger();
  }
}

void CheckpointCoordinator::CollectGarbage() {
  for (const std::string& path : discard_later_) {
    if (refs_.count(path) == 0) DeleteQuietly(path, CheckpointId{});
  }
  discard_later_.clear();
}

void CheckpointCoordinator::DeleteChkDirsNotKept() {
  // chk-<n> directories that late uploads of aborted checkpoints left.
  absl::StatusOr<std::vector<std::string>> names = storage_->List("");
  if (!names.ok()) return;
  std::set<int64_t> kept;
  for (const Completed& c : completed_) kept.insert(c.metadata.checkpoint_id());
  for (const auto& [id, p] : pending_) kept.insert(id.value);
  for (const std::string& name : *names) {
    int64_t n = 0;
    if (!absl::StartsWith(name, "chk-") || !absl::SimpleAtoi(AV(std::string_view(name).substr(4)), &n)) continue;
    if (kept.count(n) == 0) DeleteQuietly(name, CheckpointId{n});
  }
}

void CheckpointCoordinator::Notify(CheckpointId id, bool completed) {
  for (const TaskEntry& t : tasks_) {
    if (TerminalTask(t.state)) continue;  // finished tasks cannot hear it
    proto::CheckpointNotification n;
    n.set_task_id(t.task.task_id);
    n.set_checkpoint_id(id.value);
    n.set_completed(completed);
    gateway_.NotifyCheckpoint(t.task.address, n);
  }
}

absl::Status CheckpointCoordinator::RecordCompleted() {
  if (store_ == nullptr) return absl::OkStatus();
  proto::CompletedCheckpointList list;
  for (const Completed& c : completed_) {
    proto::CompletedCheckpointRef* ref = list.add_checkpoints();
    ref->set_checkpoint_id(c.metadata.checkpoint_id());
    ref->set_storage(storage_->uri());
    ref->set_metadata_path(MetadataPath(CheckpointId{c.metadata.checkpoint_id()}));
    ref->set_timestamp_ms(c.metadata.timestamp_ms());
    ref->set_completed_at_ms(c.metadata.completed_at_ms());
  }
  return store_->Store(list);
}

void CheckpointCoordinator::DeleteQuietly(const std::string& path, CheckpointId id) {
  if (absl::Status s = storage_->Delete(path); !s.ok()) {
    spdlog::warn("job {}: cannot delete {} (checkpoint {}) from {}: {}", options_.job_id, path, id.value,
                 storage_->uri(), std::string(s.message()));
  }
}

void CheckpointCoordinator::Shutdown(const std::string& reason) {
  if (stopped_) return;
  stopped_ = true;
  trigger_queued_ = false;
  ++trigger_generation_;
  AbortAll(reason);
  CollectGarbage();
}

// ---- status ------------------------------------------------------------------------

proto::CheckpointStatus CheckpointCoordinator::StatusOf(const Pending& p, proto::CheckpointState state,
                                                        int64_t now) const {
  proto::CheckpointStatus s;
  s.set_checkpoint_id(p.id.value);
  s.set_state(state);
  s.set_triggered_at_ms(p.triggered_at_ms);
  s.set_duration_ms(std::max<int64_t>(0, now - p.triggered_at_ms));
  s.set_bytes(p.bytes);
  s.set_bytes_uploaded(p.bytes_uploaded);
  s.set_alignment_ms(p.alignment_ms);
  s.set_sync_ms(p.sync_ms);
  s.set_async_ms(p.async_ms);
  s.set_unaligned(p.unaligned);
  s.set_channel_state_bytes(p.channel_state_bytes);
  s.set_acknowledged(p.tasks - static_cast<int>(p.waiting.size()));
  s.set_tasks(p.tasks);
  return s;
}

void CheckpointCoordinator::AddHistory(proto::CheckpointStatus status) {
  history_.push_back(std::move(status));
  while (static_cast<int>(history_.size()) > std::max(1, options_.status_checkpoints)) history_.pop_front();
}

void CheckpointCoordinator::AddStatus(proto::JobStatus* status) const {
  status->set_checkpoint_storage(storage_->uri());
  status->set_latest_completed_checkpoint(latest_completed().value);
  std::vector<proto::CheckpointStatus> all(history_.begin(), history_.end());
  const int64_t now = timers_.Now();
  for (const auto& [id, p] : pending_) all.push_back(StatusOf(p, proto::CHECKPOINT_IN_PROGRESS, now));
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.checkpoint_id() < b.checkpoint_id(); });
  const size_t keep = static_cast<size_t>(std::max(1, options_.status_checkpoints));
  const size_t first = all.size() > keep ? all.size() - keep : 0;
  for (size_t i = first; i < all.size(); ++i) *status->add_checkpoints() = std::move(all[i]);
}

CheckpointId CheckpointCoordinator::latest_completed() const {
  return completed_.empty() ? CheckpointId{} : CheckpointId{completed_.back().metadata.checkpoint_id()};
}

std::vector<CheckpointId> CheckpointCoordinator::pending() const {
  std::vector<CheckpointId> ids;
  for (const auto& [id, p] : pending_) ids.push_back(id);
  return ids;
}

std::vector<CheckpointId> CheckpointCoordinator::retained() const {
  std::vector<CheckpointId> ids;
  for (const Completed& c : completed_) ids.push_back(CheckpointId{c.metadata.checkpoint_id()});
  return ids;
}

}  // namespace vstream
