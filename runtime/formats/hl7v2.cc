#include "runtime/formats/hl7v2.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/time_util.h"

namespace vstream {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr size_t kQuoteMax = 24;  // bytes of input quoted in an error

bool IsAlnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdChar(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Input quoted in an error: at most kQuoteMax bytes, control bytes as \xNN.
std::string Quote(std::string_view text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < kQuoteMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kQuoteMax) out += "...";
  out += "'";
  return out;
}

// The n-th (1-based) part of `text` split at `sep`; "" when absent.
std::string_view NthPart(std::string_view text, char sep, int n) {
  if (n < 1) return {};
  size_t begin = 0;
  for (int i = 1; i < n; ++i) {
    const size_t at = text.find(sep, begin);
    if (at == std::string_view::npos) return {};
    begin = at + 1;
  }
  const size_t end = text.find(sep, begin);
  return text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
}

// Calls fn(line_begin, line_end, line_number) for each line of `text`
// (CR, LF or CRLF ends one), with trailing spaces and tabs dropped, blank
// lines included. Stops early when fn returns false.
template <typename Fn>
void ForEachLine(std::string_view text, int first_line, Fn&& fn) {
  size_t pos = 0;
  int number = first_line;
  while (pos < text.size()) {
    size_t eol = pos;
    while (eol < text.size() && text[eol] != '\r' && text[eol] != '\n') ++eol;
    size_t end = eol;
    while (end > pos && (text[end - 1] == ' ' || text[end - 1] == '\t')) --end;
    if (!fn(pos, end, number)) return;
    if (eol < text.size() && text[eol] == '\r' && eol + 1 < text.size() && text[eol + 1] == '\n') ++eol;
    pos = eol + 1;
    ++number;
  }
}

bool IsEnvelopeId(std::string_view id) { return id == "FHS" || id == "FTS" || id == "BHS" || id == "BTS"; }

}  // namespace

// ---------------------------------------------------------------------------
// Hl7Splitter

Hl7Splitter::Hl7Splitter(std::string_view bytes) { Reset(bytes); }

void Hl7Splitter::Reset(std::string_view bytes) {
  bytes_ = bytes;
  lines_.clear();
  next_ = 0;
  batch_end_ = 0;
  in_file_ = false;
  file_line_ = 0;
  size_t start = 0;
  if (bytes_.substr(0, kBom.size()) == kBom) start = kBom.size();
  ForEachLine(bytes_.substr(start), 1, [&](size_t begin, size_t end, int number) {
    if (end > begin) {
      Line line{start + begin, start + end, number, {' ', ' ', ' '}};
      for (size_t i = 0; i < 3 && begin + i < end; ++i) line.id[i] = bytes_[start + begin + i];
      lines_.push_back(line);
    }
    return true;
  });
}

bool Hl7Splitter::IsId(const Line& line, std::string_view id) const {
  if (line.end - line.begin < 3 || std::memcmp(line.id, id.data(), 3) != 0) return false;
  return line.end - line.begin == 3 || !IsAlnum(bytes_[line.begin + 3]);
}

std::string_view Hl7Splitter::Span(size_t first, size_t last) const {
  return bytes_.substr(lines_[first].begin, lines_[last].end - lines_[first].begin);
}

size_t Hl7Splitter::MessageEnd(size_t first) const {
  size_t i = first + 1;
  while (i < lines_.size()) {
    const Line& l = lines_[i];
    if (IsId(l, "MSH") || IsId(l, "BHS") || IsId(l, "BTS") || IsId(l, "FHS") || IsId(l, "FTS")) break;
    ++i;
  }
  return i;
}

void Hl7Splitter::EmitError(size_t first, size_t last, std::string reason, Hl7Piece* piece) {
  piece->text = Span(first, last);
  piece->line = lines_[first].number;
  piece->error = std::move(reason);
  next_ = last + 1;
}

bool Hl7Splitter::Next(Hl7Piece* piece) {
  piece->error.clear();
  const size_t n = lines_.size();
  while (next_ < n) {
    const Line& l = lines_[next_];
    const std::string_view id(l.id, 3);
    if (next_ < batch_end_) {
      // A batch already checked: its messages, then its BTS.
      if (IsId(l, "BTS")) {
        ++next_;
        continue;
      }
      const size_t end = MessageEnd(next_);
      piece->text = Span(next_, end - 1);
      piece->line = l.number;
      next_ = end;
      return true;
    }
    if (IsId(l, "MSH")) {
      const size_t end = MessageEnd(next_);
      piece->text = Span(next_, end - 1);
      piece->line = l.number;
      next_ = end;
      return true;
    }
    if (IsId(l, "BHS")) {
      // Check the whole batch before handing out any of its messages: a
      // batch that is not well formed goes to the dead letters whole.
      size_t i = next_ + 1;
      while (i < n) {
        const Line& m = lines_[i];
        if (IsId(m, "MSH")) {
          i = MessageEnd(i);
          continue;
        }
        if (IsId(m, "BTS")) {
          batch_end_ = i + 1;
          ++next_;
          break;
        }
        if (IsId(m, "BHS") || IsId(m, "FHS") || IsId(m, "FTS")) {
          EmitError(next_, i - 1,
                    absl::StrCat("line ", m.number, ": ", AV(std::string_view(m.id, 3)), " inside the batch begun at line ",
                                 l.number, " (a batch ends with BTS before the next begins)"),
                    piece);
          return true;
        }
        // A segment outside any message: the batch is bad up to its BTS.
        size_t last = i;
        while (last + 1 < n && !IsId(lines_[last + 1], "BHS") && !IsId(lines_[last + 1], "FHS") &&
               !IsId(lines_[last + 1], "FTS")) {
          ++last;
          if (IsId(lines_[last], "BTS")) break;
        }
        EmitError(next_, last,
                  absl::StrCat("line ", m.number, ": segment ", Quote(std::string_view(m.id, 3)),
                               " outside any message in the batch begun at line ", l.number,
                               " (a message starts with MSH)"),
                  piece);
        return true;
      }
      if (next_ < batch_end_) continue;
      EmitError(next_, n - 1, absl::StrCat("the batch begun at line ", l.number, " has no BTS (it is cut short)"),
                piece);
      return true;
    }
    if (IsId(l, "BTS")) {
      EmitError(next_, next_, absl::StrCat("line ", l.number, ": BTS without a BHS before it"), piece);
      return true;
    }
    if (IsId(l, "FHS")) {
      if (in_file_) {
        EmitError(next_, next_,
                  absl::StrCat("line ", l.number, ": FHS inside the file begun at line ", file_line_,
                               " (a file ends with FTS before the next begins)"),
                  piece);
        return true;
      }
      in_file_ = true;
      file_line_ = l.number;
      ++next_;
      continue;
    }
    if (IsId(l, "FTS")) {
      if (!in_file_) {
        EmitError(next_, next_, absl::StrCat("line ", l.number, ": FTS without an FHS before it"), piece);
        return true;
      }
      in_file_ = false;
      ++next_;
      continue;
    }
    // Segments outside any message, up to the next one that begins something.
    size_t last = next_;
    while (last + 1 < n) {
      const Line& m = lines_[last + 1];
      if (IsId(m, "MSH") || IsEnvelopeId(std::string_view(m.id, 3))) break;
      ++last;
    }
    EmitError(next_, last,
              absl::StrCat("line ", l.number, ": segment ", Quote(id), " outside any message (a message starts with MSH)"),
              piece);
    return true;
  }
  if (in_file_) {
    in_file_ = false;
    piece->text = bytes_.substr(bytes_.size());  // empty, at the end
    piece->line = file_line_;
    piece->error = absl::StrCat("the file begun at line ", file_line_, " has no FTS (it is cut short)");
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Hl7Message

absl::Status Hl7Message::Parse(std::string_view text, int first_line) {
  segments_.clear();
  fields_.clear();
  delimiters_ = Hl7Delimiters();
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());
  // Blank lines before MSH are allowed (a frame may start with a line end).
  while (!text.empty() && (text[0] == '\r' || text[0] == '\n')) {
    if (text[0] == '\n' || text.size() < 2 || text[1] != '\n') ++first_line;
    text.remove_prefix(1);
  }
  if (text.substr(0, 3) != "MSH") {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", first_line, ": a message starts with MSH, not ", Quote(text.substr(0, 3))));
  }
  if (text.size() < 4 || text[3] == '\r' || text[3] == '\n') {
    return absl::InvalidArgumentError(absl::StrCat("line ", first_line, ": MSH without a field separator (MSH-1)"));
  }
  auto bad_delimiter = [](char c) { return IsAlnum(c) || c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  const char sep = text[3];
  if (bad_delimiter(sep)) {
    return absl::InvalidArgumentError(absl::StrCat("line ", first_line, ": the field separator (MSH-1) ",
                                                   Quote(text.substr(3, 1)),
                                                   " must not be a letter, digit, space or line end"));
  }
  size_t enc_end = 4;
  while (enc_end < text.size() && text[enc_end] != sep && text[enc_end] != '\r' && text[enc_end] != '\n') ++enc_end;
  const std::string_view enc = text.substr(4, enc_end - 4);
  if (enc.size() != 4 && enc.size() != 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", first_line, ": the encoding characters (MSH-2) ", Quote(enc),
        " must be 4 (component, repetition, escape, sub-component) or 5 (and truncation), not ", enc.size()));
  }
  for (size_t i = 0; i < enc.size(); ++i) {
    if (bad_delimiter(enc[i])) {
      return absl::InvalidArgumentError(absl::StrCat("line ", first_line, ": the encoding characters (MSH-2) ",
                                                     Quote(enc), " hold ", Quote(enc.substr(i, 1)),
                                                     ": no letter, digit, space or line end may be a delimiter"));
    }
    if (enc[i] == sep || enc.substr(0, i).find(enc[i]) != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("line ", first_line, ": the encoding characters (MSH-2) ",
                                                     Quote(enc), " repeat ", Quote(enc.substr(i, 1)),
                                                     ": each delimiter must differ from the others and from MSH-1"));
    }
  }
  delimiters_.field = sep;
  delimiters_.component = enc[0];
  delimiters_.repetition = enc[1];
  delimiters_.escape = enc[2];
  delimiters_.subcomponent = enc[3];
  delimiters_.truncation = enc.size() == 5 ? enc[4] : 0;

  absl::Status status;
  ForEachLine(text, first_line, [&](size_t begin, size_t end, int number) {
    if (end == begin) return true;  // a blank line
    const std::string_view seg = text.substr(begin, end - begin);
    if (seg.size() < 3 || !IsIdChar(seg[0]) || !IsIdChar(seg[1]) || !IsIdChar(seg[2]) ||
        (seg.size() > 3 && seg[3] != sep)) {
      status = absl::InvalidArgumentError(absl::StrCat("line ", number, ": ", Quote(seg.substr(0, 4)),
                                                       " is not a segment id (3 upper-case letters or digits, then ",
                                                       Quote(std::string_view(&sep, 1)), ")"));
      return false;
    }
    const std::string_view id = seg.substr(0, 3);
    const bool msh = id == "MSH";
    if (msh != segments_.empty()) {
      status = absl::InvalidArgumentError(
          absl::StrCat("line ", number, ": a second MSH inside one message (messages are split at each MSH)"));
      return false;
    }
    if (IsEnvelopeId(id)) {
      status = absl::InvalidArgumentError(absl::StrCat("line ", number, ": ", AV(id), " inside a message (batch and file "
                                                       "envelopes go around messages, not in them)"));
      return false;
    }
    Segment s{id, static_cast<uint32_t>(fields_.size()), 0, number};
    size_t pos;
    if (msh) {
      fields_.push_back(seg.substr(3, 1));                // MSH-1
      fields_.push_back(seg.substr(4, enc.size()));       // MSH-2
      pos = 4 + enc.size();                               // at the separator before MSH-3, or the end
    } else {
      pos = 3;
    }
    while (pos < seg.size()) {  // seg[pos] == sep
      const size_t next = seg.find(sep, pos + 1);
      const size_t stop = next == std::string_view::npos ? seg.size() : next;
      fields_.push_back(seg.substr(pos + 1, stop - pos - 1));
      pos = stop;
    }
    s.fields = static_cast<uint32_t>(fields_.size()) - s.first_field;
    segments_.push_back(s);
    return true;
  });
  if (!status.ok()) {
    segments_.clear();
    fields_.clear();
  }
  return status;
}

std::string_view Hl7Message::segment_id(int segment) const {
  return segment >= 0 && segment < segment_count() ? segments_[segment].id : std::string_view();
}

int Hl7Message::line(int segment) const {
  return segment >= 0 && segment < segment_count() ? segments_[segment].line : 0;
}

int Hl7Message::field_count(int segment) const {
  return segment >= 0 && segment < segment_count() ? static_cast<int>(segments_[segment].fields) : 0;
}

int Hl7Message::Find(std::string_view id, int from) const {
  for (int i = std::max(from, 0); i < segment_count(); ++i) {
    if (segments_[i].id == id) return i;
  }
  return -1;
}

std::string_view Hl7Message::Field(int segment, int field) const {
  if (segment < 0 || segment >= segment_count() || field < 1) return {};
  const Segment& s = segments_[segment];
  if (static_cast<uint32_t>(field) > s.fields) return {};
  return fields_[s.first_field + field - 1];
}

std::string_view Hl7Message::Get(int segment, int field, int component, int subcomponent, int repetition) const {
  const std::string_view raw = Field(segment, field);
  if (field <= 2 && segment >= 0 && segment < segment_count() && segments_[segment].id == "MSH") return raw;
  const std::string_view rep = Repetition(raw, repetition);
  if (component == 0) return rep;
  const std::string_view comp = Component(rep, component);
  return subcomponent == 0 ? comp : Subcomponent(comp, subcomponent);
}

std::string_view Hl7Message::Repetition(std::string_view field, int repetition) const {
  return NthPart(field, delimiters_.repetition, repetition);
}

std::string_view Hl7Message::Component(std::string_view value, int component) const {
  return NthPart(value, delimiters_.component, component);
}

std::string_view Hl7Message::Subcomponent(std::string_view component, int subcomponent) const {
  return NthPart(component, delimiters_.subcomponent, subcomponent);
}

int Hl7Message::RepetitionCount(std::string_view field) const {
  if (field.empty()) return 0;
  return 1 + static_cast<int>(std::count(field.begin(), field.end(), delimiters_.repetition));
}

absl::Status Hl7Message::Unescape(std::string_view raw, std::string* out) const {
  out->clear();
  const char esc = delimiters_.escape;
  size_t i = 0;
  while (i < raw.size()) {
    const size_t at = raw.find(esc, i);
    if (at == std::string_view::npos) {
      out->append(raw.data() + i, raw.size() - i);
      break;
    }
    out->append(raw.data() + i, at - i);
    const size_t close = raw.find(esc, at + 1);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("the escape sequence ", Quote(raw.substr(at)),
                                                     " has no closing ", Quote(std::string_view(&esc, 1))));
    }
    const std::string_view seq = raw.substr(at + 1, close - at - 1);
    const std::string_view whole = raw.substr(at, close - at + 1);
    i = close + 1;
    if (seq.size() == 1) {
      switch (seq[0]) {
        case 'F': out->push_back(delimiters_.field); continue;
        case 'S': out->push_back(delimiters_.component); continue;
        case 'T': out->push_back(delimiters_.subcomponent); continue;
        case 'R': out->push_back(delimiters_.repetition); continue;
        case 'E': out->push_back(esc); continue;
        case 'P':
          if (delimiters_.truncation != 0) out->push_back(delimiters_.truncation);
          else out->append(whole);
          continue;
        case 'H':
        case 'N': continue;  // highlighting on and off
        default: out->append(whole); continue;
      }
    }
    if (!seq.empty() && seq[0] == 'X') {
      const std::string_view hex = seq.substr(1);
      auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      bool ok = !hex.empty() && hex.size() % 2 == 0;
      for (size_t k = 0; ok && k < hex.size(); ++k) ok = nibble(hex[k]) >= 0;
      if (!ok) {
        return absl::InvalidArgumentError(
            absl::StrCat("the escape sequence ", Quote(whole), " is not an even number of hexadecimal digits"));
      }
      for (size_t k = 0; k < hex.size(); k += 2) {
        out->push_back(static_cast<char>(nibble(hex[k]) * 16 + nibble(hex[k + 1])));
      }
      continue;
    }
    if (!seq.empty() && seq[0] == '.') {
      const std::string_view cmd = seq.substr(1, 2);
      if (cmd == "br") {
        out->push_back('\n');
      } else if (cmd == "sp") {
        int lines = 1;
        std::string_view arg = seq.substr(3);
        while (!arg.empty() && (arg[0] == ' ' || arg[0] == '+')) arg.remove_prefix(1);
        if (!arg.empty()) {
          int v = 0;
          for (char c : arg) {
            if (!IsDigit(c)) break;
            v = std::min(v * 10 + (c - '0'), 64);
          }
          lines = std::max(v, 1);
        }
        out->append(static_cast<size_t>(lines), '\n');
      } else if (cmd != "in" && cmd != "ti" && cmd != "sk" && cmd != "ce" && cmd != "fi" && cmd != "nf") {
        out->append(whole);
      }
      continue;
    }
    if ((seq.size() == 5 && seq[0] == 'C') || ((seq.size() == 5 || seq.size() == 7) && seq[0] == 'M')) continue;  // character sets
    out->append(whole);  // \Z..\ (locally defined) and anything else: as sent
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Timestamps

absl::Status ParseHl7Timestamp(std::string_view text, int default_offset_minutes, int64_t* out_ms) {
  auto error = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]]"
                                                   "[+/-ZZZZ]): ", AV(what)));
  };
  size_t pos = 0;
  auto digits = [&](size_t n, int* v) {
    if (pos + n > text.size()) return false;
    int r = 0;
    for (size_t k = 0; k < n; ++k) {
      if (!IsDigit(text[pos + k])) return false;
      r = r * 10 + (text[pos + k] - '0');
    }
    *v = r;
    pos += n;
    return true;
  };
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0, millis = 0;
  if (!digits(4, &year)) return error("no 4-digit year");
  int* parts[] = {&month, &day, &hour, &minute, &second};
  for (int* p : parts) {
    if (pos >= text.size() || !IsDigit(text[pos])) break;
    if (!digits(2, p)) return error("the digits after the year come in pairs");
  }
  if (month < 1 || month > 12) return error("month out of range");
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day < 1 || day > kDays[month - 1] || (month == 2 && day == 29 && !leap)) return error("day out of range");
  if (hour > 23) return error("hour out of range");
  if (minute > 59) return error("minute out of range");
  if (second > 59) return error("second out of range");
  if (pos < text.size() && text[pos] == '.') {
    if (pos < 14) return error("a fraction of a second needs the seconds");
    ++pos;
    int scale = 100, n = 0;
    while (pos < text.size() && IsDigit(text[pos])) {
      if (n < 3) millis += (text[pos] - '0') * scale;
      scale /= 10;
      ++n;
      ++pos;
    }
    if (n == 0 || n > 4) return error("1 to 4 digits after the decimal point");
  }
  int offset = default_offset_minutes;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int hh = 0, mm = 0;
    if (!digits(2, &hh) || !digits(2, &mm)) return error("a time-zone offset is 4 digits, +HHMM or -HHMM");
    if (hh > 14 || mm > 59) return error("time-zone offset out of range");
    offset = sign * (hh * 60 + mm);
  }
  if (pos != text.size()) return error(absl::StrCat("unexpected ", Quote(text.substr(pos))));
  const int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  *out_ms = ((days * 86400 + hour * 3600 + minute * 60 + second) - static_cast<int64_t>(offset) * 60) * 1000 + millis;
  return absl::OkStatus();
}

}  // namespace vstream
