#pragma once
// A durable, append-only log of received messages: the write-ahead log of
// the MLLP source (mllp_source.h). A message is acknowledged to its sender
// only once Commit() has written it and fdatasync'ed it, so an ACKed message
// survives the process; the source reads the log back from its checkpointed
// position, so a restore replays exactly what the checkpoint had not yet
// covered.
//
// Layout: one directory of segments 00000001.log, 00000002.log, ...; a new
// segment starts once the current one reaches segment_bytes. Each record:
//
//   fixed32 payload length | fixed32 CRC-32C of the payload | payload
//   payload = u8 kind | fixed64 received_at ms | fixed32 reason length |
//             reason | message bytes
//
// (little-endian). Open() truncates a torn record at the end of the last
// segment (written, never synced, so never acknowledged); a bad record
// followed by sound ones is corruption, and Open fails with DataLoss. So is
// a bad checksum anywhere the reader reads. A LOCK file held with
// flock() keeps a second process from appending to the same log.
//
// Thread-safe in this sense: one thread writes (Add, Commit), another reads
// (Seek, Next, WaitForData, DeleteBefore).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace vstream {

struct LogPosition {
  int64_t segment = 1;
  int64_t offset = 0;  // bytes into the segment
  bool operator==(const LogPosition&) const = default;
};

struct LoggedMessage {
  enum Kind : uint8_t { kAccepted = 0, kRejected = 1 };
  Kind kind = kAccepted;
  int64_t received_at_ms = 0;
  std::string_view reason;  // kRejected: why
  std::string_view bytes;   // the message as received
};

class MessageLog {
 public:
  static constexpr int64_t kDefaultSegmentBytes = 64 << 20;

  // Opens or creates the log in `dir` (created with its parents).
  static absl::StatusOr<std::unique_ptr<MessageLog>> Open(const std::string& dir,
                                                         int64_t segment_bytes = kDefaultSegmentBytes);
  ~MessageLog();
  MessageLog(const MessageLog&) = delete;
  MessageLog& operator=(const MessageLog&) = delete;

  const std::string& dir() const { return dir_; }
  // Open found no log and started an empty one.
  bool created() const { return created_; }

  // Writer: buffers a record; nothing is durable before Commit().
  void Add(LoggedMessage::Kind kind, int64_t received_at_ms, std::string_view reason, std::string_view bytes);
  size_t pending_bytes() const { return pending_.size(); }
  // Writer: writes and syncs the buffered records, then makes them visible
  // to the reader. An error leaves the log unusable (the caller fails).
  absl::Status Commit();

  // Reader: the first position still on disk.
  LogPosition start() const;
  // Reader: reads from `position` on. DataLoss if that segment is gone.
  absl::Status Seek(const LogPosition& position);
  // Reader: the next committed record into *message (valid until the next
  // call); false when there is none yet.
  absl::StatusOr<bool> Next(LoggedMessage* message);
  // Reader: the position after the last record Next returned.
  const LogPosition& position() const { return read_; }
  // Reader: waits until a record past position() is committed, or the timeout.
  void WaitForData(std::chrono::milliseconds timeout);
  // Bytes committed but not yet read (approximate across segments).
  int64_t backlog_bytes() const;
  // Reader: deletes the segments before `segment` (never the one written).
  void DeleteBefore(int64_t segment);

 private:
  MessageLog(std::string dir, int64_t segment_bytes);
  std::string SegmentPath(int64_t segment) const;
  absl::Status Recover();
  absl::Status OpenSegmentForAppend(int64_t segment, int64_t size);
  // Ensures buf_ holds the file bytes [read_.offset, read_.offset + n) of
  // the read segment, reading no further than `limit`; false if they are not there.
  absl::Status Fill(size_t n, int64_t limit, bool* ok);

  const std::string dir_;
  const int64_t segment_bytes_;
  int lock_fd_ = -1;
  bool created_ = false;

  // Writer.
  int write_fd_ = -1;
  int64_t write_segment_ = 1;
  int64_t write_size_ = 0;
  std::string pending_;

  // Shared: how far the log is durable.
  mutable absl::Mutex mu_;
  absl::CondVar committed_cv_;
  LogPosition committed_ ABSL_GUARDED_BY(mu_);
  LogPosition read_shared_ ABSL_GUARDED_BY(mu_);  // the reader's position, lagging by a record
  int64_t first_segment_ ABSL_GUARDED_BY(mu_) = 1;

  // Reader.
  LogPosition read_;
  int read_fd_ = -1;
  int64_t read_fd_segment_ = 0;
  std::string buf_;          // file bytes from buf_offset_ on
  int64_t buf_offset_ = 0;
};

}  // namespace vstream
