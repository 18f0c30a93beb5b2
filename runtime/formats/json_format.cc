#include "runtime/formats/json_format.h"

#include <cassert>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/formats/format_util.h"

namespace vstream {

namespace fi = format_internal;

namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The JSON type of the value starting with `c`, for type-mismatch messages;
// nullptr if no value starts with it.
const char* JsonTypeAt(char c) {
  switch (c) {
    case '"': return "string";
    case '{': return "object";
    case '[': return "array";
    case 't':
    case 'f': return "bool";
    case 'n': return "null";
    default: return c == '-' || IsDigit(c) ? "number" : nullptr;
  }
}

// A cursor over one line. Every read checks bounds; on malformed input it
// returns "invalid JSON at column N: ..." with N the 1-based byte column.
class JsonReader {
 public:
  JsonReader(std::string_view text, size_t pos) : s_(text), pos_(pos) {}

  bool AtEnd() const { return pos_ >= s_.size(); }
  // The current byte, or '\0' at the end (which no rule accepts).
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void SkipWhitespace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at column ", pos_ + 1, ": ", AV(what)));
  }

  // Reads the string starting at the current '"'. *out views the line when
  // the string has no escapes, else *scratch holding the unescaped text.
  absl::Status ReadString(std::string* scratch, std::string_view* out);
  // Reads a number; *text is its source text, *integral false if it has a
  // fraction or exponent.
  absl::Status ReadNumber(std::string_view* text, bool* integral);
  absl::Status ReadLiteral(std::string_view word);
  // "key" ws ':' at the current position.
  absl::Status ReadKeyAndColon(std::string* scratch, std::string_view* key);
  // Skips any one value, however nested (up to kMaxDepth), without recursion.
  absl::Status SkipValue(std::string* scratch);

 private:
  absl::Status ReadHex4(uint32_t* out);
  absl::Status SkipScalar(std::string* scratch);

  const std::string_view s_;
  size_t pos_;
};

absl::Status JsonReader::ReadHex4(uint32_t* out) {
  if (s_.size() - pos_ < 4) return Error("truncated \\u escape");
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = s_[pos_];
    uint32_t digit;
    if (IsDigit(c)) {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return Error("invalid hex digit in \\u escape");
    }
    v = v * 16 + digit;
    ++pos_;
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status JsonReader::ReadString(std::string* scratch, std::string_view* out) {
  if (!Consume('"')) return Error("expected '\"'");
  const size_t start = pos_;
  bool unescaped = false;  // true once the text lives in *scratch
  while (true) {
    if (pos_ >= s_.size()) return Error("unterminated string");
    const unsigned char c = static_cast<unsigned char>(s_[pos_]);
    if (c == '"') {
      *out = unescaped ? std::string_view(*scratch) : s_.substr(start, pos_ - start);
      ++pos_;
      return absl::OkStatus();
    }
    if (c < 0x20) return Error("control character in string");
    if (c >= 0x80) {
      const size_t len = fi::Utf8SequenceLength(s_, pos_);
      if (len == 0) return Error("invalid UTF-8 in string");
      if (unescaped) scratch->append(s_.data() + pos_, len);
      pos_ += len;
      continue;
    }
    if (c != '\\') {
      if (unescaped) scratch->push_back(static_cast<char>(c));
      ++pos_;
      continue;
    }
    if (!unescaped) {
      scratch->assign(s_.data() + start, pos_ - start);
      unescaped = true;
    }
    ++pos_;  // the backslash
    if (pos_ >= s_.size()) return Error("unterminated string");
    const char e = s_[pos_];
    switch (e) {
      case '"':
      case '\\':
      case '/': scratch->push_back(e); break;
      case 'b': scratch->push_back('\b'); break;
      case 'f': scratch->push_back('\f'); break;
      case 'n': scratch->push_back('\n'); break;
      case 'r': scratch->push_back('\r'); break;
      case 't': scratch->push_back('\t'); break;
      case 'u': {
        ++pos_;
        uint32_t cp;
        RETURN_IF_ERROR(ReadHex4(&cp));
        if (cp >= 0xDC00 && cp <= 0xDFFF) return Error("unpaired low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (!Consume('\\') || !Consume('u'))
            return Error("unpaired high surrogate in \\u escape");
          uint32_t low;
          RETURN_IF_ERROR(ReadHex4(&low));
          if (low < 0xDC00 || low > 0xDFFF) return Error("unpaired high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        fi::AppendUtf8(cp, scratch);
        continue;  // pos_ is already past the escape
      }
      default: return Error("invalid escape in string");
    }
    ++pos_;
  }
}

absl::Status JsonReader::ReadNumber(std::string_view* text, bool* integral) {
  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  const size_t start = pos_;
  Consume('-');
  if (Consume('0')) {
    // A leading zero stands alone; "01" fails at the caller's next token.
  } else if (IsDigit(Peek())) {
    while (IsDigit(Peek())) ++pos_;
  } else {
    return Error("invalid number");
  }
  *integral = true;
  if (Consume('.')) {
    *integral = false;
    if (!IsDigit(Peek())) return Error("expected digit after '.'");
    while (IsDigit(Peek())) ++pos_;
  }
  if (Consume('e') || Consume('E')) {
    *integral = false;
    if (!Consume('+')) Consume('-');
    if (!IsDigit(Peek())) return Error("expected digit in exponent");
    while (IsDigit(Peek())) ++pos_;
  }
  *text = s_.substr(start, pos_ - start);
  return absl::OkStatus();
}

absl::Status JsonReader::ReadLiteral(std::string_view word) {
  if (s_.substr(pos_, word.size()) != word) return Error("invalid literal");
  pos_ += word.size();
  return absl::OkStatus();
}

absl::Status JsonReader::ReadKeyAndColon(std::string* scratch, std::string_view* key) {
  if (Peek() != '"') return Error("expected '\"' to start a key");
  RETURN_IF_ERROR(ReadString(scratch, key));
  SkipWhitespace();
  if (!Consume(':')) return Error("expected ':'");
  return absl::OkStatus();
}

absl::Status JsonReader::SkipScalar(std::string* scratch) {
  switch (Peek()) {
    case '"': {
      std::string_view ignored;
      return ReadString(scratch, &ignored);
    }
    case 't': return ReadLiteral("true");
    case 'f': return ReadLiteral("false");
    case 'n': return ReadLiteral("null");
    default: {
      if (Peek() != '-' && !IsDigit(Peek())) return Error("expected a value");
      std::string_view ignored;
      bool integral;
      return ReadNumber(&ignored, &integral);
    }
  }
}

absl::Status JsonReader::SkipValue(std::string* scratch) {
  // The open containers, innermost last: '{' or '['.
  char open[JsonLinesParser::kMaxDepth];
  int depth = 0;
  while (true) {
    // Here a value is expected.
    SkipWhitespace();
    const char c = Peek();
    bool value_done = true;
    if (c == '{' || c == '[') {
      if (depth == JsonLinesParser::kMaxDepth) return Error("nesting too deep");
      open[depth++] = c;
      ++pos_;
      SkipWhitespace();
      if (Consume(c == '{' ? '}' : ']')) {
        --depth;
      } else {
        value_done = false;
        if (c == '{') {
          std::string_view key;
          RETURN_IF_ERROR(ReadKeyAndColon(scratch, &key));
        }
      }
    } else {
      RETURN_IF_ERROR(SkipScalar(scratch));
    }
    if (!value_done) continue;
    // After a value: close finished containers, or move to the next element.
    while (true) {
      if (depth == 0) return absl::OkStatus();
      SkipWhitespace();
      const bool in_object = open[depth - 1] == '{';
      if (Consume(',')) {
        if (in_object) {
          SkipWhitespace();
          std::string_view key;
          RETURN_IF_ERROR(ReadKeyAndColon(scratch, &key));
        }
        break;
      }
      if (Consume(in_object ? '}' : ']')) {
        --depth;
        continue;
      }
      return Error(in_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
}

// An integral JSON number (or one with an integral value, like 80.0 or 1e3)
// as int64.
absl::Status NumberToInt(const Field& field, std::string_view text, bool integral, int64_t* out) {
  if (integral) {
    const fi::NumberParse r = fi::ParseInt64(text, out);
    if (r == fi::NumberParse::kOk) return absl::OkStatus();
    return fi::BadValueError(field, text,
                             r == fi::NumberParse::kOutOfRange ? " (out of range)" : "");
  }
  double d;
  if (fi::ParseDouble(text, &d) != fi::NumberParse::kOk) return fi::BadValueError(field, text);
  // 2^63 is exact as a double; [-2^63, 2^63) converts without overflow.
  constexpr double kTwo63 = 9223372036854775808.0;
  if (std::trunc(d) != d) return fi::BadValueError(field, text);
  if (d < -kTwo63 || d >= kTwo63) return fi::BadValueError(field, text, " (out of range)");
  *out = static_cast<int64_t>(d);
  return absl::OkStatus();
}

absl::Status TypeMismatch(const Field& field, char first) {
  return fi::FieldError(
      field, absl::StrCat("expected ", FieldTypeName(field.type), ", got ", JsonTypeAt(first)));
}

// Reads the value at the reader's position into the field's datum.
absl::Status ReadField(JsonReader& r, const Field& field, std::string* scratch, Datum* out) {
  const char c = r.Peek();
  if (JsonTypeAt(c) == nullptr) return r.Error("expected a value");
  if (c == 'n') {
    RETURN_IF_ERROR(r.ReadLiteral("null"));
    out->SetNull();
    return absl::OkStatus();
  }
  const bool is_number = c == '-' || IsDigit(c);
  switch (field.type) {
    case FieldType::kString: {
      if (c != '"') return TypeMismatch(field, c);
      std::string_view v;
      RETURN_IF_ERROR(r.ReadString(scratch, &v));
      out->SetString(v);
      return absl::OkStatus();
    }
    case FieldType::kInt:
    case FieldType::kTimestamp: {
      if (field.type == FieldType::kTimestamp && c == '"') {
        std::string_view v;
        RETURN_IF_ERROR(r.ReadString(scratch, &v));
        int64_t ms;
        if (!ParseTimestamp(v, &ms)) return fi::BadValueError(field, v);
        out->SetInt(ms);
        return absl::OkStatus();
      }
      if (!is_number) return TypeMismatch(field, c);
      std::string_view text;
      bool integral;
      RETURN_IF_ERROR(r.ReadNumber(&text, &integral));
      int64_t v;
      RETURN_IF_ERROR(NumberToInt(field, text, integral, &v));
      out->SetInt(v);
      return absl::OkStatus();
    }
    case FieldType::kDouble: {
      if (!is_number) return TypeMismatch(field, c);
      std::string_view text;
      bool integral;
      RETURN_IF_ERROR(r.ReadNumber(&text, &integral));
      double v;
      const fi::NumberParse p = fi::ParseDouble(text, &v);
      if (p != fi::NumberParse::kOk) {
        return fi::BadValueError(field, text,
                                 p == fi::NumberParse::kOutOfRange ? " (out of range)" : "");
      }
      out->SetDouble(v);
      return absl::OkStatus();
    }
    case FieldType::kBool: {
      if (c != 't' && c != 'f') return TypeMismatch(field, c);
      const bool v = c == 't';
      RETURN_IF_ERROR(r.ReadLiteral(v ? "true" : "false"));
      out->SetBool(v);
      return absl::OkStatus();
    }
  }
  return fi::FieldError(field, "unknown field type");
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;  // start of the pending run of bytes copied as they are
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = fi::Utf8SequenceLength(s, i);
      if (len > 0) {
        i += len;
        continue;
      }
    }
    out->append(s.data() + run, i - run);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out->append(esc, sizeof(esc));
        } else {
          out->append("\\ufffd");  // a byte that is not part of valid UTF-8
        }
    }
    ++i;
    run = i;
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}


JsonLinesParser::JsonLinesParser(Schema schema) : schema_(std::move(schema)) {
  for (size_t f = 0; f < schema_.size(); ++f) {
    field_index_.emplace(schema_.field(f).name,
                         static_cast<int>(f));  // first of a repeated name wins
  }
}

absl::Status JsonLinesParser::ParseLine(std::string_view line, Row* row) {
  if (row->size() != schema_.size()) row->resize(schema_.size());
  for (Datum& d : *row) d.SetNull();
  JsonReader r(line, line.substr(0, kUtf8Bom.size()) == kUtf8Bom ? kUtf8Bom.size() : 0);
  r.SkipWhitespace();
  if (!r.Consume('{')) return r.Error("expected '{'");
  r.SkipWhitespace();
  if (!r.Consume('}')) {
    while (true) {
      std::string_view key;
      RETURN_IF_ERROR(r.ReadKeyAndColon(&key_, &key));
      r.SkipWhitespace();
      auto it = field_index_.find(AV(key));
      if (it == field_index_.end()) {
        RETURN_IF_ERROR(r.SkipValue(&text_));
      } else {
        RETURN_IF_ERROR(ReadField(r, schema_.field(it->second), &text_, &(*row)[it->second]));
      }
      r.SkipWhitespace();
      if (r.Consume(',')) {
        r.SkipWhitespace();
        continue;
      }
      if (r.Consume('}')) break;
      return r.Error("expected ',' or '}'");
    }
  }
  r.SkipWhitespace();
  if (!r.AtEnd()) return r.Error("unexpected text after the object");
  return absl::OkStatus();
}

JsonLinesWriter::JsonLinesWriter(Schema schema) : schema_(std::move(schema)) {
  prefixes_.reserve(schema_.size());
  for (size_t f = 0; f < schema_.size(); ++f) {
    std::string prefix(f == 0 ? "{" : ",");
    AppendJsonString(schema_.field(f).name, &prefix);
    prefix.push_back(':');
    prefixes_.push_back(std::move(prefix));
  }
}

void JsonLinesWriter::Write(const Row& row, std::string* out) {
  assert(row.size() >= schema_.size());
  if (schema_.size() == 0) {
    out->append("{}\n");
    return;
  }
  for (size_t f = 0; f < schema_.size(); ++f) {
    out->append(prefixes_[f]);
    const Datum& d = row[f];
    if (d.is_null) {
      out->append("null");
      continue;
    }
    switch (schema_.field(f).type) {
      case FieldType::kInt: fi::AppendInt64(d.i, out); break;
      case FieldType::kDouble:
        if (std::isfinite(d.d)) {
          fi::AppendDouble(d.d, out);
        } else {
          out->append("null");
        }
        break;
      case FieldType::kString: AppendJsonString(d.s, out); break;
      case FieldType::kBool: out->append(d.i ? "true" : "false"); break;
      case FieldType::kTimestamp:
        if (fi::TimestampHasIsoForm(d.i)) {
          out->push_back('"');
          AppendTimestamp(d.i, out);
          out->push_back('"');
        } else {
          fi::AppendInt64(d.i, out);
        }
        break;
    }
  }
  out->append("}\n");
}

}  // namespace vstream
