#include "runtime/formats/csv_format.h"

#include <cassert>
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

void AppendCsvField(std::string_view text, std::string* out) {
  // Empty strings are quoted so that they read back as "" rather than null.
  if (!text.empty() && text.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(text.data(), text.size());
    return;
  }
  out->push_back('"');
  size_t start = 0;
  for (size_t q = text.find('"'); q != std::string_view::npos; q = text.find('"', q + 1)) {
    out->append(text.data() + start, q + 1 - start);  // up to and including the quote
    out->push_back('"');
    start = q + 1;
  }
  out->append(text.data() + start, text.size() - start);
  out->push_back('"');
}

}  // namespace

absl::Status CsvParser::SplitLine(std::string_view line, std::vector<Span>* spans,
                                  std::string* unquoted) {
  spans->clear();
  unquoted->clear();
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t n = line.size();
  size_t pos = 0;
  while (true) {
    if (pos < n && line[pos] == '"') {
      const size_t column = spans->size() + 1;
      const size_t begin = unquoted->size();
      ++pos;
      while (true) {
        const size_t q = line.find('"', pos);
        if (q == std::string_view::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat("unterminated quoted field in column ", column));
        }
        unquoted->append(line.data() + pos, q - pos);
        pos = q + 1;
        if (pos < n && line[pos] == '"') {  // "" is an escaped quote
          unquoted->push_back('"');
          ++pos;
          continue;
        }
        break;
      }
      spans->push_back({begin, unquoted->size() - begin, true});
      if (pos == n) return absl::OkStatus();
      if (line[pos] != ',') {
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected character after closing quote in column ", column));
      }
      ++pos;
    } else {
      // Unquoted: runs to the next comma. A quote inside it is kept as text.
      const size_t comma = line.find(',', pos);
      const size_t end = comma == std::string_view::npos ? n : comma;
      spans->push_back({pos, end - pos, false});
      if (comma == std::string_view::npos) return absl::OkStatus();
      pos = comma + 1;
    }
  }
}

absl::StatusOr<std::unique_ptr<CsvParser>> CsvParser::Create(const Schema& schema,
                                                             std::string_view header_line) {
  if (header_line.substr(0, kUtf8Bom.size()) == kUtf8Bom)
    header_line.remove_prefix(kUtf8Bom.size());
  std::vector<Span> spans;
  std::string unquoted;
  absl::Status split = SplitLine(header_line, &spans, &unquoted);
  if (!split.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid CSV header: ", split.message()));
  }
  std::vector<std::string_view> names;
  names.reserve(spans.size());
  for (const Span& s : spans) {
    std::string_view text = s.quoted ? std::string_view(unquoted).substr(s.begin, s.size)
                                     : header_line.substr(s.begin, s.size);
    names.push_back(fi::TrimBlanks(text));
  }
  std::vector<int> column_field(names.size(), -1);
  std::vector<bool> found(schema.size(), false);
  for (size_t c = 0; c < names.size(); ++c) {
    const int f = schema.IndexOf(names[c]);
    if (f >= 0 && !found[f]) {  // a repeated column name: the first one counts
      column_field[c] = f;
      found[f] = true;
    }
  }
  for (size_t f = 0; f < schema.size(); ++f) {
    if (!found[f]) {
      std::string header;
      for (size_t c = 0; c < names.size(); ++c) {
        absl::StrAppend(&header, c ? ", " : "", AV(names[c]));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "CSV header lacks column '", schema.field(f).name, "' (header: ", header, ")"));
    }
  }
  return std::unique_ptr<CsvParser>(new CsvParser(schema, std::move(column_field)));
}

absl::Status CsvParser::ParseLine(std::string_view line, Row* row) {
  RETURN_IF_ERROR(SplitLine(line, &spans_, &unquoted_));
  // A column count mismatch is reported before any value: with fields out of
  // place, a value error would blame the wrong field.
  if (spans_.size() != column_field_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", column_field_.size(), " columns, got ", spans_.size()));
  }
  if (row->size() != schema_.size()) row->resize(schema_.size());
  for (size_t c = 0; c < spans_.size(); ++c) {
    const int f = column_field_[c];
    if (f < 0) continue;
    const Span& s = spans_[c];
    std::string_view text = s.quoted ? std::string_view(unquoted_).substr(s.begin, s.size)
                                     : line.substr(s.begin, s.size);
    RETURN_IF_ERROR(ParseValue(schema_.field(f), text, s.quoted, &(*row)[f]));
  }
  return absl::OkStatus();
}

absl::Status CsvParser::ParseValue(const Field& field, std::string_view text, bool quoted,
                                   Datum* out) {
  if (field.type == FieldType::kString) {
    if (text.empty() && !quoted) {
      out->SetNull();
    } else {
      out->SetString(text);
    }
    return absl::OkStatus();
  }
  text = fi::TrimBlanks(text);
  if (text.empty()) {
    out->SetNull();
    return absl::OkStatus();
  }
  switch (field.type) {
    case FieldType::kInt: {
      int64_t v;
      const fi::NumberParse r = fi::ParseInt64(text, &v);
      if (r != fi::NumberParse::kOk) {
        return fi::BadValueError(field, text,
                                 r == fi::NumberParse::kOutOfRange ? " (out of range)" : "");
      }
      out->SetInt(v);
      return absl::OkStatus();
    }
    case FieldType::kDouble: {
      double v;
      const fi::NumberParse r = fi::ParseDouble(text, &v);
      if (r != fi::NumberParse::kOk) {
        return fi::BadValueError(field, text,
                                 r == fi::NumberParse::kOutOfRange ? " (out of range)" : "");
      }
      out->SetDouble(v);
      return absl::OkStatus();
    }
    case FieldType::kBool: {
      bool v;
      if (!fi::ParseBool(text, &v)) return fi::BadValueError(field, text);
      out->SetBool(v);
      return absl::OkStatus();
    }
    case FieldType::kTimestamp: {
      int64_t v;
      if (!ParseTimestamp(text, &v)) return fi::BadValueError(field, text);
      out->SetInt(v);
      return absl::OkStatus();
    }
    case FieldType::kString: break;  // handled above
  }
  return fi::FieldError(field, "unknown field type");
}

std::string CsvWriter::Header() const {
  std::string out;
  for (size_t f = 0; f < schema_.size(); ++f) {
    if (f) out.push_back(',');
    AppendCsvField(schema_.field(f).name, &out);
  }
  out.push_back('\n');
  return out;
}

void CsvWriter::Write(const Row& row, std::string* out) {
  assert(row.size() >= schema_.size());
  for (size_t f = 0; f < schema_.size(); ++f) {
    if (f) out->push_back(',');
    const Datum& d = row[f];
    if (d.is_null) continue;
    switch (schema_.field(f).type) {
      case FieldType::kInt: fi::AppendInt64(d.i, out); break;
      case FieldType::kDouble: fi::AppendDouble(d.d, out); break;
      case FieldType::kString: AppendCsvField(d.s, out); break;
      case FieldType::kBool: out->append(d.i ? "true" : "false"); break;
      case FieldType::kTimestamp:
        if (fi::TimestampHasIsoForm(d.i)) {
          AppendTimestamp(d.i, out);
        } else {
          fi::AppendInt64(d.i, out);
        }
        break;
    }
  }
  out->push_back('\n');
}

}  // namespace vstream
