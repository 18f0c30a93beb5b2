// libFuzzer target for MLLP framing and HL7 ACKs (runtime/formats/mllp.h):
// the bytes are fed to a decoder in chunks whose sizes come from the input
// itself, and every frame is parsed as a message and answered with an ACK
// that quotes an error text taken from the input (escaping). Built and run
// by tests/fuzz/run.sh; seeds are ../shared/data/hl7v2.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/formats/hl7v2.h"
#include "runtime/formats/mllp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  vstream::MllpDecoder decoder(/*max_message_bytes=*/512);
  vstream::MllpFrame frame;
  vstream::Hl7Message msg;
  size_t pos = 0, chunk = size > 0 ? (data[0] % 64) + 1 : 1;
  while (pos < size) {
    const size_t n = chunk < size - pos ? chunk : size - pos;
    decoder.Feed(bytes.substr(pos, n));
    pos += n;
    chunk = (chunk * 7 + 3) % 97 + 1;
    while (decoder.Next(&frame)) {
      const bool parsed = !frame.too_long && msg.Parse(frame.text).ok();
      const std::string ack = vstream::BuildHl7Ack(parsed ? &msg : nullptr, parsed ? "AE" : "AR", "100",
                                                   frame.text.substr(0, 64), 1700000000000, "C1");
      if (ack.size() < 8 || ack.compare(0, 3, "MSH") != 0) __builtin_trap();
    }
  }
  // The whole input as one frame.
  std::string framed(1, vstream::kMllpStart);
  framed.append(bytes);
  framed.push_back(vstream::kMllpEnd);
  vstream::MllpDecoder whole(1 << 20);
  whole.Feed(framed);
  if (!whole.Next(&frame)) __builtin_trap();
  return 0;
}
