#pragma once
// MLLP, the Minimal Lower Layer Protocol that carries HL7 v2 over TCP
// (HL7 v2.5.1 Implementation Guide, Appendix C): each message is framed as
//
//   0x0B <message bytes> 0x1C 0x0D
//
// and the receiver answers each with an HL7 ACK message in a frame of its
// own. MllpDecoder cuts a connection's byte stream into frames; BuildHl7Ack
// writes the answer.
//
// Thread-compatible.

#include <cstdint>
#include <string>
#include <string_view>

namespace vstream {

class Hl7Message;

inline constexpr char kMllpStart = 0x0B;
inline constexpr char kMllpEnd = 0x1C;
inline constexpr char kMllpCarriageReturn = 0x0D;

// One frame out of the stream.
struct MllpFrame {
  // The bytes between 0x0B and 0x1C. For a frame longer than the limit,
  // only its first kTooLongPrefix bytes (for the dead letters).
  std::string_view text;
  bool too_long = false;
  int64_t length = 0;  // the whole frame's payload length in bytes
};

class MllpDecoder {
 public:
  // Frames longer than `max_message_bytes` are not kept whole: Next gives
  // them with too_long set and their first bytes only.
  explicit MllpDecoder(size_t max_message_bytes);

  // Appends bytes read from the connection.
  void Feed(std::string_view bytes);
  // The next complete frame; false when none is complete yet. frame->text
  // is valid until the next Feed or Next.
  bool Next(MllpFrame* frame);
  // Bytes outside any frame (other than the CR or LF after an end block),
  // which a well-behaved sender never sends; skipped.
  int64_t junk_bytes() const { return junk_bytes_; }
  // Bytes of an unfinished frame held now.
  size_t buffered() const { return buffer_.size() - pos_; }

  static constexpr size_t kTooLongPrefix = 4096;

 private:
  const size_t max_;
  std::string buffer_;
  size_t pos_ = 0;         // first byte not yet consumed
  size_t scan_ = 0;        // in a frame: no end block before this
  bool in_frame_ = false;  // buffer_[pos_..] is inside a frame
  bool discarding_ = false;  // in a frame longer than max_: dropping its bytes
  int64_t discarded_ = 0;    // ... how many so far
  std::string prefix_;       // ... and its first bytes
  std::string out_;          // the frame Next returned last (when copied)
  int64_t junk_bytes_ = 0;
};

// The ACK for a message: MSH (sender and receiver swapped, the message's
// own delimiters and version), MSA with `code` ("AA" accepted, "AE" error,
// "AR" rejected) and the message's control id (MSH-10), and, unless `error`
// is empty, an ERR segment whose ERR-3 is HL7 table 0357's `error_code`
// (e.g. "102^Data type error^HL70357") and whose ERR-8 is `error`, escaped.
// `message` may be null for bytes that did not parse as a message at all;
// the ACK then uses default delimiters and an empty control id. `now_ms`
// is MSH-7 (UTC); `control_id` is the ACK's own MSH-10. No line breaks: the
// segments end with CR.
// `incoming_control_id` is MSA-2 when `message` is null (GuessControlId).
// AppendHl7Ack appends it to *ack (the MLLP source, without allocating);
// BuildHl7Ack returns it.
void AppendHl7Ack(const Hl7Message* message, std::string_view code, std::string_view error_code,
                  std::string_view error, int64_t now_ms, std::string_view control_id,
                  std::string_view incoming_control_id, std::string* ack);
std::string BuildHl7Ack(const Hl7Message* message, std::string_view code, std::string_view error_code,
                        std::string_view error, int64_t now_ms, std::string_view control_id,
                        std::string_view incoming_control_id = {});

// MSH-10 of bytes that start like a message (MSH and a field separator),
// read from the first segment alone; "" if there is none. For ACKs of
// messages that do not parse.
std::string_view GuessControlId(std::string_view text);

}  // namespace vstream
