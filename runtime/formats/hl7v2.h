#pragma once
// HL7 v2.x syntax: splitting a byte stream into messages, and a message into
// segments, fields, repetitions, components and sub-components, with the
// delimiters each message declares in MSH-1 and MSH-2 and every escape
// sequence. What the message means (ORU^R01 observations, ADT events) is
// hl7v2_rows.h's business; this file only reads the syntax.
//
//   Hl7Splitter splitter(file_bytes);         // a file, or one MLLP frame
//   Hl7Piece piece;
//   while (splitter.Next(&piece)) {
//     if (!piece.error.empty()) { dead-letter piece.text with piece.error; continue; }
//     Hl7Message msg;
//     if (absl::Status s = msg.Parse(piece.text, piece.line); !s.ok()) ...
//     int obx = msg.Find("OBX");
//     std::string_view value = msg.Get(obx, 5);          // OBX-5, raw
//     std::string_view system = msg.Get(obx, 3, 3);      // OBX-3.3
//     msg.Unescape(value, &text);
//   }
//
// Accepted input, from what real feeds send (../shared/data/hl7v2 has one
// of each):
//   - segments end with CR (the standard), LF or CRLF; blank lines are
//     skipped, and so are spaces and tabs at the end of a segment;
//   - a UTF-8 byte-order mark before the first segment;
//   - several messages back to back (a new one starts at each MSH);
//   - batch (BHS ... BTS) and file (FHS ... FTS) envelopes around them;
//   - any field separator and encoding characters MSH-1/MSH-2 declare
//     (4 of them, or 5 with the v2.7 truncation character), so long as
//     they are distinct and not letters, digits, space or line ends.
// Everything else is an error that says where (the line, counted from 1 as
// an editor shows it: CR, LF and CRLF each end a line) and what was
// expected. Nothing reads outside the input; no input crashes (fuzzed by
// tests/fuzz/hl7v2_fuzz.cc).
//
// Bytes are not transcoded: text in another character set than UTF-8
// (MSH-18) passes through as it is.
//
// Thread-compatible. Views point into the text given to Parse or to the
// splitter, which must outlive them.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace vstream {

struct Hl7Delimiters {
  char field = '|';
  char component = '^';
  char repetition = '~';
  char escape = '\\';
  char subcomponent = '&';
  char truncation = 0;  // v2.7+ ('#'); 0 when MSH-2 does not declare one
};

// A piece of a stream: one message, or a run of bytes that is none.
struct Hl7Piece {
  std::string_view text;
  int line = 0;       // the line of its first segment
  std::string error;  // empty for a message; else why the bytes are none
};

// Splits a stream's bytes into messages. Envelope segments (FHS, FTS, BHS,
// BTS) are checked and dropped. A batch that is not well formed (a BHS
// inside it, a segment outside any message, no BTS) is one piece with an
// error, all of its bytes, so that a dead-letter output keeps it whole;
// segments outside any message and envelope segments out of place are
// pieces with an error too. Messages themselves are not parsed here.
class Hl7Splitter {
 public:
  Hl7Splitter() = default;
  explicit Hl7Splitter(std::string_view bytes);
  // Starts over on other bytes, keeping the capacity of its line index, so
  // that a splitter reused per message (an MLLP frame) does not allocate.
  void Reset(std::string_view bytes);

  // The next piece; false at the end.
  bool Next(Hl7Piece* piece);

 private:
  struct Line {
    size_t begin;  // offset of its first byte
    size_t end;    // offset past its last byte, trailing spaces dropped
    int number;
    char id[3];
  };
  bool IsId(const Line& line, std::string_view id) const;
  std::string_view Span(size_t first, size_t last) const;  // lines [first, last]
  // From lines_[next_] (a MSH): the index past the message's last line.
  size_t MessageEnd(size_t first) const;
  void EmitError(size_t first, size_t last, std::string reason, Hl7Piece* piece);

  std::string_view bytes_;
  std::vector<Line> lines_;  // non-blank lines
  size_t next_ = 0;
  // Messages of a well-formed batch still to hand out: [next_, batch_end_).
  size_t batch_end_ = 0;
  bool in_file_ = false;
  int file_line_ = 0;
};

// One parsed message. Reusable: Parse again keeps the vectors' capacity, so
// that a warm parser does not allocate.
class Hl7Message {
 public:
  // Parses one message (the text of an Hl7Piece, or of an MLLP frame),
  // which must start with MSH. `first_line` is the line of its first segment
  // in the stream, for error messages. InvalidArgument says what is wrong
  // and on which line, e.g.
  //   "line 3: 'OB1' is not a segment id (3 upper-case letters or digits, then '|')".
  absl::Status Parse(std::string_view text, int first_line = 1);

  const Hl7Delimiters& delimiters() const { return delimiters_; }
  int segment_count() const { return static_cast<int>(segments_.size()); }
  std::string_view segment_id(int segment) const;
  int line(int segment) const;  // its line in the stream
  // The number of the segment's last field (0 for a segment with none).
  int field_count(int segment) const;
  // The index of the first segment with this id at or after `from`; -1 if none.
  int Find(std::string_view id, int from = 0) const;

  // Field `field` of a segment, raw (escapes not decoded); "" when absent or
  // when `segment` is -1. HL7 numbering: MSH-1 is the field separator
  // itself, MSH-2 the encoding characters, MSH-3 the sending application.
  std::string_view Field(int segment, int field) const;
  // A part of a field: component `component` (1-based; 0 = the whole
  // repetition) of repetition `repetition` (1-based), sub-component
  // `subcomponent` (0 = the whole component). Raw; "" when absent.
  std::string_view Get(int segment, int field, int component = 0, int subcomponent = 0,
                       int repetition = 1) const;

  // The parts of a raw value, 1-based; "" when absent.
  std::string_view Repetition(std::string_view field, int repetition) const;
  std::string_view Component(std::string_view value, int component) const;
  std::string_view Subcomponent(std::string_view component, int subcomponent) const;
  // The number of repetitions of a raw field (0 when empty).
  int RepetitionCount(std::string_view field) const;

  // Decodes the escape sequences of a raw value into *out (replacing it):
  //   \F\ \S\ \T\ \R\ \E\ \P\   the delimiters
  //   \Xhh...\                  bytes in hexadecimal
  //   \.br\ \.sp\ \.sp n\       line breaks
  //   \H\ \N\ \.in\ \.ti\ \.sk\ \.ce\ \.fi\ \.nf\ \Cxxyy\ \Mxxyy[zz]\ (formatting
  //                             and character-set switches): dropped
  //   \Z...\ and unknown ones   kept as they are
  // An escape without its closing escape character, or bad hexadecimal, is
  // InvalidArgument.
  absl::Status Unescape(std::string_view raw, std::string* out) const;

  // HL7's explicit null: a field of exactly "" (two double quotes), which
  // means "delete the value", unlike an empty field ("not sent").
  static bool IsExplicitNull(std::string_view raw) { return raw == "\"\""; }

 private:
  struct Segment {
    std::string_view id;
    uint32_t first_field;  // index in fields_ of field 1
    uint32_t fields;       // number of fields after the id
    int line;
  };

  Hl7Delimiters delimiters_;
  std::vector<Segment> segments_;
  std::vector<std::string_view> fields_;
};

// An HL7 TS/DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ], as epoch
// milliseconds. A time without an offset is in the zone `default_offset_minutes`
// east of UTC (0: UTC). Missing parts are their lowest value (202403 is
// 2024-03-01T00:00). InvalidArgument names what is wrong.
absl::Status ParseHl7Timestamp(std::string_view text, int default_offset_minutes, int64_t* out_ms);

}  // namespace vstream
