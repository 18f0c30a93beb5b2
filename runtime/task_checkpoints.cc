#include "runtime/task_checkpoints.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "spdlog/spdlog.h"

namespace vstream {
namespace {

int64_t MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
}

// One operator's sync result, handed to the async part.
struct PendingOperator {
  proto::OperatorSnapshot snapshot;
  std::shared_ptr<IncrementalSnapshotter> snapshotter;  // null: no keyed state
  LocalSnapshot local;
  std::string private_dir;
};

}  // namespace

TaskCheckpoints::TaskCheckpoints(std::string job_id, std::string task_id, int subtask_index,
                                 KeyGroupRange key_groups, std::shared_ptr<CheckpointStorage> storage,
                                 CheckpointResponder* responder, Executor* uploads, Executor* copies)
    : job_id_(std::move(job_id)),
      task_id_(std::move(task_id)),
      subtask_index_(subtask_index),
      key_groups_(key_groups),
      storage_(std::move(storage)),
      responder_(responder),
      uploads_(uploads),
      copies_(copies == uploads ? nullptr : copies) {}

void TaskCheckpoints::AddOperator(int vertex_id, StreamOperator* op, const std::string& state_dir) {
  Op o{vertex_id, op, state_dir + "-snapshots", nullptr};
  if (op->keyed_state() != nullptr) {
    // Shared files are named per attempt: a restarted task's RocksDB reuses
    // SST numbers.
    o.snapshotter = std::make_shared<IncrementalSnapshotter>(
        storage_, absl::StrReplaceAll(absl::StrCat(task_id_, "-", vertex_id), {{"/", "-"}}));
  }
  ops_.push_back(std::move(o));
}

void TaskCheckpoints::AddRestored(int vertex_id, const proto::KeyedStateHandle& handle) {
  for (const Op& o : ops_) {
    if (o.vertex_id == vertex_id && o.snapshotter) o.snapshotter->AddRestored(handle);
  }
}

namespace {

// Logs and sends a decline (from the task thread or the upload thread).
void SendDecline(CheckpointResponder* responder, const std::string& job_id, const std::string& task_id,
                 int64_t checkpoint_id, const std::string& reason) {
  spdlog::warn("task {} declines checkpoint {}: {}", task_id, checkpoint_id, reason);
  proto::DeclineCheckpointRequest decline;
  decline.set_job_id(job_id);
  decline.set_task_id(task_id);
  decline.set_checkpoint_id(checkpoint_id);
  decline.set_reason(reason);
  responder->Decline(decline);
}

}  // namespace

void TaskCheckpoints::Decline(int64_t checkpoint_id, const std::string& reason) {
  SendDecline(responder_, job_id_, task_id_, checkpoint_id, reason);
}

// What the async part of one checkpoint needs.
struct TaskCheckpoints::Upload {
  int64_t checkpoint_id = 0;
  int64_t alignment_ms = 0;
  int64_t sync_ms = 0;
  std::vector<PendingOperator> ops;
  bool unaligned = false;
  std::string channel_state;  // serialized; empty: none
  std::string channel_state_path;
  // Posted (the sync part's end): async_ms counts the waits for the copy
  // and upload threads too.
  std::chrono::steady_clock::time_point async_start{};
};

void TaskCheckpoints::Snapshot(int64_t checkpoint_id, int64_t alignment_ms, bool channel_state_pending) {
  if (waiting_) AbandonChannelState(waiting_->checkpoint_id, "a newer checkpoint started first");
  CopySlice(SIZE_MAX);  // the previous snapshot's copy, if it is not done yet
  const auto sync_start = std::chrono::steady_clock::now();
  auto upload = std::make_shared<Upload>();
  upload->checkpoint_id = checkpoint_id;
  upload->alignment_ms = alignment_ms;
  for (const Op& o : ops_) {
    PendingOperator p;
    p.snapshot.set_vertex_id(o.vertex_id);
    p.snapshot.set_subtask_index(subtask_index_);
    if (finished_) {
      p.snapshot.set_finished(true);
      upload->ops.push_back(std::move(p));
      continue;
    }
    p.snapshot.set_operator_state(o.op->SnapshotOperatorState(checkpoint_id));
    if (!o.op->status().ok()) {  // e.g. a sink could not make its staged output durable
      Decline(checkpoint_id, std::string(o.op->status().message()));
      return;
    }
    if (o.snapshotter) {
      if (absl::Status s = o.op->PrepareSnapshot(); !s.ok()) {
        Decline(checkpoint_id, std::string(s.message()));
        return;
      }
      std::error_code ec;
      std::filesystem::create_directories(o.snapshot_root, ec);
      const std::string dir = (std::filesystem::path(o.snapshot_root) / absl::StrCat("chk-", checkpoint_id)).string();
      std::filesystem::remove_all(dir, ec);
      // Copying in slices, the files are linked in the first (LocalSnapshot::CopySome).
      absl::StatusOr<LocalSnapshot> local =
          TakeLocalSnapshot(*o.op->keyed_state(), checkpoint_id, dir, key_groups_, /*link_later=*/copy_in_slices_);
      if (!local.ok()) {
        Decline(checkpoint_id, std::string(local.status().message()));
        return;
      }
      p.snapshotter = o.snapshotter;
      p.local = std::move(*local);
      p.private_dir = absl::StrCat("chk-", checkpoint_id, "/", o.vertex_id, "-", subtask_index_);
    }
    upload->ops.push_back(std::move(p));
  }
  upload->sync_ms = MillisSince(sync_start);
  if (channel_state_pending) {
    waiting_ = std::move(upload);
    return;
  }
  Post(std::move(upload));
}

void TaskCheckpoints::SetChannelState(int64_t checkpoint_id, ChannelState state, bool unaligned) {
  if (!waiting_ || waiting_->checkpoint_id != checkpoint_id) return;
  std::shared_ptr<Upload> upload = std::move(waiting_);
  upload->unaligned = unaligned || !state.empty();
  if (!state.empty() && !upload->ops.empty()) {
    upload->channel_state = state.Serialize();
    upload->channel_state_path =
        absl::StrCat("chk-", checkpoint_id, "/channels-", upload->ops.front().snapshot.vertex_id(), "-", subtask_index_);
  }
  Post(std::move(upload));
}

void TaskCheckpoints::AbandonChannelState(int64_t checkpoint_id, const std::string& reason) {
  if (!waiting_ || waiting_->checkpoint_id != checkpoint_id) return;
  DropWaiting();
  Decline(checkpoint_id, reason);
}

void TaskCheckpoints::DropWaiting() {
  // Its local RocksDB checkpoints (hard links, if made) go, and their holds
  // on file deletions; an upload would have removed them.
  std::error_code ec;
  for (const PendingOperator& p : waiting_->ops) {
    if (!p.local.dir.empty()) std::filesystem::remove_all(p.local.dir, ec);
  }
  waiting_.reset();
}

void TaskCheckpoints::Post(std::shared_ptr<Upload> upload) {
  upload->async_start = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(in_flight_->mu);
    in_flight_->count++;
  }
  auto async_part = [upload, job_id = job_id_, task_id = task_id_, storage = storage_, responder = responder_,
                     in_flight = in_flight_] {
    struct Done {
      InFlight& f;
      ~Done() {
        {
          // Held for the decrement only: this thread may run at nice 19, and
          // the task thread takes the lock to post.
          std::lock_guard<std::mutex> lock(f.mu);
          f.count--;
        }
        f.cv.notify_all();
      }
    } done{*in_flight};
    const int64_t checkpoint_id = upload->checkpoint_id;
    auto decline = [&](const std::string& reason) { SendDecline(responder, job_id, task_id, checkpoint_id, reason); };
    proto::AcknowledgeCheckpointRequest ack;
    ack.set_job_id(job_id);
    ack.set_task_id(task_id);
    ack.set_checkpoint_id(checkpoint_id);
    uint64_t uploaded = 0, total = 0;
    if (!upload->channel_state.empty()) {
      if (absl::Status s = storage->Write(upload->channel_state_path, upload->channel_state); !s.ok()) {
        decline(absl::StrCat("writing its channel state failed: ", s.message()));
        return;
      }
      uploaded += upload->channel_state.size();
      total += upload->channel_state.size();
      upload->ops.front().snapshot.set_channel_state(upload->channel_state_path);
      upload->ops.front().snapshot.set_channel_state_bytes(static_cast<int64_t>(upload->channel_state.size()));
    }
    for (PendingOperator& p : upload->ops) {
      if (p.snapshotter) {
        uint64_t bytes = 0;
        absl::StatusOr<proto::KeyedStateHandle> handle = p.snapshotter->Upload(p.local, p.private_dir, &bytes);
        if (!handle.ok()) {
          decline(absl::StrCat("upload failed: ", handle.status().message()));
          return;
        }
        uploaded += bytes;
        for (const auto& f : handle->files()) total += f.size();
        *p.snapshot.mutable_keyed() = std::move(*handle);
      }
      total += p.snapshot.operator_state().size();
      *ack.add_operators() = std::move(p.snapshot);
    }
    proto::CheckpointTaskStats* stats = ack.mutable_stats();
    stats->set_alignment_ms(upload->alignment_ms);
    stats->set_sync_ms(upload->sync_ms);
    stats->set_async_ms(MillisSince(upload->async_start));
    stats->set_bytes_uploaded(static_cast<int64_t>(uploaded));
    stats->set_bytes_total(static_cast<int64_t>(total));
    stats->set_unaligned(upload->unaligned);
    stats->set_channel_state_bytes(static_cast<int64_t>(upload->channel_state.size()));
    responder->Acknowledge(ack);
  };
  if (copy_in_slices_) {
    CopySlice(SIZE_MAX);
    copying_ = std::move(upload);
    copying_op_ = 0;
    after_copy_ = std::move(async_part);
    return;
  }
  // Not in slices (any more: a snapshot that waited for its channel state
  // past the end of the input): the files are linked here, on the task
  // thread, not by the copy or upload thread (FileDeletionHold).
  for (PendingOperator& p : upload->ops) {
    p.local.LinkFiles().IgnoreError();  // recorded in link_status
  }
  if (copies_ == nullptr) {
    uploads_->Post(std::move(async_part));
    return;
  }
  copies_->Post([upload, uploads = uploads_, async_part = std::move(async_part)]() mutable {
    for (PendingOperator& p : upload->ops) p.local.CopyLater();
    uploads->Post(std::move(async_part));
  });
}

void TaskCheckpoints::CopySlice(size_t entries) {
  if (copying_ == nullptr) return;
  size_t budget = entries;
  for (; copying_op_ < copying_->ops.size(); ++copying_op_) {
    if (budget == 0 || !copying_->ops[copying_op_].local.CopySome(&budget)) return;
  }
  copying_.reset();
  uploads_->Post(std::move(after_copy_));
  after_copy_ = nullptr;
}

void TaskCheckpoints::set_copy_in_slices(bool on) {
  copy_in_slices_ = on;
  if (!copy_in_slices_) CopySlice(SIZE_MAX);
}

void TaskCheckpoints::WaitForUploads(const std::atomic<bool>& cancelled) {
  CopySlice(SIZE_MAX);
  std::unique_lock<std::mutex> lock(in_flight_->mu);
  while (in_flight_->count > 0 && !cancelled.load()) {
    in_flight_->cv.wait_for(lock, std::chrono::milliseconds(50));
  }
}

void TaskCheckpoints::OnNotification(int64_t checkpoint_id, bool completed) {
  if (!completed) {
    // Aborted while its channel state was still being collected.
    if (waiting_ && waiting_->checkpoint_id == checkpoint_id) DropWaiting();
    return;
  }
  for (const Op& o : ops_) {
    if (o.snapshotter) o.snapshotter->OnCheckpointComplete(checkpoint_id);
    o.op->NotifyCheckpointComplete(checkpoint_id);
  }
}

}  // namespace vstream
