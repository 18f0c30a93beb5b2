#include "runtime/operators/message_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/absl_compat.h"
#include "common/crc32c.h"
#include "spdlog/spdlog.h"

namespace vstream {

namespace {

namespace fs = std::filesystem;

constexpr size_t kHeader = 8;          // length, CRC
constexpr size_t kPayloadFixed = 13;   // kind, received_at, reason length
constexpr uint32_t kMaxPayload = 1u << 30;
constexpr size_t kReadChunk = 1 << 20;

void PutFixed32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}
void PutFixed64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}
uint32_t GetFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint64_t GetFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(AV(what), " ", path, ": ", std::strerror(errno)));
}

// Decodes the payload of a record whose CRC matched; false if it is not one.
bool DecodePayload(std::string_view payload, LoggedMessage* m) {
  if (payload.size() < kPayloadFixed) return false;
  const uint8_t kind = static_cast<uint8_t>(payload[0]);
  if (kind > LoggedMessage::kRejected) return false;
  const uint32_t reason = GetFixed32(payload.data() + 9);
  if (reason > payload.size() - kPayloadFixed) return false;
  m->kind = static_cast<LoggedMessage::Kind>(kind);
  m->received_at_ms = static_cast<int64_t>(GetFixed64(payload.data() + 1));
  m->reason = payload.substr(kPayloadFixed, reason);
  m->bytes = payload.substr(kPayloadFixed + reason);
  return true;
}

// The length of the record at data[0..], or 0 if none is whole and sound there.
size_t RecordAt(std::string_view data, LoggedMessage* m) {
  if (data.size() < kHeader) return 0;
  const uint32_t len = GetFixed32(data.data());
  if (len > kMaxPayload || len > data.size() - kHeader) return 0;
  const std::string_view payload = data.substr(kHeader, len);
  if (Crc32c(payload) != GetFixed32(data.data() + 4) || !DecodePayload(payload, m)) return 0;
  return kHeader + len;
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot sync", dir);
  return absl::OkStatus();
}

}  // namespace

MessageLog::MessageLog(std::string dir, int64_t segment_bytes) : dir_(std::move(dir)), segment_bytes_(segment_bytes) {}

MessageLog::~MessageLog() {
  if (write_fd_ >= 0) ::close(write_fd_);
  if (read_fd_ >= 0) ::close(read_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::string MessageLog::SegmentPath(int64_t segment) const {
  return absl::StrFormat("%s/%08d.log", dir_, segment);
}

absl::StatusOr<std::unique_ptr<MessageLog>> MessageLog::Open(const std::string& dir, int64_t segment_bytes) {
  std::unique_ptr<MessageLog> log(new MessageLog(dir, segment_bytes));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const std::string lock = dir + "/LOCK";
  log->lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (log->lock_fd_ < 0) return Errno("cannot open", lock);
  if (::flock(log->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::UnavailableError(absl::StrCat("the message log ", dir, " is in use by another process (",
                                               std::strerror(errno), ")"));
  }
  if (absl::Status s = log->Recover(); !s.ok()) return s;
  return log;
}

absl::Status MessageLog::Recover() {
  std::vector<int64_t> segments;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t n = 0;
    if (name.size() == 12 && name.substr(8) == ".log" &&
        std::all_of(name.begin(), name.begin() + 8, [](char c) { return c >= '0' && c <= '9'; })) {
      n = std::stoll(name.substr(0, 8));
      if (n > 0) segments.push_back(n);
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir_, ": ", ec.message()));
  std::sort(segments.begin(), segments.end());
  if (segments.empty()) {
    created_ = true;
    if (absl::Status s = OpenSegmentForAppend(1, 0); !s.ok()) return s;
    if (absl::Status s = SyncDir(dir_); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    first_segment_ = 1;
    committed_ = {1, 0};
    return absl::OkStatus();
  }
  for (size_t i = 1; i < segments.size(); ++i) {
    if (segments[i] != segments[i - 1] + 1) {
      return absl::DataLossError(absl::StrCat("the message log ", dir_, " lacks segment ", segments[i - 1] + 1));
    }
  }
  // The last segment may end in a record that was being written when the
  // process died: never synced, so never acknowledged. Cut it off.
  const int64_t last = segments.back();
  const std::string path = SegmentPath(last);
  std::string bytes;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open", path);
    char chunk[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        return Errno("cannot read", path);
      }
      if (n == 0) break;
      bytes.append(chunk, static_cast<size_t>(n));
    }
    ::close(fd);
  }
  size_t good = 0;
  LoggedMessage m;
  while (size_t n = RecordAt(std::string_view(bytes).substr(good), &m)) good += n;
  // A torn write is the end of the log. A sound record after a bad one
  // means a record in the middle went bad: that is corruption of synced,
  // acknowledged messages, not something to cut off.
  for (size_t at = good + 1; at + kHeader <= bytes.size(); ++at) {
    if (RecordAt(std::string_view(bytes).substr(at), &m) != 0) {
      return absl::DataLossError(absl::StrCat("the message log ", dir_, " is corrupt: segment ", last,
                                              " has a bad record at offset ", good,
                                              " followed by sound ones (at offset ", at, ")"));
    }
  }
  if (absl::Status s = OpenSegmentForAppend(last, static_cast<int64_t>(good)); !s.ok()) return s;
  if (good < bytes.size()) {
    // Point-in-time recovery: the log ends before the first record that
    // does not check out.
    spdlog::warn("message log {}: cut {} bytes after offset {} of segment {} (a record written but never synced)",
                 dir_, bytes.size() - good, good, last);
    if (::ftruncate(write_fd_, static_cast<off_t>(good)) != 0 || ::fdatasync(write_fd_) != 0) {
      return Errno("cannot truncate the torn end of", path);
    }
  }
  absl::MutexLock lock(&mu_);
  first_segment_ = segments.front();
  committed_ = {last, static_cast<int64_t>(good)};
  return absl::OkStatus();
}

absl::Status MessageLog::OpenSegmentForAppend(int64_t segment, int64_t size) {
  if (write_fd_ >= 0) ::close(write_fd_);
  const std::string path = SegmentPath(segment);
  write_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (write_fd_ < 0) return Errno("cannot open", path);
  if (::lseek(write_fd_, static_cast<off_t>(size), SEEK_SET) < 0) return Errno("cannot seek in", path);
  write_segment_ = segment;
  write_size_ = size;
  return absl::OkStatus();
}

void MessageLog::Add(LoggedMessage::Kind kind, int64_t received_at_ms, std::string_view reason,
                     std::string_view bytes) {
  const size_t at = pending_.size();
  const size_t len = kPayloadFixed + reason.size() + bytes.size();
  pending_.resize(at + kHeader);
  pending_.push_back(static_cast<char>(kind));
  PutFixed64(&pending_, static_cast<uint64_t>(received_at_ms));
  PutFixed32(&pending_, static_cast<uint32_t>(reason.size()));
  pending_.append(reason);
  pending_.append(bytes);
  std::string header;
  PutFixed32(&header, static_cast<uint32_t>(len));
  PutFixed32(&header, Crc32c(std::string_view(pending_).substr(at + kHeader)));
  std::memcpy(pending_.data() + at, header.data(), kHeader);
}

absl::Status MessageLog::Commit() {
  if (pending_.empty()) return absl::OkStatus();
  const std::string path = SegmentPath(write_segment_);
  size_t done = 0;
  while (done < pending_.size()) {
    const ssize_t n = ::write(write_fd_, pending_.data() + done, pending_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot write", path);
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(write_fd_) != 0) return Errno("cannot sync", path);
  write_size_ += static_cast<int64_t>(pending_.size());
  pending_.clear();
  LogPosition committed{write_segment_, write_size_};
  if (write_size_ >= segment_bytes_) {
    // Seal this segment (it is synced) and start the next.
    if (absl::Status s = OpenSegmentForAppend(write_segment_ + 1, 0); !s.ok()) return s;
    if (absl::Status s = SyncDir(dir_); !s.ok()) return s;
    committed = {write_segment_, 0};
  }
  absl::MutexLock lock(&mu_);
  committed_ = committed;
  committed_cv_.SignalAll();
  return absl::OkStatus();
}

LogPosition MessageLog::start() const {
  absl::MutexLock lock(&mu_);
  return {first_segment_, 0};
}

absl::Status MessageLog::Seek(const LogPosition& position) {
  {
    absl::MutexLock lock(&mu_);
    if (position.segment < first_segment_ || position.segment > committed_.segment ||
        (position.segment == committed_.segment && position.offset > committed_.offset)) {
      return absl::DataLossError(absl::StrCat(
          "the message log ", dir_, " holds segments ", first_segment_, " to ", committed_.segment, " (", committed_.offset,
          " bytes into the last), not position ", position.segment, ":", position.offset));
    }
  }
  read_ = position;
  {
    absl::MutexLock lock(&mu_);
    read_shared_ = position;
  }
  buf_.clear();
  buf_offset_ = position.offset;
  return absl::OkStatus();
}

absl::Status MessageLog::Fill(size_t n, int64_t limit, bool* ok) {
  const int64_t want_end = read_.offset + static_cast<int64_t>(n);
  *ok = false;
  if (want_end > limit) return absl::OkStatus();
  if (read_.offset - buf_offset_ > static_cast<int64_t>(kReadChunk)) {
    buf_.erase(0, static_cast<size_t>(read_.offset - buf_offset_));
    buf_offset_ = read_.offset;
  }
  int64_t have_end = buf_offset_ + static_cast<int64_t>(buf_.size());
  if (have_end >= want_end) {
    *ok = true;
    return absl::OkStatus();
  }
  const int64_t read_end = std::min(limit, std::max(want_end, have_end + static_cast<int64_t>(kReadChunk)));
  const size_t old = buf_.size();
  buf_.resize(old + static_cast<size_t>(read_end - have_end));
  size_t got = 0;
  while (have_end + static_cast<int64_t>(got) < read_end) {
    const ssize_t r = ::pread(read_fd_, buf_.data() + old + got, buf_.size() - old - got,
                              static_cast<off_t>(have_end + static_cast<int64_t>(got)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      buf_.resize(old + got);
      return Errno("cannot read", SegmentPath(read_.segment));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  buf_.resize(old + got);
  *ok = buf_offset_ + static_cast<int64_t>(buf_.size()) >= want_end;
  return absl::OkStatus();
}

absl::StatusOr<bool> MessageLog::Next(LoggedMessage* message) {
  for (;;) {
    LogPosition committed;
    {
      absl::MutexLock lock(&mu_);
      committed = committed_;
      read_shared_ = read_;  // for backlog_bytes() on the writer's thread
    }
    if (read_.segment > committed.segment ||
        (read_.segment == committed.segment && read_.offset >= committed.offset)) {
      return false;
    }
    if (read_fd_segment_ != read_.segment) {
      if (read_fd_ >= 0) ::close(read_fd_);
      const std::string path = SegmentPath(read_.segment);
      read_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (read_fd_ < 0) {
        return absl::DataLossError(absl::StrCat("cannot open segment ", path, " of the message log: ",
                                                std::strerror(errno)));
      }
      read_fd_segment_ = read_.segment;
    }
    int64_t limit = committed.offset;
    if (read_.segment < committed.segment) {
      struct stat st {};
      if (::fstat(read_fd_, &st) != 0) return Errno("cannot stat", SegmentPath(read_.segment));
      limit = st.st_size;
      if (read_.offset >= limit) {
        // The end of a sealed segment: on to the next.
        read_ = {read_.segment + 1, 0};
        buf_.clear();
        buf_offset_ = 0;
        continue;
      }
    }
    bool ok = false;
    if (absl::Status s = Fill(kHeader, limit, &ok); !s.ok()) return s;
    const size_t at = static_cast<size_t>(read_.offset - buf_offset_);
    const uint32_t len = ok ? GetFixed32(buf_.data() + at) : 0;
    if (ok && len <= kMaxPayload) {
      if (absl::Status s = Fill(kHeader + len, limit, &ok); !s.ok()) return s;
    }
    const size_t n = ok && len <= kMaxPayload
                         ? RecordAt(std::string_view(buf_).substr(static_cast<size_t>(read_.offset - buf_offset_)),
                                    message)
                         : 0;
    if (n == 0) {
      return absl::DataLossError(absl::StrCat("the message log ", dir_, " is corrupt at segment ", read_.segment,
                                              " offset ", read_.offset, " (a record that does not check out)"));
    }
    read_.offset += static_cast<int64_t>(n);
    return true;
  }
}

void MessageLog::WaitForData(std::chrono::milliseconds timeout) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + absl::FromChrono(timeout);
  while (read_.segment == committed_.segment && read_.offset >= committed_.offset) {
    if (committed_cv_.WaitWithDeadline(&mu_, deadline)) return;
  }
}

int64_t MessageLog::backlog_bytes() const {
  absl::MutexLock lock(&mu_);
  return (committed_.segment - read_shared_.segment) * segment_bytes_ + committed_.offset - read_shared_.offset;
}

void MessageLog::DeleteBefore(int64_t segment) {
  int64_t from = 0;
  {
    absl::MutexLock lock(&mu_);
    segment = std::min(segment, committed_.segment);
    if (segment <= first_segment_) return;
    from = first_segment_;
    first_segment_ = segment;
  }
  for (int64_t s = from; s < segment; ++s) {
    std::error_code ec;
    fs::remove(SegmentPath(s), ec);
  }
}

}  // namespace vstream
