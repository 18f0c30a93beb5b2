#include "runtime/operators/sinks.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace vstream {

namespace {
constexpr size_t kFlushBytes = 1 << 20;
std::mutex stdout_mu;  // one line-coherent stdout per process

namespace fs = std::filesystem;

// The file sink's operator state, version 1. Text lines:
//   vstream-file-sink 1
//   subtask <subtask index>
//   format <ext>
//   next <next sequence number>
//   pending <checkpoint id> <sequence number>    (zero or more, seq ascending)
//   end
// The closing line tells a complete state from a truncated one.
constexpr std::string_view kStateMagic = "vstream-file-sink 1";

struct FileSinkState {
  int subtask = 0;
  std::string format;
  int64_t next_seq = 0;
  std::vector<FileSink::PendingPart> pending;
};

std::string ErrnoMessage(int err) { return std::error_code(err, std::generic_category()).message(); }

// A whole non-negative decimal number, without sign or leading zeros.
template <typename Int>
bool ParseCount(std::string_view s, Int* out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end && *out >= 0;
}

// Splits off the first line of *rest (without its '\n'). False at the end.
bool NextLine(std::string_view* rest, std::string_view* line) {
  if (rest->empty()) return false;
  const size_t nl = rest->find('\n');
  *line = rest->substr(0, nl);
  *rest = nl == std::string_view::npos ? std::string_view() : rest->substr(nl + 1);
  return true;
}

// If line is "<key> <value>", sets *value.
bool KeyValue(std::string_view line, std::string_view key, std::string_view* value) {
  if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ' ') return false;
  *value = line.substr(key.size() + 1);
  return true;
}

bool ValidExt(std::string_view ext) {
  if (ext.empty() || ext.size() > 16) return false;
  for (char c : ext) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

std::string EncodeState(int subtask, const std::string& format, int64_t next_seq,
                        const std::vector<FileSink::PendingPart>& pending) {
  std::string out =
      absl::StrCat(std::string(kStateMagic), "\nsubtask ", subtask, "\nformat ", format, "\nnext ", next_seq, "\n");
  for (const auto& p : pending) absl::StrAppend(&out, "pending ", p.checkpoint_id, " ", p.seq, "\n");
  out += "end\n";
  return out;
}

absl::StatusOr<FileSinkState> DecodeState(std::string_view state) {
  auto bad = [](const std::string& what) {
    return absl::DataLossError(absl::StrCat("corrupt file sink state: ", what));
  };
  FileSinkState s;
  std::string_view rest = state, line, value;
  if (!NextLine(&rest, &line) || line != kStateMagic) return bad("unknown header (expected version 1)");
  if (!NextLine(&rest, &line) || !KeyValue(line, "subtask", &value) || !ParseCount(value, &s.subtask)) {
    return bad("no subtask");
  }
  if (!NextLine(&rest, &line) || !KeyValue(line, "format", &value) || !ValidExt(value)) return bad("no format");
  s.format = std::string(value);
  if (!NextLine(&rest, &line) || !KeyValue(line, "next", &value) || !ParseCount(value, &s.next_seq)) {
    return bad("no next sequence number");
  }
  while (true) {
    if (!NextLine(&rest, &line)) return bad("truncated");
    if (line == "end") break;
    if (!KeyValue(line, "pending", &value)) return bad("unexpected line");
    const size_t space = value.find(' ');
    FileSink::PendingPart p;
    if (space == std::string_view::npos || !ParseCount(value.substr(0, space), &p.checkpoint_id) ||
        !ParseCount(value.substr(space + 1), &p.seq)) {
      return bad("malformed pending file");
    }
    if (p.seq >= s.next_seq || (!s.pending.empty() && p.seq <= s.pending.back().seq)) {
      return bad("pending file numbers out of order");
    }
    s.pending.push_back(p);
  }
  if (!rest.empty()) return bad("data after the end");
  return s;
}

enum class PartKind { kOther, kHidden, kVisible };

// Classifies a file name of the sink directory against subtask and ext:
// `part-<subtask>-<seq>.<ext>` is visible, `.part-<subtask>-<seq>.<ext>.inprogress`
// and the unnumbered `.part-<subtask>.<ext>.inprogress` of a run without
// checkpointing (seq -1) are hidden.
PartKind ClassifyPart(std::string_view name, int subtask, const std::string& ext, int64_t* seq) {
  PartKind kind = PartKind::kVisible;
  if (!name.empty() && name[0] == '.') {
    constexpr std::string_view kSuffix = ".inprogress";
    if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) {
      return PartKind::kOther;
    }
    name = name.substr(1, name.size() - 1 - kSuffix.size());
    kind = PartKind::kHidden;
  }
  const std::string prefix = absl::StrCat("part-", subtask);
  const std::string dot_ext = "." + ext;
  if (name.size() <= prefix.size() + dot_ext.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - dot_ext.size()) != dot_ext) {
    return PartKind::kOther;
  }
  std::string_view middle = name.substr(prefix.size(), name.size() - prefix.size() - dot_ext.size());
  if (middle.empty()) {  // unnumbered
    *seq = -1;
    return kind == PartKind::kHidden ? kind : PartKind::kOther;
  }
  if (middle[0] != '-' || !ParseCount(middle.substr(1), seq)) return PartKind::kOther;
  return kind;
}

// Makes renames and new entries in dir durable.
absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open directory ", dir, ": ", ErrnoMessage(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("fsync of directory ", dir, " failed: ", ErrnoMessage(err)));
  return absl::OkStatus();
}

}  // namespace

FileSink::FileSink(OperatorCounters& counters, Schema schema, std::string dir, std::string format)
    : StreamOperator(counters), schema_(std::move(schema)), dir_(std::move(dir)), format_(std::move(format)) {}

FileSink::~FileSink() {
  if (file_) std::fclose(file_);  // left in progress: the job did not finish
}

absl::Status FileSink::Open(const OperatorContext& ctx) {
  auto writer = CreateRecordWriter(format_, schema_);
  if (!writer.ok()) return writer.status();
  writer_ = std::move(*writer);
  header_ = writer_->Header();
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create sink directory ", dir_, ": ", ec.message()));
  subtask_ = ctx.subtask_index;
  checkpointing_ = ctx.checkpointing;
  at_least_once_ = ctx.checkpointing && ctx.at_least_once;
  // With checkpointing, part files are opened on their first record, and
  // leftovers are cleaned up then or by RestoreOperatorState, which comes
  // after Open on a restore and must publish its pending files first.
  if (checkpointing_) return absl::OkStatus();
  const std::string name = absl::StrCat("part-", ctx.subtask_index, ".", format_);
  final_path_ = (std::filesystem::path(dir_) / name).string();
  in_progress_path_ = (std::filesystem::path(dir_) / absl::StrCat(".", name, ".inprogress")).string();
  file_ = std::fopen(in_progress_path_.c_str(), "wb");
  if (!file_) return absl::InternalError(absl::StrCat("cannot open ", in_progress_path_));
  buffer_ = header_;
  return absl::OkStatus();
}

std::string FileSink::PartPath(int subtask, int64_t seq, const std::string& ext, bool hidden) const {
  const std::string name = absl::StrCat("part-", subtask, "-", seq, ".", ext);
  return (fs::path(dir_) / (hidden ? absl::StrCat(".", name, ".inprogress") : name)).string();
}

void FileSink::FlushBuffer() {
  if (buffer_.empty()) return;
  if (status_.ok() && std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) {
    status_ = absl::InternalError(absl::StrCat("write to ", in_progress_path_, " failed: ", ErrnoMessage(errno)));
  }
  buffer_.clear();
}

void FileSink::Push(RowBatch& batch) {
  CountIn(batch.size());
  if (file_ == nullptr && !batch.empty() && !StartPartFile()) return;
  for (size_t i = 0; i < batch.size(); ++i) writer_->Write(batch[i], &buffer_);
  if (buffer_.size() >= kFlushBytes) FlushBuffer();
}

bool FileSink::StartPartFile() {
  if (!checkpointing_ || !status_.ok()) return false;  // without: the file is open from Open to Finish
  if (!cleaned_up_) {
    status_ = CleanUpLeftovers(/*restored=*/false);
    if (!status_.ok()) return false;
  }
  const int64_t seq = next_seq_++;
  in_progress_path_ = PartPath(subtask_, seq, format_, /*hidden=*/true);
  file_ = std::fopen(in_progress_path_.c_str(), "wb");
  if (!file_) {
    status_ = absl::InternalError(absl::StrCat("cannot open ", in_progress_path_, ": ", ErrnoMessage(errno)));
    return false;
  }
  open_seq_ = seq;
  buffer_.append(header_);
  return true;
}

void FileSink::ClosePartFile() {
  FlushBuffer();
  if (status_.ok() && std::fflush(file_) != 0) {
    status_ = absl::InternalError(absl::StrCat("write to ", in_progress_path_, " failed: ", ErrnoMessage(errno)));
  }
  if (status_.ok() && ::fsync(::fileno(file_)) != 0) {
    status_ = absl::InternalError(absl::StrCat("fsync of ", in_progress_path_, " failed: ", ErrnoMessage(errno)));
  }
  if (std::fclose(file_) != 0 && status_.ok()) {
    status_ = absl::InternalError(absl::StrCat("close of ", in_progress_path_, " failed: ", ErrnoMessage(errno)));
  }
  file_ = nullptr;
}

void FileSink::Finish() {
  FlushBuffer();
  if (!file_) return;
  if (at_least_once_) {
    PublishOpenFile();
    return;
  }
  if (checkpointing_) {
    // The final checkpoint closes and publishes the file.
    if (std::fflush(file_) != 0 && status_.ok()) {
      status_ = absl::InternalError(absl::StrCat("write to ", in_progress_path_, " failed: ", ErrnoMessage(errno)));
    }
    return;
  }
  if (std::fclose(file_) != 0 && status_.ok()) status_ = absl::InternalError("close failed");
  file_ = nullptr;
  if (!status_.ok()) return;
  std::error_code ec;
  std::filesystem::rename(in_progress_path_, final_path_, ec);
  if (ec) status_ = absl::InternalError(absl::StrCat("cannot publish ", final_path_, ": ", ec.message()));
}

void FileSink::PublishOpenFile() {
  if (file_ == nullptr) return;
  ClosePartFile();
  if (!status_.ok()) return;
  const std::string visible = PartPath(subtask_, open_seq_, format_, /*hidden=*/false);
  std::error_code ec;
  fs::rename(in_progress_path_, visible, ec);
  if (ec) {
    status_ = absl::InternalError(absl::StrCat("cannot publish ", visible, ": ", ec.message()));
    return;
  }
  status_ = SyncDir(dir_);
}

std::string FileSink::SnapshotOperatorState(int64_t checkpoint_id) {
  if (!checkpointing_) return std::string();
  if (!cleaned_up_ && status_.ok()) status_ = CleanUpLeftovers(/*restored=*/false);
  if (at_least_once_) {
    PublishOpenFile();
    return EncodeState(subtask_, format_, next_seq_, {});
  }
  if (file_ != nullptr) {
    ClosePartFile();
    pending_.push_back({checkpoint_id, open_seq_});
    // The file's directory entry must survive a crash as well as its data.
    if (status_.ok()) status_ = SyncDir(dir_);
  }
  // After an error above, status_ fails the task; this checkpoint must not
  // complete (the task declines it when the operator failed).
  return EncodeState(subtask_, format_, next_seq_, pending_);
}

void FileSink::NotifyCheckpointComplete(int64_t checkpoint_id) {
  // After a failure the task is going down: the restore publishes instead.
  if (!checkpointing_ || !status_.ok()) return;
  std::vector<PendingPart> still_pending;
  bool renamed = false;
  for (const PendingPart& p : pending_) {
    if (p.checkpoint_id > checkpoint_id || !status_.ok()) {
      still_pending.push_back(p);
      continue;
    }
    const std::string visible = PartPath(subtask_, p.seq, format_, /*hidden=*/false);
    std::error_code ec;
    fs::rename(PartPath(subtask_, p.seq, format_, /*hidden=*/true), visible, ec);
    if (ec) {
      status_ = absl::InternalError(absl::StrCat("cannot publish ", visible, ": ", ec.message()));
      still_pending.push_back(p);
      continue;
    }
    renamed = true;
  }
  pending_ = std::move(still_pending);
  if (renamed) {
    absl::Status s = SyncDir(dir_);
    if (!s.ok() && status_.ok()) status_ = s;
  }
}

absl::Status FileSink::RestoreOperatorState(std::string_view state) {
  if (state.empty()) return absl::OkStatus();  // a checkpoint of a job without checkpointing: start fresh
  if (!checkpointing_) return absl::FailedPreconditionError("file sink: staged output restored without checkpointing");
  ASSIGN_OR_RETURN(FileSinkState restored, DecodeState(state));
  // At a lower parallelism a subtask also restores the states of subtasks
  // that no longer exist: it publishes their pending files and deletes
  // their hidden leftovers; its own numbering is unaffected.
  const bool own = restored.subtask == subtask_;
  if (own && (cleaned_up_ || file_ != nullptr)) {
    return absl::FailedPreconditionError("file sink: restored after it started");
  }
  if (at_least_once_ && !own) return DeleteHidden(restored.subtask, restored.format);
  if (at_least_once_) {
    // Everything published stays (replays may duplicate it); hidden files
    // hold only what follows the sink's last barrier, which is replayed.
    next_seq_ = restored.subtask == subtask_ ? restored.next_seq : 0;
    return CleanUpLeftovers(/*restored=*/false);
  }

  // Publish what the restored checkpoint covers. A notification may have
  // published a file before the failure; a file missing both ways was
  // removed from the directory by someone else.
  bool renamed = false;
  for (const PendingPart& p : restored.pending) {
    const std::string hidden = PartPath(restored.subtask, p.seq, restored.format, /*hidden=*/true);
    const std::string visible = PartPath(restored.subtask, p.seq, restored.format, /*hidden=*/false);
    std::error_code ec;
    if (fs::exists(hidden, ec)) {
      fs::rename(hidden, visible, ec);
      if (ec) return absl::InternalError(absl::StrCat("cannot publish ", visible, ": ", ec.message()));
      renamed = true;
    } else if (ec) {
      return absl::InternalError(absl::StrCat("cannot stat ", hidden, ": ", ec.message()));
    } else if (!fs::exists(visible, ec)) {
      spdlog::warn("file sink: {} of checkpoint {} is neither pending nor published; skipped", visible,
                   p.checkpoint_id);
    }
  }
  if (renamed) RETURN_IF_ERROR(SyncDir(dir_));

  if (!own) return DeleteHidden(restored.subtask, restored.format);
  next_seq_ = restored.next_seq;
  return CleanUpLeftovers(/*restored=*/true);
}

absl::Status FileSink::DeleteHidden(int subtask, const std::string& format) {
  std::vector<std::string> doomed;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t seq = 0;
    if (ClassifyPart(it->path().filename().string(), subtask, format, &seq) == PartKind::kHidden) {
      doomed.push_back(it->path().string());
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list sink directory ", dir_, ": ", ec.message()));
  for (const std::string& path : doomed) {
    fs::remove(path, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot delete ", path, ": ", ec.message()));
  }
  return doomed.empty() ? absl::OkStatus() : SyncDir(dir_);
}

absl::Status FileSink::CleanUpLeftovers(bool restored) {
  std::vector<std::string> doomed;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int64_t seq = 0;
    switch (ClassifyPart(name, subtask_, format_, &seq)) {
      case PartKind::kHidden:
        doomed.push_back(it->path().string());
        break;
      case PartKind::kVisible:
        if (!restored) {
          next_seq_ = std::max(next_seq_, seq + 1);
        } else if (seq >= next_seq_) {
          // Published after the restored checkpoint: a restore from an older one.
          spdlog::warn("file sink: deleting {}, published after the checkpoint restored from", it->path().string());
          doomed.push_back(it->path().string());
        }
        break;
      case PartKind::kOther:
        break;
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list sink directory ", dir_, ": ", ec.message()));
  for (const std::string& path : doomed) {
    fs::remove(path, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot delete ", path, ": ", ec.message()));
  }
  if (!doomed.empty()) RETURN_IF_ERROR(SyncDir(dir_));
  cleaned_up_ = true;
  return absl::OkStatus();
}

StdoutSink::StdoutSink(OperatorCounters& counters, Schema schema, std::string format)
    : StreamOperator(counters), schema_(std::move(schema)), format_(std::move(format)) {}
absl::Status StdoutSink::Open(const OperatorContext&) {
  auto writer = CreateRecordWriter(format_, schema_);
  if (!writer.ok()) return writer.status();
  writer_ = std::move(*writer);
  return absl::OkStatus();
}

void StdoutSink::Push(RowBatch& batch) {
  CountIn(batch.size());
  buffer_.clear();
  for (size_t i = 0; i < batch.size(); ++i) writer_->Write(batch[i], &buffer_);
  std::lock_guard<std::mutex> lock(stdout_mu);
  std::fwrite(buffer_.data(), 1, buffer_.size(), stdout);
}

void StdoutSink::Finish() {
  std::lock_guard<std::mutex> lock(stdout_mu);
  std::fflush(stdout);
}

}  // namespace vstream
