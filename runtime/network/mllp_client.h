#pragma once
// A blocking MLLP client: sends HL7 v2 messages one at a time and waits for
// each ACK, as a bedside monitor or an interface engine does. Used by
// `vstream send-hl7` and by tests.
//
// Thread-compatible: one connection, one thread.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "runtime/formats/mllp.h"

namespace vstream {

class MllpClient {
 public:
  // Connects to host:port (IPv4 address or name).
  static absl::StatusOr<std::unique_ptr<MllpClient>> Connect(const std::string& host, int port,
                                                            std::chrono::milliseconds timeout);
  ~MllpClient();
  MllpClient(const MllpClient&) = delete;
  MllpClient& operator=(const MllpClient&) = delete;

  // Frames and sends `message`, then waits for the next frame back: its
  // ACK. DeadlineExceeded if none came in time, Unavailable if the
  // connection closed; the connection is unusable after either.
  absl::StatusOr<std::string> Send(std::string_view message, std::chrono::milliseconds timeout);
  // Sends raw bytes as they are (tests of broken framing).
  absl::Status SendRaw(std::string_view bytes);
  // Waits for the next frame back.
  absl::StatusOr<std::string> Receive(std::chrono::milliseconds timeout);
  // Says that nothing more will be sent (shutdown SHUT_WR); ACKs still come.
  void CloseWrite();

 private:
  explicit MllpClient(int fd) : fd_(fd), decoder_(16 << 20) {}
  int fd_;
  MllpDecoder decoder_;
};

// MSA-1 of an ACK: "AA", "AE", "AR" (or "CA", "CE", "CR"); "" if there is
// no MSA segment.
std::string AckCode(std::string_view ack);

}  // namespace vstream
