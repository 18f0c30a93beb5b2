#pragma once
// The MLLP listener source (connector mllp): HL7 v2 messages pushed by
// senders (bedside monitors, interface engines) over TCP in MLLP frames
// (runtime/formats/mllp.h), one ACK per message.
//
// The guarantee: an AA (or AE/AR) ACK is sent only after the message has
// been written to this subtask's message log (message_log.h) and synced to
// disk. The log lives in the job's checkpoint storage, a shared volume that
// outlives any one TaskManager, under mllp/<vertex>-<subtask>/. The source
// emits rows by reading that log, and its checkpointed position is a place
// in the log, so after a failure the restored subtask, on whichever
// TaskManager, reads on from the checkpoint and replays exactly what the
// checkpoint had not covered: every ACKed message is processed exactly once
// (end to end with a transactional sink). A sender that gets no ACK (the
// TaskManager died first) resends, and the message may then be logged
// twice; a dedup operator on [message_id, set_id] drops the second copy, as
// the bedside-news2 example does. Without checkpointing the log is kept in
// the TaskManager's data dir instead, and segments are deleted once read: an
// ACK then only means "on this TaskManager's disk".
//
// Per message, on the listener thread: a frame that parses and whose rows
// can be made (hl7v2_rows.h) is logged and ACKed AA; one that does not
// parse is ACKed AR, one whose rows cannot be made AE, each with an ERR
// segment saying what is wrong, and logged as rejected, so that it reaches
// the dead-letter output exactly once too. Messages of other types (ADT in
// an observations source, queries) are ACKed AA and skipped. Several
// senders may be connected at once; all frames read in one poll round share
// one fdatasync (group commit).
//
// Subtask i listens on port + i (port 0: any free port, for tests). The
// received_at of each row is the time its message was received, kept in the
// log, so a replay gives the same rows.
//
// Flow control: while more than max_backlog bytes of the log are not yet
// read by the task, the listener stops reading from its connections, and
// senders wait on TCP.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "proto/jobgraph.pb.h"
#include "runtime/formats/hl7v2.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/formats/mllp.h"
#include "runtime/operators/dead_letters.h"
#include "runtime/operators/message_log.h"
#include "runtime/operators/sources.h"

namespace vstream {

class MllpSource : public SourceOperator {
 public:
  // `schema` must be the one hl7_rows names (the job builder sets it).
  MllpSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec);
  ~MllpSource() override;
  absl::Status Open(const OperatorContext& ctx) override;
  SourceStatus Produce() override;
  std::string SnapshotOperatorState(int64_t checkpoint_id) override;
  absl::Status RestoreOperatorState(std::string_view state) override;
  void NotifyCheckpointComplete(int64_t checkpoint_id) override;

  // The port this subtask listens on (after Open).
  int port() const { return port_; }

  static constexpr size_t kMessagesPerBatch = 256;
  static constexpr int64_t kDefaultMaxMessageBytes = 1 << 20;
  static constexpr int64_t kMaxMessageBytesLimit = 64 << 20;
  static constexpr int64_t kMaxBacklogBytes = 256 << 20;
  static constexpr size_t kMaxConnections = 256;

 private:
  struct Connection;
  void Serve();
  // Validates one frame, logs it, and queues its ACK on `conn`.
  void Receive(Connection& conn, const MllpFrame& frame);
  void Stop();

  const Schema schema_;
  const proto::SourceSpec spec_;
  OperatorContext ctx_;
  std::string location_;  // of dead letters: "mllp port N"
  std::unique_ptr<MessageLog> log_;
  bool delete_when_read_ = false;  // no checkpointing

  // Listener thread.
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  Hl7RowExtractor check_extractor_;
  Hl7Splitter check_splitter_;  // reused per frame
  Hl7Piece check_piece_, check_more_;
  Hl7Message check_message_;
  RowBatch check_rows_;
  int64_t acks_sent_ = 0;
  int64_t frames_ = 0;
  absl::Mutex error_mu_;
  absl::Status listener_error_ ABSL_GUARDED_BY(error_mu_);
  std::atomic<bool> failed_{false};

  // Task thread.
  Hl7RowExtractor extractor_;
  Hl7Splitter splitter_;  // reused per logged message
  Hl7Piece piece_;
  Hl7Message message_;
  RowBatch batch_;
  DeadLetters dead_letters_;
  bool restored_ = false;
  std::map<int64_t, int64_t> checkpoint_segments_;  // checkpoint id -> its read segment
  int64_t messages_ = 0;
  int64_t rejected_ = 0;
};

}  // namespace vstream
