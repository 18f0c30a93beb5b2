#include "runtime/operators/mllp_source.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/time_util.h"
#include "runtime/formats/mllp.h"
#include "spdlog/spdlog.h"
#include "state/state_clock.h"

namespace vstream {

namespace {

Hl7Rows RowsOf(const proto::SourceSpec& spec) {
  return spec.hl7_rows() == "admissions" ? Hl7Rows::kAdmissions : Hl7Rows::kObservations;
}

std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// Directory-safe form of a vertex name.
std::string PathPart(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) c = '_';
  }
  return out;
}

// HL7 table 0357 error codes in ERR-3.
constexpr std::string_view kSegmentSequenceError = "100^Segment sequence error^HL70357";
constexpr std::string_view kDataTypeError = "102^Data type error^HL70357";
constexpr std::string_view kInternalError = "207^Application internal error^HL70357";

}  // namespace

struct MllpSource::Connection {
  explicit Connection(int fd_in, size_t max_bytes) : fd(fd_in), decoder(max_bytes) {}
  int fd;
  MllpDecoder decoder;
  std::string acks;  // framed ACKs of logged messages, not yet committed
  std::string out;   // framed ACKs to send
  bool input_done = false;  // the sender closed its side: send what is due, then close
  bool closed = false;
};

MllpSource::MllpSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec)
    : SourceOperator(counters),
      schema_(std::move(schema)),
      spec_(spec),
      check_extractor_(RowsOf(spec), Hl7RowsOptions{.default_offset_minutes = spec.hl7_default_offset_minutes()}),
      check_rows_(schema_.size()),
      extractor_(RowsOf(spec), Hl7RowsOptions{.default_offset_minutes = spec.hl7_default_offset_minutes()}),
      batch_(schema_.size()),
      dead_letters_(counters, "source") {}

MllpSource::~MllpSource() { Stop(); }

void MllpSource::Stop() {
  if (thread_.joinable()) {
    stop_ = true;
    const char b = 1;
    (void)!::write(wake_fds_[1], &b, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_fds_[0], &wake_fds_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

absl::Status MllpSource::Open(const OperatorContext& ctx) {
  ctx_ = ctx;
  dead_letters_.Open(ctx);
  dead_letters_.set_output(dead_letter_output_);
  if (schema_.size() != extractor_.schema().size()) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "': an mllp source has the schema ",
                                                   extractor_.schema().DebugString(), ", not ",
                                                   schema_.DebugString()));
  }
  if (spec_.max_message_bytes() > kMaxMessageBytesLimit) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "': max_message_bytes is at most ",
                                                   kMaxMessageBytesLimit, ", got ", spec_.max_message_bytes()));
  }
  const std::string part = absl::StrCat(PathPart(ctx.vertex_name), "-", ctx.subtask_index);
  std::string dir;
  if (!ctx.checkpoint_dir.empty()) {
    dir = absl::StrCat(ctx.checkpoint_dir, "/mllp/", part);
  } else {
    dir = absl::StrCat(ctx.data_dir, "/mllp/", PathPart(ctx.job_id), "/", part);
    delete_when_read_ = true;
  }
  // The subtask that ran here before (a restart) may still be closing: its
  // lock on the log is released when it is gone.
  absl::StatusOr<std::unique_ptr<MessageLog>> log = MessageLog::Open(dir);
  for (int i = 0; i < 100 && !log.ok() && absl::IsUnavailable(log.status()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    log = MessageLog::Open(dir);
  }
  if (!log.ok()) return log.status();
  log_ = std::move(*log);
  if (absl::Status s = log_->Seek(log_->start()); !s.ok()) return s;

  const int want_port = spec_.port() == 0 ? 0 : spec_.port() + ctx.subtask_index;
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(want_port));
  const std::string host = spec_.host().empty() ? "0.0.0.0" : spec_.host();
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "': host '", host,
                                                   "' is not an IPv4 address"));
  }
  int rc = -1;
  for (int i = 0; i < 100; ++i) {  // a socket of the subtask before may still be closing
    rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (rc == 0 || errno != EADDRINUSE) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (rc != 0 || ::listen(listen_fd_, 128) != 0) {
    return absl::UnavailableError(absl::StrCat("source '", ctx.vertex_name, "' subtask ", ctx.subtask_index,
                                               ": cannot listen on ", host, ":", want_port, ": ",
                                               std::strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  location_ = absl::StrCat("mllp port ", port_);
  if (::pipe2(wake_fds_, O_NONBLOCK | O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  spdlog::info("source '{}' subtask {}: listening for MLLP on {}:{}, message log {}", ctx.vertex_name,
               ctx.subtask_index, host, port_, dir);
  thread_ = std::thread([this] { Serve(); });
  return absl::OkStatus();
}

void MllpSource::Receive(Connection& conn, const MllpFrame& frame) {
  ++frames_;
  const int64_t now = ctx_.clock != nullptr ? ctx_.clock->NowMillis() : NowMillis();
  char control_id[48];
  std::snprintf(control_id, sizeof(control_id), "VS%lld-%lld", static_cast<long long>(now),
                static_cast<long long>(frames_));
  // The ACK goes straight into the connection's buffer, framed.
  auto ack = [&](const Hl7Message* message, std::string_view code, std::string_view error_code,
                 std::string_view reason, std::string_view incoming_control_id) {
    conn.acks.push_back(kMllpStart);
    AppendHl7Ack(message, code, error_code, reason, now, control_id, incoming_control_id, &conn.acks);
    conn.acks.push_back(kMllpEnd);
    conn.acks.push_back(kMllpCarriageReturn);
  };
  auto reject = [&](std::string_view code, std::string_view error_code, std::string_view reason,
                    const Hl7Message* message) {
    log_->Add(LoggedMessage::kRejected, now, reason, frame.text);
    // A message that did not parse may still name itself in MSH-10: echo it
    // in MSA-2, which senders match against what they sent.
    ack(message, code, error_code, reason, message == nullptr ? GuessControlId(frame.text) : std::string_view());
  };
  if (frame.too_long) {
    reject("AR", kInternalError,
           absl::StrCat("a message of ", frame.length, " bytes, longer than max_message_bytes (",
                        spec_.max_message_bytes() > 0 ? spec_.max_message_bytes() : kDefaultMaxMessageBytes, ")"),
           nullptr);
  } else {
    Hl7Splitter& splitter = check_splitter_;
    splitter.Reset(frame.text);
    Hl7Piece& piece = check_piece_;
    Hl7Piece& more = check_more_;
    if (!splitter.Next(&piece)) {
      reject("AR", kSegmentSequenceError, "an empty MLLP frame", nullptr);
    } else if (!piece.error.empty()) {
      reject("AR", kSegmentSequenceError, piece.error, nullptr);
    } else if (splitter.Next(&more)) {
      reject("AR", kSegmentSequenceError,
             more.error.empty() ? std::string_view("an MLLP frame holds more than one message")
                                : std::string_view(more.error),
             nullptr);
    } else if (absl::Status s = check_message_.Parse(piece.text, piece.line); !s.ok()) {
      reject("AR", kSegmentSequenceError, SV(s.message()), nullptr);
    } else {
      check_rows_.Clear();
      bool skipped = false;
      if (absl::Status r = check_extractor_.Append(check_message_, now, &check_rows_, &skipped); !r.ok()) {
        reject("AE", kDataTypeError, SV(r.message()), &check_message_);
      } else {
        log_->Add(LoggedMessage::kAccepted, now, "", frame.text);
        ack(&check_message_, "AA", "", "", "");
      }
    }
  }
}

void MllpSource::Serve() {
  const size_t max_bytes =
      static_cast<size_t>(spec_.max_message_bytes() > 0 ? spec_.max_message_bytes() : kDefaultMaxMessageBytes);
  std::vector<std::unique_ptr<Connection>> conns;
  std::vector<pollfd> fds;
  char buf[1 << 16];
  int64_t junk_logged = 0;
  auto fail = [&](const absl::Status& s) {
    absl::MutexLock lock(&error_mu_);
    listener_error_ = s;
    failed_ = true;
  };
  int64_t accept_again_ms = 0;  // after EMFILE: not before then
  while (!stop_) {
    const bool room = log_->backlog_bytes() < kMaxBacklogBytes;
    const bool accepting = conns.size() < kMaxConnections && NowMillis() >= accept_again_ms;
    fds.clear();
    fds.push_back({wake_fds_[0], POLLIN, 0});
    fds.push_back({listen_fd_, static_cast<short>(accepting ? POLLIN : 0), 0});
    for (const auto& c : conns) {
      const bool reading = room && !c->input_done;
      fds.push_back({c->fd, static_cast<short>((reading ? POLLIN : 0) | (c->out.empty() ? 0 : POLLOUT)), 0});
    }
    const size_t polled = conns.size();  // fds[2 + i] is conns[i] for i < polled
    const int n = ::poll(fds.data(), fds.size(), room ? 200 : 20);
    if (n < 0 && errno != EINTR) {
      fail(absl::InternalError(absl::StrCat("poll: ", std::strerror(errno))));
      break;
    }
    if (stop_) break;
    if (fds[0].revents != 0) {
      while (::read(wake_fds_[0], buf, sizeof(buf)) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          // Out of descriptors: the pending connection stays, and polling
          // the socket again at once would spin.
          if (errno == EMFILE || errno == ENFILE) accept_again_ms = NowMillis() + 100;
          break;
        }
        if (conns.size() >= kMaxConnections) {
          ::close(fd);
          continue;
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conns.push_back(std::make_unique<Connection>(fd, max_bytes));
      }
    }
    // Read what arrived; log every complete frame.
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = *conns[i];
      const short ev = i < polled ? fds[i + 2].revents : 0;
      if (ev & (POLLIN | POLLHUP | POLLERR)) {
        for (int round = 0; round < 16; ++round) {
          const ssize_t r = ::read(c.fd, buf, sizeof(buf));
          if (r > 0) {
            c.decoder.Feed(std::string_view(buf, static_cast<size_t>(r)));
            continue;
          }
          if (r == 0) {
            c.input_done = true;  // the ACKs of what it sent are still due
          } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c.closed = true;
          }
          break;
        }
        MllpFrame frame;
        while (c.decoder.Next(&frame)) Receive(c, frame);
      }
    }
    // One sync for all of them, then their ACKs.
    if (log_->pending_bytes() > 0) {
      if (absl::Status s = log_->Commit(); !s.ok()) {
        // Nothing of this round is ACKed; the senders resend to the
        // subtask that replaces this one.
        fail(s);
        break;
      }
    }
    for (auto& c : conns) {
      if (!c->acks.empty()) {
        c->out.append(c->acks);
        c->acks.clear();
      }
      while (!c->out.empty() && !c->closed) {
        const ssize_t w = ::send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
        if (w > 0) {
          c->out.erase(0, static_cast<size_t>(w));
          ++acks_sent_;
          continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) c->closed = true;
        break;
      }
    }
    for (size_t i = 0; i < conns.size();) {
      if (conns[i]->closed || (conns[i]->input_done && conns[i]->out.empty())) {
        junk_logged += conns[i]->decoder.junk_bytes();
        ::close(conns[i]->fd);
        conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
  }
  for (auto& c : conns) ::close(c->fd);
  if (junk_logged > 0) {
    spdlog::warn("source '{}' subtask {}: skipped {} bytes outside MLLP frames", ctx_.vertex_name,
                 ctx_.subtask_index, junk_logged);
  }
}

std::string MllpSource::SnapshotOperatorState(int64_t checkpoint_id) {
  const LogPosition& p = log_->position();
  checkpoint_segments_[checkpoint_id] = p.segment;
  return absl::StrCat("mllp segment=", p.segment, " offset=", p.offset);
}

absl::Status MllpSource::RestoreOperatorState(std::string_view state) {
  if (restored_) {
    return absl::FailedPreconditionError(
        "an mllp source cannot change its parallelism: each subtask has a message log of its own");
  }
  restored_ = true;
  auto number = [](std::string_view text, int64_t* out) {
    auto r = std::from_chars(text.data(), text.data() + text.size(), *out);
    return r.ec == std::errc() && r.ptr == text.data() + text.size() && *out >= 0;
  };
  constexpr std::string_view kSegment = "mllp segment=", kOffset = " offset=";
  const size_t at = state.find(kOffset);
  LogPosition p;
  if (state.substr(0, kSegment.size()) != kSegment || at == std::string_view::npos ||
      !number(state.substr(kSegment.size(), at - kSegment.size()), &p.segment) ||
      !number(state.substr(at + kOffset.size()), &p.offset)) {
    return absl::DataLossError(
        absl::StrCat("source position '", AV(state), "' is not 'mllp segment=N offset=N'"));
  }
  absl::Status s = log_->Seek(p);
  if (!s.ok() && log_->created()) {
    // There was no log: a savepoint restored into another job, whose
    // checkpoint storage has a log of its own (or the log was deleted).
    spdlog::warn("source '{}' subtask {}: the restored position {}:{} is in another job's message log; reading "
                 "this job's from its start",
                 ctx_.vertex_name, ctx_.subtask_index, p.segment, p.offset);
    return absl::OkStatus();
  }
  return s;
}

void MllpSource::NotifyCheckpointComplete(int64_t checkpoint_id) {
  auto it = checkpoint_segments_.find(checkpoint_id);
  if (it == checkpoint_segments_.end()) return;
  // A restore starts at this checkpoint or a later one: the segments before
  // its position are not needed again.
  log_->DeleteBefore(it->second);
  checkpoint_segments_.erase(checkpoint_segments_.begin(), std::next(it));
}

SourceStatus MllpSource::Produce() {
  batch_.Clear();
  if (failed_) {
    absl::MutexLock lock(&error_mu_);
    status_ = absl::Status(listener_error_.code(),
                           absl::StrCat("source '", ctx_.vertex_name, "': ", listener_error_.message()));
    return SourceStatus::kMoreAvailable;
  }
  size_t n = 0;
  LoggedMessage m;
  while (n < kMessagesPerBatch && !batch_.full()) {
    absl::StatusOr<bool> next = log_->Next(&m);
    if (!next.ok()) {
      status_ = next.status();
      break;
    }
    if (!*next) break;
    ++n;
    ++messages_;
    if (m.kind == LoggedMessage::kRejected) {
      ++rejected_;
      dead_letters_.Add(location_, m.reason, m.bytes);
      continue;
    }
    // It parsed when it was received; the same code parses it the same way.
    splitter_.Reset(m.bytes);
    bool skipped = false;
    absl::Status s = splitter_.Next(&piece_) && piece_.error.empty() ? message_.Parse(piece_.text, piece_.line)
                                                                      : absl::InternalError("no message");
    if (s.ok()) s = extractor_.Append(message_, m.received_at_ms, &batch_, &skipped);
    if (!s.ok()) {
      ++rejected_;
      dead_letters_.Add(location_, SV(s.message()), m.bytes);
    }
  }
  if (n == 0 && status_.ok()) log_->WaitForData(std::chrono::milliseconds(10));
  EmitBatch(batch_);
  dead_letters_.Flush();
  if (delete_when_read_) log_->DeleteBefore(log_->position().segment);
  return SourceStatus::kMoreAvailable;
}

}  // namespace vstream
