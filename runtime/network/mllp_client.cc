#include "runtime/network/mllp_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vstream {

namespace {

int64_t MsLeft(std::chrono::steady_clock::time_point deadline) {
  return std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
}

}  // namespace

absl::StatusOr<std::unique_ptr<MllpClient>> MllpClient::Connect(const std::string& host, int port,
                                                               std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", ::gai_strerror(rc)));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(found);
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  int rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    int err = 0;
    socklen_t len = sizeof(err);
    if (rc == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
      rc = 0;
    } else {
      errno = rc == 0 ? ETIMEDOUT : (err != 0 ? err : errno);
      rc = -1;
    }
  }
  if (rc != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", host, ":", port, ": ", why));
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return std::unique_ptr<MllpClient>(new MllpClient(fd));
}

MllpClient::~MllpClient() { ::close(fd_); }

void MllpClient::CloseWrite() { ::shutdown(fd_, SHUT_WR); }

absl::Status MllpClient::SendRaw(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MllpClient::Receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MllpFrame frame;
  char buf[1 << 14];
  while (!decoder_.Next(&frame)) {
    pollfd p{fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(MsLeft(deadline)));
    if (rc == 0) return absl::DeadlineExceededError("no ACK in time");
    if (rc < 0 && errno == EINTR) continue;
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      decoder_.Feed(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    return absl::UnavailableError(n == 0 ? std::string("the receiver closed the connection")
                                         : absl::StrCat("recv: ", std::strerror(errno)));
  }
  return std::string(frame.text);
}

absl::StatusOr<std::string> MllpClient::Send(std::string_view message, std::chrono::milliseconds timeout) {
  std::string framed;
  framed.reserve(message.size() + 3);
  framed.push_back(kMllpStart);
  framed.append(message);
  framed.push_back(kMllpEnd);
  framed.push_back(kMllpCarriageReturn);
  if (absl::Status s = SendRaw(framed); !s.ok()) return s;
  return Receive(timeout);
}

std::string AckCode(std::string_view ack) {
  const size_t msa = ack.find("\rMSA");
  if (msa == std::string_view::npos || msa + 5 > ack.size()) return "";
  const char separators[2] = {ack.size() > 3 ? ack[3] : '|', '\r'};  // MSH-1
  const std::string_view rest = ack.substr(msa + 5);
  return std::string(rest.substr(0, rest.find_first_of(std::string_view(separators, 2))));
}

}  // namespace vstream
