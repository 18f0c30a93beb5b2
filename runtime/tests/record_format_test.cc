#include "runtime/formats/record_format.h"

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "common/time_util.h"
#include "gtest/gtest.h"
#include "runtime/types.h"

// Counts heap allocations so that the hot-path test can check that warm
// parsers and writers allocate nothing.
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

// noinline: inlined into a caller, free() after new trips -Wmismatched-new-delete.
[[gnu::noinline]] void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace vstream {
namespace {

constexpr char kVitalsHeader[] = "patient_id,ts,hr,spo2,ok";

Schema VitalsSchema() {
  return Schema({{"patient_id", FieldType::kString},
                 {"ts", FieldType::kTimestamp},
                 {"hr", FieldType::kInt},
                 {"spo2", FieldType::kDouble},
                 {"ok", FieldType::kBool}});
}

std::unique_ptr<RecordParser> MakeParser(std::string_view format, const Schema& schema,
                                         std::string_view header = kVitalsHeader) {
  auto parser = CreateRecordParser(format, schema, header);
  EXPECT_TRUE(parser.ok()) << parser.status();
  return parser.ok() ? std::move(parser).value() : nullptr;
}

std::unique_ptr<RecordWriter> MakeWriter(std::string_view format, const Schema& schema) {
  auto writer = CreateRecordWriter(format, schema);
  EXPECT_TRUE(writer.ok()) << writer.status();
  return writer.ok() ? std::move(writer).value() : nullptr;
}

// Exact text of a row: doubles in shortest round-trip form (so that any bit
// difference other than a NaN payload shows), strings with their bytes.
std::string Describe(const Schema& schema, const Row& row) {
  std::string out;
  for (size_t f = 0; f < schema.size(); ++f) {
    if (f) out += " | ";
    if (f >= row.size()) {
      out += "<missing>";
      continue;
    }
    const Datum& d = row[f];
    if (d.is_null) {
      out += "null";
    } else if (schema.field(f).type == FieldType::kDouble) {
      char buf[32];
      auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), d.d);
      out.append(buf, ptr - buf);
    } else if (schema.field(f).type == FieldType::kTimestamp) {
      out += std::to_string(d.i);
    } else {
      out += "'" + DatumToString(d, schema.field(f).type) + "'";
    }
  }
  return out;
}

// "OK" or the InvalidArgument message of parsing `line`.
std::string Parse(RecordParser& parser, std::string_view line, Row* row) {
  absl::Status s = parser.ParseLine(line, row);
  if (s.ok()) return "OK";
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

std::string ParseError(RecordParser& parser, std::string_view line) {
  Row row;
  return Parse(parser, line, &row);
}

// ----------------------------------------------------------------- factories

TEST(RecordFormatTest, UnknownFormatIsRejected) {
  auto parser = CreateRecordParser("xml", VitalsSchema(), "");
  ASSERT_FALSE(parser.ok());
  EXPECT_EQ(parser.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parser.status().message(), "unknown record format 'xml', expected csv or jsonl");
  auto writer = CreateRecordWriter("CSV ", VitalsSchema());
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument);
}

// ----------------------------------------------------------------- CSV parser

TEST(CsvParserTest, ParsesAllTypes) {
  auto parser = MakeParser("csv", VitalsSchema());
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, "p1,2024-01-02T03:04:05.123Z,80,97.5,true", &row), "OK");
  ASSERT_EQ(row.size(), 5u);
  EXPECT_EQ(row[0].s, "p1");
  EXPECT_EQ(row[1].i, 1704164645123);
  EXPECT_EQ(row[2].i, 80);
  EXPECT_EQ(row[3].d, 97.5);
  EXPECT_EQ(row[4].i, 1);
  for (const Datum& d : row) EXPECT_FALSE(d.is_null);

  ASSERT_EQ(Parse(*parser, "p2,1700000000000,-7,+3,FALSE", &row), "OK");
  EXPECT_EQ(row[0].s, "p2");
  EXPECT_EQ(row[1].i, 1700000000000);
  EXPECT_EQ(row[2].i, -7);
  EXPECT_EQ(row[3].d, 3.0);
  EXPECT_EQ(row[4].i, 0);
}

TEST(CsvParserTest, MapsColumnsByNameAndIgnoresExtras) {
  auto parser = MakeParser("csv", VitalsSchema(), " ok , extra,\"hr\",spo2,ts,patient_id,more ");
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, "1,zzz,72,99,0,p9,x", &row), "OK");
  EXPECT_EQ(Describe(VitalsSchema(), row), "'p9' | 0 | '72' | 99 | 'true'");
}

TEST(CsvParserTest, HeaderLackingAFieldIsAnError) {
  Schema schema = VitalsSchema();
  auto parser = CreateRecordParser("csv", schema, "patient_id, ts, hr,ok");
  ASSERT_FALSE(parser.ok());
  EXPECT_EQ(parser.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parser.status().message(),
            "CSV header lacks column 'spo2' (header: patient_id, ts, hr, ok)");
}

TEST(CsvParserTest, MalformedHeaderIsAnError) {
  auto parser = CreateRecordParser("csv", VitalsSchema(), "patient_id,\"ts,hr,spo2,ok");
  ASSERT_FALSE(parser.ok());
  EXPECT_EQ(parser.status().message(), "invalid CSV header: unterminated quoted field in column 2");
}

TEST(CsvParserTest, SkipsByteOrderMarkAndCarriageReturnInHeader) {
  auto parser = MakeParser("csv", VitalsSchema(), "\xEF\xBB\xBFpatient_id,ts,hr,spo2,ok\r");
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, "a,0,1,2,true", &row), "OK");
  EXPECT_EQ(row[0].s, "a");
  // Without skipping, the first column would be named "\xEF\xBB\xBFpatient_id".
  auto bad =
      CreateRecordParser("csv", VitalsSchema(), "\xEF\xBB\xBF\xEF\xBB\xBFpatient_id,ts,hr,spo2,ok");
  EXPECT_FALSE(bad.ok());
}

TEST(CsvParserTest, QuotedFields) {
  Schema schema({{"a", FieldType::kString}, {"b", FieldType::kString}, {"c", FieldType::kInt}});
  auto parser = MakeParser("csv", schema, "a,b,c");
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, R"("x, y","say ""hi""","42")", &row), "OK");
  EXPECT_EQ(row[0].s, "x, y");
  EXPECT_EQ(row[1].s, "say \"hi\"");
  EXPECT_EQ(row[2].i, 42);

  // Empty unquoted is null, "" is the empty string.
  ASSERT_EQ(Parse(*parser, R"(,"",)", &row), "OK");
  EXPECT_TRUE(row[0].is_null);
  EXPECT_FALSE(row[1].is_null);
  EXPECT_EQ(row[1].s, "");
  EXPECT_TRUE(row[2].is_null);

  // Quoted empty and blank fields of non-string types are null; strings keep blanks.
  ASSERT_EQ(Parse(*parser, R"( , ,"")", &row), "OK");
  EXPECT_EQ(row[0].s, " ");
  EXPECT_EQ(row[1].s, " ");
  EXPECT_TRUE(row[2].is_null);

  // A quote inside an unquoted field is text.
  ASSERT_EQ(Parse(*parser, R"(5'10",b"c,7)", &row), "OK");
  EXPECT_EQ(row[0].s, "5'10\"");
  EXPECT_EQ(row[1].s, "b\"c");

  // Quoted text may hold a line break (though files are read line by line).
  ASSERT_EQ(Parse(*parser, "\"l1\nl2\",\"\r\",1", &row), "OK");
  EXPECT_EQ(row[0].s, "l1\nl2");
  EXPECT_EQ(row[1].s, "\r");
}

TEST(CsvParserTest, QuotingErrors) {
  Schema schema({{"a", FieldType::kString}, {"b", FieldType::kString}});
  auto parser = MakeParser("csv", schema, "a,b");
  ASSERT_NE(parser, nullptr);
  EXPECT_EQ(ParseError(*parser, R"(x,"open)"), "unterminated quoted field in column 2");
  EXPECT_EQ(ParseError(*parser, R"("a""",")"), "unterminated quoted field in column 2");
  EXPECT_EQ(ParseError(*parser, R"("a"b,c)"),
            "unexpected character after closing quote in column 1");
  EXPECT_EQ(ParseError(*parser, R"("a" ,c)"),
            "unexpected character after closing quote in column 1");
}

TEST(CsvParserTest, ToleratesCarriageReturn) {
  auto parser = MakeParser("csv", VitalsSchema());
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, "p1,0,80,1.5,true\r", &row), "OK");
  EXPECT_EQ(row[4].i, 1);
  ASSERT_EQ(Parse(*parser, "p1,0,80,1.5,\"x\r\"\r", &row), "field 'ok': expected bool, got 'x\r'");
  ASSERT_EQ(Parse(*parser, "p1,0,80,1.5,\r", &row), "OK");
  EXPECT_TRUE(row[4].is_null);
}

TEST(CsvParserTest, ColumnCountMustMatchHeader) {
  auto parser = MakeParser("csv", VitalsSchema());
  ASSERT_NE(parser, nullptr);
  EXPECT_EQ(ParseError(*parser, "p1,0,80"), "expected 5 columns, got 3");
  EXPECT_EQ(ParseError(*parser, "p1,0,80,1,true,"), "expected 5 columns, got 6");
  EXPECT_EQ(ParseError(*parser, ""), "expected 5 columns, got 1");
  // The count is checked before values, which would be misaligned.
  EXPECT_EQ(ParseError(*parser, "abc,def"), "expected 5 columns, got 2");
}

TEST(CsvParserTest, IntErrors) {
  Schema schema({{"hr", FieldType::kInt}});
  auto parser = MakeParser("csv", schema, "hr");
  ASSERT_NE(parser, nullptr);
  EXPECT_EQ(ParseError(*parser, "abc"), "field 'hr': expected int, got 'abc'");
  EXPECT_EQ(ParseError(*parser, "12abc"), "field 'hr': expected int, got '12abc'");
  EXPECT_EQ(ParseError(*parser, "1.5"), "field 'hr': expected int, got '1.5'");
  EXPECT_EQ(ParseError(*parser, "+-5"), "field 'hr': expected int, got '+-5'");
  EXPECT_EQ(ParseError(*parser, "+"), "field 'hr': expected int, got '+'");
  EXPECT_EQ(ParseError(*parser, "- 5"), "field 'hr': expected int, got '- 5'");
  EXPECT_EQ(ParseError(*parser, "9223372036854775808"),
            "field 'hr': expected int, got '9223372036854775808' (out of range)");
  Row row;
  ASSERT_EQ(Parse(*parser, "9223372036854775807", &row), "OK");
  EXPECT_EQ(row[0].i, std::numeric_limits<int64_t>::max());
  ASSERT_EQ(Parse(*parser, "-9223372036854775808", &row), "OK");
  EXPECT_EQ(row[0].i, std::numeric_limits<int64_t>::min());
  ASSERT_EQ(Parse(*parser, " +17\t", &row), "OK");
  EXPECT_EQ(row[0].i, 17);
}

TEST(CsvParserTest, DoubleValues) {
  Schema schema({{"x", FieldType::kDouble}});
  auto parser = MakeParser("csv", schema, "x");
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, "-2.5e3", &row), "OK");
  EXPECT_EQ(row[0].d, -2500);
  ASSERT_EQ(Parse(*parser, ".5", &row), "OK");
  EXPECT_EQ(row[0].d, 0.5);
  ASSERT_EQ(Parse(*parser, "0.1", &row), "OK");
  EXPECT_EQ(row[0].d, 0.1);
  ASSERT_EQ(Parse(*parser, "NaN", &row), "OK");
  EXPECT_TRUE(std::isnan(row[0].d));
  ASSERT_EQ(Parse(*parser, "-inf", &row), "OK");
  EXPECT_EQ(row[0].d, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(ParseError(*parser, "1.5x"), "field 'x': expected double, got '1.5x'");
  EXPECT_EQ(ParseError(*parser, "0x10"), "field 'x': expected double, got '0x10'");
  EXPECT_EQ(ParseError(*parser, "1,5"), "expected 1 columns, got 2");
  EXPECT_EQ(ParseError(*parser, "1e999"), "field 'x': expected double, got '1e999' (out of range)");
}

TEST(CsvParserTest, BoolAndTimestampValues) {
  Schema schema({{"b", FieldType::kBool}, {"t", FieldType::kTimestamp}});
  auto parser = MakeParser("csv", schema, "b,t");
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, "True,2023-11-14 22:13:20", &row), "OK");
  EXPECT_EQ(row[0].i, 1);
  EXPECT_EQ(row[1].i, 1700000000000);
  ASSERT_EQ(Parse(*parser, "0,-5", &row), "OK");
  EXPECT_EQ(row[0].i, 0);
  EXPECT_EQ(row[1].i, -5);
  ASSERT_EQ(Parse(*parser, "1,2023-11-14T23:13:20.5+01:00", &row), "OK");
  EXPECT_EQ(row[1].i, 1700000000500);
  EXPECT_EQ(ParseError(*parser, "yes,0"), "field 'b': expected bool, got 'yes'");
  EXPECT_EQ(ParseError(*parser, "true,yesterday"),
            "field 't': expected timestamp, got 'yesterday'");
}

TEST(CsvParserTest, LongBadValueIsAbbreviatedInMessage) {
  Schema schema({{"hr", FieldType::kInt}});
  auto parser = MakeParser("csv", schema, "hr");
  ASSERT_NE(parser, nullptr);
  const std::string value(1000, 'z');
  EXPECT_EQ(ParseError(*parser, value),
            "field 'hr': expected int, got '" + std::string(40, 'z') + "...'");
  // The cut does not split a multi-byte character: 39 ASCII bytes, then "é".
  const std::string utf8 = std::string(39, 'a') + "\xC3\xA9" + std::string(20, 'b');
  EXPECT_EQ(ParseError(*parser, utf8),
            "field 'hr': expected int, got '" + std::string(39, 'a') + "...'");
}

// ----------------------------------------------------------------- JSON parser

TEST(JsonLinesParserTest, ParsesAllTypes) {
  auto parser = MakeParser("jsonl", VitalsSchema());
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(
      Parse(*parser,
            R"({"patient_id":"p1","ts":"2024-01-02T03:04:05.123Z","hr":80,"spo2":97.5,"ok":true})",
            &row),
      "OK");
  EXPECT_EQ(Describe(VitalsSchema(), row), "'p1' | 1704164645123 | '80' | 97.5 | 'true'");
  ASSERT_EQ(
      Parse(*parser, " { \"ts\" : 1700000000000 , \"ok\":false,\"spo2\":-1E2,\"hr\":-0 } \r", &row),
      "OK");
  EXPECT_EQ(Describe(VitalsSchema(), row), "null | 1700000000000 | '0' | -100 | 'false'");
}

TEST(JsonLinesParserTest, MissingAndNullKeysAreNull) {
  auto parser = MakeParser("jsonl", VitalsSchema());
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, R"({"patient_id":"p1","hr":80,"spo2":1,"ok":true,"ts":0})", &row), "OK");
  ASSERT_EQ(Parse(*parser, R"({"hr":null})", &row), "OK");
  EXPECT_EQ(Describe(VitalsSchema(), row), "null | null | null | null | null");
  ASSERT_EQ(Parse(*parser, "{}", &row), "OK");
  EXPECT_EQ(Describe(VitalsSchema(), row), "null | null | null | null | null");
}

TEST(JsonLinesParserTest, SkipsUnknownKeysWhateverTheirValue) {
  auto parser = MakeParser("jsonl", VitalsSchema());
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(
      Parse(
          *parser,
          R"({"meta":{"a":[1,{"b":"}]\"x"},[],{}],"c":{}},"hr":81,"tags":["x",null,true,false,-1.5e-3],)"
          R"("e":[],"o":{},"n":null,"patient_id":"p"})",
          &row),
      "OK");
  EXPECT_EQ(row[0].s, "p");
  EXPECT_EQ(row[2].i, 81);
  // A repeated key keeps its last value.
  ASSERT_EQ(Parse(*parser, R"({"hr":1,"hr":2})", &row), "OK");
  EXPECT_EQ(row[2].i, 2);
  // Skipped values must still be valid JSON.
  EXPECT_EQ(ParseError(*parser, R"({"meta":[1,2}})"),
            "invalid JSON at column 13: expected ',' or ']'");
  EXPECT_EQ(ParseError(*parser, R"({"meta":{"a" 1}})"), "invalid JSON at column 14: expected ':'");
  EXPECT_EQ(ParseError(*parser, R"({"meta":{1:2}})"),
            "invalid JSON at column 10: expected '\"' to start a key");
  EXPECT_EQ(ParseError(*parser, R"({"meta":[1,]})"), "invalid JSON at column 12: expected a value");
  EXPECT_EQ(ParseError(*parser, R"({"meta":tru})"), "invalid JSON at column 9: invalid literal");
}

TEST(JsonLinesParserTest, NestingIsBounded) {
  Schema schema({{"hr", FieldType::kInt}});
  auto parser = MakeParser("jsonl", schema);
  ASSERT_NE(parser, nullptr);
  auto nested = [](int depth) {
    return "{\"x\":" + std::string(depth, '[') + std::string(depth, ']') + ",\"hr\":3}";
  };
  Row row;
  ASSERT_EQ(Parse(*parser, nested(64), &row), "OK");
  EXPECT_EQ(row[0].i, 3);
  EXPECT_EQ(ParseError(*parser, nested(65)), "invalid JSON at column 70: nesting too deep");
  // Far deeper input fails the same way, without recursion.
  EXPECT_EQ(ParseError(*parser, "{\"x\":" + std::string(1000000, '[')),
            "invalid JSON at column 70: nesting too deep");
}

TEST(JsonLinesParserTest, StringEscapes) {
  Schema schema({{"s", FieldType::kString}});
  auto parser = MakeParser("jsonl", schema);
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, R"({"s":"q\"b\\s\/\b\f\n\r\t"})", &row), "OK");
  EXPECT_EQ(row[0].s, "q\"b\\s/\b\f\n\r\t");
  ASSERT_EQ(Parse(*parser, R"({"s":"caf\u00e9 \u00E9 \u20ac \ud83d\ude00 \u0000!"})", &row), "OK");
  EXPECT_EQ(row[0].s, std::string("caf\xC3\xA9 \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \0!", 20));
  ASSERT_EQ(Parse(*parser, "{\"s\":\"raw \xC3\xA9 \xF0\x9F\x98\x80\"}", &row), "OK");
  EXPECT_EQ(row[0].s, "raw \xC3\xA9 \xF0\x9F\x98\x80");
  // An escaped key names its field.
  ASSERT_EQ(Parse(*parser, R"({"\u0073":"by escaped key"})", &row), "OK");
  EXPECT_EQ(row[0].s, "by escaped key");

  EXPECT_EQ(ParseError(*parser, R"({"s":"\x"})"),
            "invalid JSON at column 8: invalid escape in string");
  EXPECT_EQ(ParseError(*parser, R"({"s":"\u12g4"})"),
            "invalid JSON at column 11: invalid hex digit in \\u escape");
  EXPECT_EQ(ParseError(*parser, R"({"s":"\u12)"), "invalid JSON at column 9: truncated \\u escape");
  EXPECT_EQ(ParseError(*parser, R"({"s":"\ud83d"})"),
            "invalid JSON at column 13: unpaired high surrogate in \\u escape");
  EXPECT_EQ(ParseError(*parser, R"({"s":"\ud83d\u0041"})"),
            "invalid JSON at column 19: unpaired high surrogate in \\u escape");
  EXPECT_EQ(ParseError(*parser, R"({"s":"\ude00"})"),
            "invalid JSON at column 13: unpaired low surrogate in \\u escape");
  EXPECT_EQ(ParseError(*parser, "{\"s\":\"tab\there\"}"),
            "invalid JSON at column 10: control character in string");
  EXPECT_EQ(ParseError(*parser, "{\"s\":\"bad \xC3\"}"),
            "invalid JSON at column 11: invalid UTF-8 in string");
  EXPECT_EQ(ParseError(*parser, "{\"s\":\"surrogate \xED\xA0\x80\"}"),
            "invalid JSON at column 17: invalid UTF-8 in string");
  EXPECT_EQ(ParseError(*parser, "{\"s\":\"overlong \xC0\xAF\"}"),
            "invalid JSON at column 16: invalid UTF-8 in string");
  EXPECT_EQ(ParseError(*parser, R"({"s":"open)"), "invalid JSON at column 11: unterminated string");
  EXPECT_EQ(ParseError(*parser, R"({"s":"open\)"),
            "invalid JSON at column 12: unterminated string");
}

TEST(JsonLinesParserTest, TypeErrors) {
  auto parser = MakeParser("jsonl", VitalsSchema());
  ASSERT_NE(parser, nullptr);
  EXPECT_EQ(ParseError(*parser, R"({"hr":"80"})"), "field 'hr': expected int, got string");
  EXPECT_EQ(ParseError(*parser, R"({"hr":1.5})"), "field 'hr': expected int, got '1.5'");
  EXPECT_EQ(ParseError(*parser, R"({"hr":true})"), "field 'hr': expected int, got bool");
  EXPECT_EQ(ParseError(*parser, R"({"hr":[80]})"), "field 'hr': expected int, got array");
  EXPECT_EQ(ParseError(*parser, R"({"hr":{}})"), "field 'hr': expected int, got object");
  EXPECT_EQ(ParseError(*parser, R"({"hr":9223372036854775808})"),
            "field 'hr': expected int, got '9223372036854775808' (out of range)");
  EXPECT_EQ(ParseError(*parser, R"({"hr":1e19})"),
            "field 'hr': expected int, got '1e19' (out of range)");
  EXPECT_EQ(ParseError(*parser, R"({"patient_id":7})"),
            "field 'patient_id': expected string, got number");
  EXPECT_EQ(ParseError(*parser, R"({"ok":1})"), "field 'ok': expected bool, got number");
  EXPECT_EQ(ParseError(*parser, R"({"spo2":"97"})"), "field 'spo2': expected double, got string");
  EXPECT_EQ(ParseError(*parser, R"({"spo2":1e400})"),
            "field 'spo2': expected double, got '1e400' (out of range)");
  EXPECT_EQ(ParseError(*parser, R"({"ts":"soon"})"), "field 'ts': expected timestamp, got 'soon'");
  EXPECT_EQ(ParseError(*parser, R"({"ts":1.5})"), "field 'ts': expected timestamp, got '1.5'");
  EXPECT_EQ(ParseError(*parser, R"({"ts":false})"), "field 'ts': expected timestamp, got bool");

  Row row;
  ASSERT_EQ(Parse(*parser, R"({"hr":80.0,"ts":1.7e12,"spo2":97})", &row), "OK");
  EXPECT_EQ(row[2].i, 80);
  EXPECT_EQ(row[1].i, 1700000000000);
  EXPECT_EQ(row[3].d, 97.0);
  ASSERT_EQ(Parse(*parser, R"({"hr":-9223372036854775808,"ts":"2023-11-14T22:13:20.123Z"})", &row),
            "OK");
  EXPECT_EQ(row[2].i, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(row[1].i, 1700000000123);
}

TEST(JsonLinesParserTest, SyntaxErrorsNameTheColumn) {
  auto parser = MakeParser("jsonl", VitalsSchema());
  ASSERT_NE(parser, nullptr);
  EXPECT_EQ(ParseError(*parser, R"({"hr":80 "ok":true})"),
            "invalid JSON at column 10: expected ',' or '}'");
  EXPECT_EQ(ParseError(*parser, R"({"hr":80,})"),
            "invalid JSON at column 10: expected '\"' to start a key");
  EXPECT_EQ(ParseError(*parser, R"({"hr" 80})"), "invalid JSON at column 7: expected ':'");
  EXPECT_EQ(ParseError(*parser, R"({"hr":})"), "invalid JSON at column 7: expected a value");
  EXPECT_EQ(ParseError(*parser, R"({"hr":01})"), "invalid JSON at column 8: expected ',' or '}'");
  EXPECT_EQ(ParseError(*parser, R"({"hr":-})"), "invalid JSON at column 8: invalid number");
  EXPECT_EQ(ParseError(*parser, R"({"spo2":1.})"),
            "invalid JSON at column 11: expected digit after '.'");
  EXPECT_EQ(ParseError(*parser, R"({"spo2":1e+})"),
            "invalid JSON at column 12: expected digit in exponent");
  EXPECT_EQ(ParseError(*parser, R"({"ok":nul})"), "invalid JSON at column 7: invalid literal");
  EXPECT_EQ(ParseError(*parser, R"({"hr":80} x)"),
            "invalid JSON at column 11: unexpected text after the object");
  EXPECT_EQ(ParseError(*parser, R"({"hr":80)"), "invalid JSON at column 9: expected ',' or '}'");
  EXPECT_EQ(ParseError(*parser, R"([{"hr":80}])"), "invalid JSON at column 1: expected '{'");
  EXPECT_EQ(ParseError(*parser, ""), "invalid JSON at column 1: expected '{'");
  EXPECT_EQ(ParseError(*parser, "   "), "invalid JSON at column 4: expected '{'");
  EXPECT_EQ(ParseError(*parser, "{'hr':80}"),
            "invalid JSON at column 2: expected '\"' to start a key");
  EXPECT_EQ(ParseError(*parser, std::string("{\"hr\":80}\0", 10)),
            "invalid JSON at column 10: unexpected text after the object");
}

TEST(JsonLinesParserTest, SkipsByteOrderMark) {
  Schema schema({{"hr", FieldType::kInt}});
  auto parser = MakeParser("jsonl", schema);
  ASSERT_NE(parser, nullptr);
  Row row;
  ASSERT_EQ(Parse(*parser, "\xEF\xBB\xBF{\"hr\":5}", &row), "OK");
  EXPECT_EQ(row[0].i, 5);
  EXPECT_EQ(ParseError(*parser, "\xEF\xBB{\"hr\":5}"), "invalid JSON at column 1: expected '{'");
}

// ----------------------------------------------------------------- writers

Row VitalsRow(std::string id, int64_t ts, int64_t hr, double spo2, bool ok) {
  Row row(5);
  row[0].SetString(id);
  row[1].SetInt(ts);
  row[2].SetInt(hr);
  row[3].SetDouble(spo2);
  row[4].SetBool(ok);
  return row;
}

TEST(CsvWriterTest, WritesHeaderAndQuotedFields) {
  auto writer = MakeWriter("csv", VitalsSchema());
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->Header(), "patient_id,ts,hr,spo2,ok\n");
  std::string out;
  writer->Write(VitalsRow("p1", 1704164645000, 80, 0.1, true), &out);
  writer->Write(VitalsRow("a,b", 0, -1, 1e300, false), &out);
  writer->Write(VitalsRow("say \"hi\"", -1, 0, -0.0, true), &out);
  writer->Write(VitalsRow("", 253402300800000, 0, std::nan(""), true), &out);
  writer->Write(VitalsRow("cr\r lf\n", 0, 0, -std::numeric_limits<double>::infinity(), true), &out);
  Row nulls(5);
  writer->Write(nulls, &out);
  EXPECT_EQ(out,
            "p1,2024-01-02T03:04:05.000Z,80,0.1,true\n"
            "\"a,b\",1970-01-01T00:00:00.000Z,-1,1e+300,false\n"
            "\"say \"\"hi\"\"\",1969-12-31T23:59:59.999Z,0,-0,true\n"
            "\"\",253402300800000,0,nan,true\n"
            "\"cr\r lf\n\",1970-01-01T00:00:00.000Z,0,-inf,true\n"
            ",,,,\n");
}

TEST(CsvWriterTest, QuotesHeaderNamesWhenNeeded) {
  auto writer = MakeWriter("csv", Schema({{"a,b", FieldType::kInt}, {"c", FieldType::kInt}}));
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->Header(), "\"a,b\",c\n");
}

TEST(JsonLinesWriterTest, WritesObjectsInSchemaOrder) {
  Schema schema({{"patient_id", FieldType::kString},
                 {"ts", FieldType::kTimestamp},
                 {"hr", FieldType::kInt},
                 {"x", FieldType::kDouble}});
  auto writer = MakeWriter("jsonl", schema);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->Header(), "");
  Row row(4);
  row[0].SetString("p1");
  row[1].SetInt(1704164645000);
  row[2].SetInt(80);
  std::string out;
  writer->Write(row, &out);
  EXPECT_EQ(out, R"({"patient_id":"p1","ts":"2024-01-02T03:04:05.000Z","hr":80,"x":null})"
                 "\n");

  out.clear();
  static constexpr char kNasty[] =
      "q\" b\\ \b\f\n\r\t \x01\x1f\x7f \0 \xC3\xA9 \xFF \xED\xA0\x80 /";
  row[0].SetString(std::string_view(kNasty, sizeof(kNasty) - 1));
  row[1].SetInt(-62167219200001);  // before year 0000: no ISO form
  row[2].SetInt(std::numeric_limits<int64_t>::min());
  row[3].SetDouble(std::numeric_limits<double>::infinity());
  writer->Write(row, &out);
  EXPECT_EQ(
      out,
      "{\"patient_id\":\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001\\u001f\x7f \\u0000 \xC3\xA9 \\ufffd "
      "\\ufffd\\ufffd\\ufffd /\",\"ts\":-62167219200001,\"hr\":-9223372036854775808,\"x\":null}\n");

  out.clear();
  row[3].SetDouble(std::nan(""));
  row[1].SetInt(-62167219200000);
  writer->Write(row, &out);
  EXPECT_NE(out.find("\"ts\":\"0000-01-01T00:00:00.000Z\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"x\":null}"), std::string::npos) << out;

  auto empty = MakeWriter("jsonl", Schema());
  ASSERT_NE(empty, nullptr);
  out.clear();
  empty->Write(Row(), &out);
  EXPECT_EQ(out, "{}\n");
}

TEST(JsonLinesWriterTest, EscapesKeys) {
  auto writer = MakeWriter("jsonl", Schema({{"a\"b", FieldType::kBool}, {"c", FieldType::kBool}}));
  ASSERT_NE(writer, nullptr);
  Row row(2);
  row[0].SetBool(true);
  row[1].SetBool(false);
  std::string out;
  writer->Write(row, &out);
  EXPECT_EQ(out, "{\"a\\\"b\":true,\"c\":false}\n");
}

// ----------------------------------------------------------------- round trips

class RandomRows {
 public:
  explicit RandomRows(uint64_t seed) : rng_(seed) {}

  // finite_doubles: JSON writes non-finite doubles as null.
  void Fill(const Schema& schema, bool finite_doubles, Row* row) {
    row->resize(schema.size());
    for (size_t f = 0; f < schema.size(); ++f) {
      Datum& d = (*row)[f];
      if (Uniform(7) == 0) {
        d.SetNull();
        continue;
      }
      switch (schema.field(f).type) {
        case FieldType::kInt: d.SetInt(Int()); break;
        case FieldType::kDouble: d.SetDouble(Double(finite_doubles)); break;
        case FieldType::kString: d.SetString(String()); break;
        case FieldType::kBool: d.SetBool(Uniform(2) == 1); break;
        case FieldType::kTimestamp: d.SetInt(Timestamp()); break;
      }
    }
  }

  uint64_t Uniform(uint64_t n) { return rng_() % n; }
  std::mt19937_64& rng() { return rng_; }

 private:
  int64_t Int() {
    switch (Uniform(4)) {
      case 0: return static_cast<int64_t>(Uniform(200)) - 100;
      case 1: return std::numeric_limits<int64_t>::min() + static_cast<int64_t>(Uniform(3));
      case 2: return std::numeric_limits<int64_t>::max() - static_cast<int64_t>(Uniform(3));
      default: return static_cast<int64_t>(rng_());
    }
  }

  double Double(bool finite) {
    static const double kSpecial[] = {
        0.0,  -0.0,    0.1, 1e-320, 2.2250738585072014e-308, std::numeric_limits<double>::max(),
        1e22, -123.456};
    if (!finite && Uniform(10) == 0) {
      static const double kNonFinite[] = {std::numeric_limits<double>::infinity(),
                                          -std::numeric_limits<double>::infinity(),
                                          std::numeric_limits<double>::quiet_NaN()};
      return kNonFinite[Uniform(3)];
    }
    if (Uniform(4) == 0) return kSpecial[Uniform(std::size(kSpecial))];
    while (true) {
      uint64_t bits = rng_();
      double d;
      std::memcpy(&d, &bits, sizeof(d));
      if (std::isfinite(d)) return d;
    }
  }

  std::string String() {
    static const char* kPieces[] = {
        "a",  "Z",     "0",    " ", ",",        "\"",           "\\",
        "'",  "{",     "}",    "[", ":",        "\t",           "\n",
        "\r", "\x01",  "\x1f", "/", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
        "u",  "\\u00", "null"};
    std::string s;
    const uint64_t n = Uniform(12);
    for (uint64_t i = 0; i < n; ++i) s += kPieces[Uniform(std::size(kPieces))];
    return s;
  }

  int64_t Timestamp() {
    switch (Uniform(4)) {
      case 0: return static_cast<int64_t>(Uniform(253402300800000));  // ISO years
      case 1: return -static_cast<int64_t>(Uniform(62167219200000));
      case 2: return 1700000000000 + static_cast<int64_t>(Uniform(1000000));
      // Beyond year 9999 (written as epoch millis; ParseTimestamp reads <= 18 digits).
      default: return (Uniform(2) ? 1 : -1) * static_cast<int64_t>(Uniform(999999999999999999));
    }
  }

  std::mt19937_64 rng_;
};

Schema WideSchema() {
  return Schema({{"s1", FieldType::kString},
                 {"i", FieldType::kInt},
                 {"d", FieldType::kDouble},
                 {"b", FieldType::kBool},
                 {"t", FieldType::kTimestamp},
                 {"s2", FieldType::kString}});
}

void CheckRoundTrip(std::string_view format, bool finite_doubles) {
  const Schema schema = WideSchema();
  auto writer = MakeWriter(format, schema);
  ASSERT_NE(writer, nullptr);
  std::string header = writer->Header();
  if (!header.empty()) header.pop_back();
  auto parser = MakeParser(format, schema, header);
  ASSERT_NE(parser, nullptr);
  RandomRows random(42);
  Row in, out;
  std::string line;
  for (int n = 0; n < 20000; ++n) {
    random.Fill(schema, finite_doubles, &in);
    line.clear();
    writer->Write(in, &line);
    ASSERT_FALSE(line.empty());
    ASSERT_EQ(line.back(), '\n');
    line.pop_back();
    ASSERT_EQ(Parse(*parser, line, &out), "OK") << line;
    ASSERT_EQ(Describe(schema, out), Describe(schema, in)) << line;
  }
}

TEST(RecordFormatTest, CsvRoundTrip) { CheckRoundTrip("csv", /*finite_doubles=*/false); }

TEST(RecordFormatTest, JsonLinesRoundTrip) { CheckRoundTrip("jsonl", /*finite_doubles=*/true); }

TEST(RecordFormatTest, WarmParseAndWriteDoNotAllocate) {
  const Schema schema = VitalsSchema();
  auto csv_parser = MakeParser("csv", schema);
  auto json_parser = MakeParser("jsonl", schema);
  auto csv_writer = MakeWriter("csv", schema);
  auto json_writer = MakeWriter("jsonl", schema);
  ASSERT_TRUE(csv_parser && json_parser && csv_writer && json_writer);
  const std::string csv_line =
      R"("patient ""seven"", long name",2024-01-02T03:04:05.123Z,80,97.25,true)";
  const std::string json_line =
      R"({"patient_id":"p\u00e9\"seven\" long name","meta":{"a":[1,"x\n"]},"ts":"2024-01-02T03:04:05.123Z",)"
      R"("hr":8e1,"spo2":97.25,"ok":true})";
  Row row;
  std::string out;
  auto run = [&] {
    EXPECT_TRUE(csv_parser->ParseLine(csv_line, &row).ok());
    out.clear();
    csv_writer->Write(row, &out);
    json_writer->Write(row, &out);
    EXPECT_TRUE(json_parser->ParseLine(json_line, &row).ok());
    out.clear();
    csv_writer->Write(row, &out);
    json_writer->Write(row, &out);
  };
  run();  // warm up: buffers grow to size
  const int64_t before = g_allocations.load();
  for (int i = 0; i < 100; ++i) run();
  EXPECT_EQ(g_allocations.load() - before, 0);
  EXPECT_EQ(row[0].s, "p\xC3\xA9\"seven\" long name");
  EXPECT_EQ(row[2].i, 80);
}

// ----------------------------------------------------------------- robustness

// Random bytes and mutations of valid lines through both parsers: every
// result is OK or InvalidArgument with a short message, and any line that
// parses writes back to a line that parses to the same row.
TEST(RecordFormatTest, FuzzedLinesNeverCrash) {
  const Schema schema = WideSchema();
  auto csv_writer = MakeWriter("csv", schema);
  auto json_writer = MakeWriter("jsonl", schema);
  ASSERT_TRUE(csv_writer && json_writer);
  std::string header = csv_writer->Header();
  header.pop_back();
  auto csv_parser = MakeParser("csv", schema, header);
  auto json_parser = MakeParser("jsonl", schema);
  ASSERT_TRUE(csv_parser && json_parser);
  struct Target {
    RecordParser* parser;
    RecordWriter* writer;
    int ok = 0;
    int errors = 0;
  };
  Target targets[] = {{csv_parser.get(), csv_writer.get()}, {json_parser.get(), json_writer.get()}};

  const std::vector<std::string> seeds = {
      R"({"s1":"a\u00e9\ud83d\ude00","x":{"y":[1,2,{"z":null}],"w":"\"}"},"i":-12,"d":1.5e-3,"b":true})",
      R"({"t":"2024-01-02T03:04:05.123+01:00","s2":"","b":false,"i":80.0,"d":-0})",
      R"("a,""b""",12,3.5,true,2024-01-02 03:04:05,"x")",
      R"(,,,,,)",
      R"("",+5, nan ,FALSE,1700000000000,"q""")",
  };
  static const char kInteresting[] =
      "\"{}[],:\\u0123456789eE.-+ntfr \t\r\n\xFF\xED\xA0\xC3\xEF\xBB\xBF";
  RandomRows random(7);
  auto& rng = random.rng();
  Row valid, parsed, reparsed;
  std::string line, rewritten;
  for (int iter = 0; iter < 100000; ++iter) {
    line.clear();
    const uint64_t kind = random.Uniform(10);
    if (kind == 0) {
      const uint64_t n = random.Uniform(64);
      for (uint64_t i = 0; i < n; ++i) line.push_back(static_cast<char>(rng()));
    } else {
      if (kind < 4) {
        line = seeds[random.Uniform(seeds.size())];
      } else {
        random.Fill(schema, /*finite_doubles=*/false, &valid);
        (kind < 7 ? csv_writer : json_writer)->Write(valid, &line);
        line.pop_back();
      }
      const uint64_t mutations = 1 + random.Uniform(4);
      for (uint64_t m = 0; m < mutations; ++m) {
        const size_t pos = line.empty() ? 0 : random.Uniform(line.size());
        const char c = random.Uniform(3) == 0
                           ? static_cast<char>(rng())
                           : kInteresting[random.Uniform(sizeof(kInteresting) - 1)];
        switch (random.Uniform(5)) {
          case 0:
            if (!line.empty()) line[pos] = c;
            break;
          case 1: line.insert(line.begin() + pos, c); break;
          case 2:
            if (!line.empty()) line.erase(pos, 1 + random.Uniform(4));
            break;
          case 3: line.resize(pos); break;
          default: line.insert(pos, line.substr(pos, random.Uniform(8))); break;
        }
      }
    }
    for (Target& t : targets) {
      absl::Status s = t.parser->ParseLine(line, &parsed);
      if (!s.ok()) {
        ++t.errors;
        ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
        ASSERT_FALSE(s.message().empty());
        ASSERT_LE(s.message().size(), 120u) << s;
        continue;
      }
      ++t.ok;
      ASSERT_EQ(parsed.size(), schema.size());
      rewritten.clear();
      t.writer->Write(parsed, &rewritten);
      rewritten.pop_back();
      absl::Status again = t.parser->ParseLine(rewritten, &reparsed);
      ASSERT_TRUE(again.ok()) << again << "\nline: " << line << "\nrewritten: " << rewritten;
      ASSERT_EQ(Describe(schema, reparsed), Describe(schema, parsed)) << line;
    }
  }
  for (const Target& t : targets) {
    EXPECT_GT(t.ok, 1000);
    EXPECT_GT(t.errors, 1000);
  }
}

}  // namespace
}  // namespace vstream
