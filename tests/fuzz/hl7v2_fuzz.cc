// libFuzzer target for the HL7 v2 parser (runtime/formats/hl7v2.h): the
// splitter, the message parser, every field through Get and Unescape, and
// the timestamp parser. Built and run by tests/fuzz/run.sh with clang's
// -fsanitize=fuzzer,address,undefined; seeds are ../shared/data/hl7v2.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/formats/hl7v2.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  vstream::Hl7Splitter splitter(bytes);
  vstream::Hl7Piece piece;
  vstream::Hl7Message msg;
  std::string out;
  while (splitter.Next(&piece)) {
    if (!piece.error.empty()) continue;
    if (!msg.Parse(piece.text, piece.line).ok()) continue;
    for (int s = 0; s < msg.segment_count(); ++s) {
      for (int f = 0; f <= msg.field_count(s) + 1; ++f) {
        const std::string_view field = msg.Field(s, f);
        for (int r = 1; r <= 2; ++r) {
          for (int c = 0; c <= 3; ++c) (void)msg.Unescape(msg.Get(s, f, c, c == 0 ? 0 : 2, r), &out);
        }
        (void)msg.RepetitionCount(field);
        int64_t ms = 0;
        (void)vstream::ParseHl7Timestamp(field, 60, &ms);
      }
    }
  }
  // The bytes as one message too, as an MLLP frame is parsed.
  (void)msg.Parse(bytes);
  return 0;
}
