#include "runtime/expr/expression.h"

#include <cstdlib>
#include <iostream>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/types.h"

// Counts heap allocations of the current thread, to check that Eval does not
// allocate on the per-record path.
namespace {
thread_local long g_allocations = 0;
}  // namespace

void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// GCC cannot see that these pair with the operator new above.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace vstream {
namespace {

// Field indexes of TestSchema().
enum : size_t {
  kPatientId, kTs, kHr, kSpo2, kTachycardic, kFlag, kName, kNote,
  kMissing, kMissingD, kMissingS, kMissingB, kOddName, kEnd, kNumFields,
};

Schema TestSchema() {
  return Schema({{"patient_id", FieldType::kString},
                 {"ts", FieldType::kTimestamp},
                 {"hr", FieldType::kInt},
                 {"spo2", FieldType::kDouble},
                 {"tachycardic", FieldType::kBool},
                 {"flag", FieldType::kBool},
                 {"name", FieldType::kString},
                 {"note", FieldType::kString},
                 {"missing", FieldType::kInt},
                 {"missing_d", FieldType::kDouble},
                 {"missing_s", FieldType::kString},
                 {"missing_b", FieldType::kBool},
                 {"odd name", FieldType::kInt},
                 {"end", FieldType::kInt}});
}

// hr 80, spo2 97.5, not tachycardic, flag set, name 'Ann'; missing* are NULL.
Row TestRow() {
  Row row(kNumFields);
  row[kPatientId].SetString("p1");
  row[kTs].SetInt(1700000000000);  // 2023-11-14T22:13:20.000Z
  row[kHr].SetInt(80);
  row[kSpo2].SetDouble(97.5);
  row[kTachycardic].SetBool(false);
  row[kFlag].SetBool(true);
  row[kName].SetString("Ann");
  row[kNote].SetString("  Hello World  ");
  row[kOddName].SetInt(7);
  row[kEnd].SetInt(3);
  return row;
}

// "<type> <value>", e.g. "int 3", "string abc", "double null".
std::string Show(std::string_view text, const Row& row = TestRow()) {
  size_t offset = 0;
  auto expr = Expression::Compile(text, TestSchema(), &offset);
  if (!expr.ok()) return absl::StrCat("error at ", offset, ": ", expr.status().message());
  Datum d;
  expr->Eval(row, &d);
  return absl::StrCat(FieldTypeName(expr->type()), " ", DatumToString(d, expr->type()));
}

struct EvalCase {
  const char* text;
  const char* want;
};

void ExpectAll(const std::vector<EvalCase>& cases) {
  for (const EvalCase& c : cases) EXPECT_EQ(Show(c.text), c.want) << "expression: " << c.text;
}

struct ErrorCase {
  const char* text;
  const char* message;  // a substring of the message
  size_t offset;
};

void ExpectErrors(const std::vector<ErrorCase>& cases, const Schema& schema = TestSchema()) {
  for (const ErrorCase& c : cases) {
    size_t offset = 12345;
    auto expr = Expression::Compile(c.text, schema, &offset);
    ASSERT_FALSE(expr.ok()) << "expression: " << c.text;
    EXPECT_EQ(expr.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(expr.status().message().find(c.message), std::string::npos)
        << "expression: " << c.text << "\n  message: " << expr.status().message() << "\n  wanted: " << c.message;
    EXPECT_EQ(offset, c.offset) << "expression: " << c.text << ": " << expr.status().message();
  }
}

TEST(ExpressionTest, SpecExamples) {
  auto filter = Expression::Compile("hr > 0 AND spo2 BETWEEN 50 AND 100", TestSchema());
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_EQ(filter->type(), FieldType::kBool);
  EXPECT_EQ(filter->text(), "hr > 0 AND spo2 BETWEEN 50 AND 100");
  Row row = TestRow();
  EXPECT_TRUE(filter->EvalPredicate(row));
  row[kSpo2].SetDouble(49.9);
  EXPECT_FALSE(filter->EvalPredicate(row));
  row[kSpo2].SetNull();
  EXPECT_FALSE(filter->EvalPredicate(row));

  auto alert = Expression::Compile("hr > 100", TestSchema());
  ASSERT_TRUE(alert.ok()) << alert.status();
  row = TestRow();
  EXPECT_FALSE(alert->EvalPredicate(row));
  row[kHr].SetInt(101);
  EXPECT_TRUE(alert->EvalPredicate(row));

  auto flag = Expression::Compile("CASE WHEN tachycardic THEN 1 ELSE 0 END", TestSchema());
  ASSERT_TRUE(flag.ok()) << flag.status();
  EXPECT_EQ(flag->type(), FieldType::kInt);
  Datum d;
  row = TestRow();
  flag->Eval(row, &d);
  EXPECT_FALSE(d.is_null);
  EXPECT_EQ(d.i, 0);
  row[kTachycardic].SetBool(true);
  flag->Eval(row, &d);
  EXPECT_EQ(d.i, 1);
  row[kTachycardic].SetNull();
  flag->Eval(row, &d);
  EXPECT_EQ(d.i, 0);
}

TEST(ExpressionTest, NowIsTheWallClockAtEvaluation) {
  auto now = Expression::Compile("now() - ts", TestSchema());
  ASSERT_TRUE(now.ok()) << now.status();
  Row row = TestRow();
  const int64_t before = NowMillis();
  Datum d;
  auto at = Expression::Compile("now()", TestSchema());
  ASSERT_TRUE(at.ok()) << at.status();
  EXPECT_EQ(at->type(), FieldType::kTimestamp);
  at->Eval(row, &d);
  EXPECT_GE(d.i, before);
  EXPECT_LE(d.i, NowMillis());
  ExpectErrors({{"now(1)", "now() takes 0 arguments, got 1", 0}});
}

TEST(ExpressionTest, Literals) {
  ExpectAll({
      {"42", "int 42"},
      {"3.5", "double 3.5"},
      {".5", "double 0.5"},
      {"1.", "double 1"},
      {"1e3", "double 1000"},
      {"2.5E-1", "double 0.25"},
      {"'text'", "string text"},
      {"'it''s'", "string it's"},
      {"''", "string "},
      {"TRUE", "bool true"},
      {"false", "bool false"},
      {"NULL", "int null"},
      {"-9223372036854775808", "int -9223372036854775808"},
      {"9223372036854775807", "int 9223372036854775807"},
  });
}

TEST(ExpressionTest, FieldReferences) {
  ExpectAll({
      {"hr", "int 80"},
      {"spo2", "double 97.5"},
      {"name", "string Ann"},
      {"flag", "bool true"},
      {"ts", "timestamp 2023-11-14T22:13:20.000Z"},
      {"missing", "int null"},
      {"missing_s", "string null"},
      {"`odd name` + 1", "int 8"},
      {"`end` * 2", "int 6"},
      {"`hr`", "int 80"},
  });
}

TEST(ExpressionTest, ListsTheFieldsItReadsOnceEachInSchemaOrder) {
  const Schema& schema = TestSchema();
  auto fields_of = [&](const char* text) {
    auto expr = Expression::Compile(text, schema);
    EXPECT_TRUE(expr.ok()) << text << ": " << expr.status();
    std::vector<std::string> names;
    if (expr.ok()) {
      for (int f : expr->fields()) names.push_back(schema.field(f).name);
    }
    return names;
  };
  EXPECT_THAT(fields_of("spo2 * 2 + hr - hr"), ::testing::ElementsAre("hr", "spo2"));
  EXPECT_THAT(fields_of("CASE WHEN flag THEN length(name) ELSE 0 END"), ::testing::ElementsAre("flag", "name"));
  EXPECT_THAT(fields_of("1 + 2"), ::testing::IsEmpty());
}

TEST(ExpressionTest, Arithmetic) {
  ExpectAll({
      {"hr + 1", "int 81"},
      {"hr - 100", "int -20"},
      {"hr * 2", "int 160"},
      {"hr / 3", "int 26"},
      {"hr % 7", "int 3"},
      {"-hr", "int -80"},
      {"+hr", "int 80"},
      {"- -hr", "int 80"},
      {"-7 / 2", "int -3"},
      {"-7 % 2", "int -1"},
      {"hr / 0", "int null"},
      {"hr % 0", "int null"},
      {"hr / missing", "int null"},
      {"hr + spo2", "double 177.5"},
      {"hr / 2.0", "double 40"},
      {"spo2 - hr", "double 17.5"},
      {"spo2 * 2", "double 195"},
      {"spo2 / 0", "double null"},
      {"spo2 % 10", "double 7.5"},
      {"spo2 % 0", "double null"},
      {"-spo2", "double -97.5"},
      {"hr + NULL", "int null"},
      {"spo2 + NULL", "double null"},
      {"NULL + NULL", "int null"},
      {"missing * 2", "int null"},
      {"missing_d + hr", "double null"},
      {"2 + 3 * 4", "int 14"},
      {"(2 + 3) * 4", "int 20"},
      {"10 - 4 - 3", "int 3"},
      {"100 / 10 / 5", "int 2"},
      {"-2 * 3", "int -6"},
      {"2 - -3", "int 5"},
      {"hr - -hr", "int 160"},
      {"9223372036854775807 + hr - 80 + 1", "int -9223372036854775808"},  // wraps
      {"-9223372036854775808 / -1", "int -9223372036854775808"},
      {"-9223372036854775808 % -1", "int 0"},
  });
}

TEST(ExpressionTest, TimestampArithmetic) {
  ExpectAll({
      {"ts + 1000", "timestamp 2023-11-14T22:13:21.000Z"},
      {"1000 + ts", "timestamp 2023-11-14T22:13:21.000Z"},
      {"ts - 60000", "timestamp 2023-11-14T22:12:20.000Z"},
      {"ts - ts", "int 0"},
      {"ts - (ts - 5)", "int 5"},
      {"ts + missing", "timestamp null"},
      {"ts + NULL", "timestamp null"},
  });
}

TEST(ExpressionTest, Comparisons) {
  ExpectAll({
      {"hr = 80", "bool true"},
      {"hr == 80", "bool true"},
      {"hr != 80", "bool false"},
      {"hr <> 81", "bool true"},
      {"hr < 81", "bool true"},
      {"hr < 80", "bool false"},
      {"hr <= 80", "bool true"},
      {"hr > 80", "bool false"},
      {"hr >= 80", "bool true"},
      {"hr = 80.0", "bool true"},
      {"spo2 > hr", "bool true"},
      {"spo2 <= 97.5", "bool true"},
      {"name = 'Ann'", "bool true"},
      {"name < 'Bob'", "bool true"},
      {"name >= 'ann'", "bool false"},  // bytewise: 'A' < 'a'
      {"name != patient_id", "bool true"},
      {"name = NULL", "bool null"},
      {"NULL = NULL", "bool null"},
      {"missing = 1", "bool null"},
      {"missing_s = name", "bool null"},
      {"tachycardic = FALSE", "bool true"},
      {"flag > tachycardic", "bool true"},
      {"ts > 1699999999999", "bool true"},
      {"1700000000000 = ts", "bool true"},
      {"ts = '2023-11-14T22:13:20Z'", "bool true"},
      {"ts > '2023-11-14'", "bool true"},
      {"ts < ts + 1", "bool true"},
      {"hr > 0 = TRUE", "bool true"},
  });
}

TEST(ExpressionTest, ThreeValuedLogic) {
  // flag is TRUE, tachycardic FALSE, missing_b NULL: fields, so nothing folds.
  ExpectAll({
      {"flag AND flag", "bool true"},
      {"flag AND tachycardic", "bool false"},
      {"flag AND missing_b", "bool null"},
      {"tachycardic AND missing_b", "bool false"},
      {"missing_b AND tachycardic", "bool false"},
      {"missing_b AND missing_b", "bool null"},
      {"flag OR missing_b", "bool true"},
      {"missing_b OR flag", "bool true"},
      {"tachycardic OR missing_b", "bool null"},
      {"tachycardic OR tachycardic", "bool false"},
      {"missing_b OR missing_b", "bool null"},
      {"NOT flag", "bool false"},
      {"NOT tachycardic", "bool true"},
      {"NOT missing_b", "bool null"},
      {"NOT NOT flag", "bool true"},
      {"flag AND flag AND flag AND tachycardic", "bool false"},
      {"tachycardic OR tachycardic OR missing_b OR flag", "bool true"},
      // The same with literals, which fold at compile time.
      {"TRUE AND NULL", "bool null"},
      {"FALSE AND NULL", "bool false"},
      {"TRUE OR NULL", "bool true"},
      {"FALSE OR NULL", "bool null"},
      {"NOT NULL", "bool null"},
      // Precedence: NOT > AND > OR.
      {"flag OR flag AND tachycardic", "bool true"},
      {"(flag OR flag) AND tachycardic", "bool false"},
      {"NOT tachycardic AND flag", "bool true"},
      {"NOT hr = 80", "bool false"},
  });
}

TEST(ExpressionTest, Precedence) {
  ExpectAll({
      {"1 + 2 * 3 - 4 / 2", "int 5"},
      {"2 * 3 % 4", "int 2"},
      {"-2 * -3", "int 6"},
      {"hr + 1 = 81 AND 'x' || 'y' = 'xy'", "bool true"},
      {"'n=' || hr + 1", "string n=81"},
      {"hr > 1 = flag", "bool true"},
      {"NOT flag OR flag", "bool true"},
      {"NOT (flag OR flag)", "bool false"},
      {"flag AND NOT tachycardic AND hr BETWEEN 1 AND 100 OR tachycardic", "bool true"},
      {"tachycardic AND flag OR flag", "bool true"},
      {"tachycardic AND (flag OR flag)", "bool false"},
      {"missing IS NULL = TRUE", "bool true"},
      {"NOT hr IN (1, 2)", "bool true"},
      {"hr BETWEEN 1 AND 2 OR hr BETWEEN 3 + 4 AND 100", "bool true"},
  });
}

TEST(ExpressionTest, Between) {
  ExpectAll({
      {"hr BETWEEN 60 AND 100", "bool true"},
      {"hr BETWEEN 80 AND 80", "bool true"},
      {"hr BETWEEN 81 AND 100", "bool false"},
      {"hr NOT BETWEEN 60 AND 100", "bool false"},
      {"hr NOT BETWEEN 81 AND 100", "bool true"},
      {"hr BETWEEN NULL AND 70", "bool false"},
      {"hr BETWEEN NULL AND 100", "bool null"},
      {"hr BETWEEN missing AND 100", "bool null"},
      {"missing BETWEEN 1 AND 2", "bool null"},
      {"spo2 BETWEEN 90 AND 100", "bool true"},
      {"hr BETWEEN 79.5 AND 80.5", "bool true"},
      {"name BETWEEN 'A' AND 'B'", "bool true"},
      {"ts BETWEEN '2023-01-01' AND '2024-01-01'", "bool true"},
      {"hr BETWEEN 60 AND 100 AND flag", "bool true"},
      {"hr BETWEEN 50 + 10 AND 200 / 2", "bool true"},
  });
}

TEST(ExpressionTest, In) {
  ExpectAll({
      {"hr IN (70, 80, 90)", "bool true"},
      {"hr IN (70, 90)", "bool false"},
      {"hr NOT IN (70, 90)", "bool true"},
      {"hr NOT IN (80)", "bool false"},
      {"hr IN (70, NULL)", "bool null"},
      {"hr IN (80, NULL)", "bool true"},
      {"hr NOT IN (70, NULL)", "bool null"},
      {"hr IN (missing, 80)", "bool true"},
      {"missing IN (1, 2)", "bool null"},
      {"name IN ('Bob', 'Ann')", "bool true"},
      {"name IN ('Bob', missing_s)", "bool null"},
      {"spo2 IN (97.5, 1)", "bool true"},
      {"hr IN (80.0)", "bool true"},
      {"hr IN (hr + 1, hr)", "bool true"},
      {"ts IN ('2023-11-14T22:13:20.000Z')", "bool true"},
  });
}

TEST(ExpressionTest, IsNull) {
  ExpectAll({
      {"missing IS NULL", "bool true"},
      {"missing IS NOT NULL", "bool false"},
      {"hr IS NULL", "bool false"},
      {"hr is not null", "bool true"},
      {"missing_s IS NULL", "bool true"},
      {"name IS NULL", "bool false"},
      {"missing_b IS NULL", "bool true"},
      {"NULL IS NULL", "bool true"},
      {"hr / 0 IS NULL", "bool true"},
      {"missing + 1 IS NULL AND flag", "bool true"},
  });
}

TEST(ExpressionTest, Case) {
  ExpectAll({
      {"CASE WHEN hr > 100 THEN 'high' WHEN hr > 60 THEN 'normal' ELSE 'low' END", "string normal"},
      {"CASE WHEN hr > 100 THEN 'high' END", "string null"},
      {"CASE WHEN hr > 100 THEN 1 END", "int null"},
      {"CASE WHEN hr > 0 THEN 1 ELSE 2.5 END", "double 1"},
      {"CASE WHEN missing_b THEN 1 ELSE 2 END", "int 2"},
      {"CASE WHEN flag THEN NULL ELSE 'x' END", "string null"},
      {"CASE WHEN tachycardic THEN NULL ELSE 'x' END", "string x"},
      {"CASE WHEN NULL THEN 1 ELSE 2 END", "int 2"},
      {"CASE WHEN flag THEN NULL END", "int null"},
      {"case when flag then ts end", "timestamp 2023-11-14T22:13:20.000Z"},
      {"CASE WHEN flag THEN CASE WHEN tachycardic THEN 1 ELSE 2 END ELSE 3 END", "int 2"},
      {"CASE WHEN flag THEN name ELSE patient_id END || '!'", "string Ann!"},
  });
}

TEST(ExpressionTest, StringConcatenation) {
  ExpectAll({
      {"name || '-' || patient_id", "string Ann-p1"},
      {"'hr=' || hr", "string hr=80"},
      {"hr || ' bpm'", "string 80 bpm"},
      {"'spo2=' || spo2", "string spo2=97.5"},
      {"'flag=' || flag", "string flag=true"},
      {"'at ' || ts", "string at 2023-11-14T22:13:20.000Z"},
      {"'a' || NULL", "string null"},
      {"name || missing_s", "string null"},
      {"name || missing", "string null"},
      {"'a' || 1 + 2", "string a3"},  // || binds looser than +
      {"1 + 2 || 'a'", "string 3a"},
  });
}

TEST(ExpressionTest, MathFunctions) {
  ExpectAll({
      {"abs(-3)", "int 3"},
      {"abs(hr - 100)", "int 20"},
      {"abs(-2.5)", "double 2.5"},
      {"abs(-spo2)", "double 97.5"},
      {"abs(missing)", "int null"},
      {"round(spo2)", "double 98"},
      {"round(-spo2)", "double -98"},
      {"round(3.14159, 2)", "double 3.14"},
      {"round(spo2, -1)", "double 100"},
      {"round(hr)", "int 80"},
      {"round(hr, 1)", "int 80"},
      {"round(1250, -2)", "int 1300"},
      {"round(-1250, -2)", "int -1300"},
      {"round(1249, -2)", "int 1200"},
      {"round(hr + 5, -1)", "int 90"},
      {"round(spo2, missing)", "double null"},
      {"floor(spo2)", "double 97"},
      {"floor(-1.5)", "double -2"},
      {"ceil(spo2)", "double 98"},
      {"ceil(-1.5)", "double -1"},
      {"floor(hr)", "int 80"},
      {"ceil(hr / 3)", "int 26"},
      {"sqrt(16)", "double 4"},
      {"sqrt(hr - 16)", "double 8"},
      {"sqrt(-1)", "double null"},
      {"pow(2, 10)", "double 1024"},
      {"pow(spo2, 0)", "double 1"},
      {"pow(-8, 1.0 / 3)", "double null"},
      {"ln(1)", "double 0"},
      {"ln(0)", "double null"},
      {"ln(hr - 80)", "double null"},
      {"log10(1000)", "double 3"},
      {"log10(-1)", "double null"},
      {"exp(0)", "double 1"},
      {"exp(hr - 80)", "double 1"},
      {"least(3, 1, 2)", "int 1"},
      {"greatest(hr, 90, 85)", "int 90"},
      {"least(hr, spo2)", "double 80"},
      {"greatest(hr, spo2)", "double 97.5"},
      {"greatest(NULL, 2)", "int 2"},
      {"least(missing, hr)", "int 80"},
      {"least(missing, missing)", "int null"},
      {"least(NULL)", "int null"},
      {"greatest(name, 'Zed')", "string Zed"},
      {"least(name, 'Bob', missing_s)", "string Ann"},
      {"least(ts, ts + 1)", "timestamp 2023-11-14T22:13:20.000Z"},
  });
}

TEST(ExpressionTest, StringFunctions) {
  ExpectAll({
      {"lower(name)", "string ann"},
      {"upper(name)", "string ANN"},
      {"upper(name || note)", "string ANN  HELLO WORLD  "},
      {"lower(missing_s)", "string null"},
      {"length(name)", "int 3"},
      {"length('h\xC3\xA9llo')", "int 5"},  // characters, not bytes
      {"length('')", "int 0"},
      {"length(missing_s)", "int null"},
      {"trim(note)", "string Hello World"},
      {"length(trim(note))", "int 11"},
      {"trim('   ')", "string "},
      {"substr('hello', 2)", "string ello"},
      {"substr('hello', 2, 3)", "string ell"},
      {"substr('hello', 0, 3)", "string he"},
      {"substr('hello', -5, 3)", "string "},
      {"substr('hello', 10)", "string "},
      {"substr('hello', 1, 0)", "string "},
      {"substr('hello', 2, -1)", "string null"},
      {"substr('h\xC3\xA9llo', 2, 2)", "string \xC3\xA9l"},
      {"substr(name, 2)", "string nn"},
      {"substr(trim(note), 7, 5)", "string World"},
      {"substr(name, missing)", "string null"},
      {"concat('a', 1, NULL, TRUE, 2.5)", "string a1true2.5"},
      {"concat(name, ':', hr, missing_s)", "string Ann:80"},
      {"concat(missing_s)", "string "},
      {"concat(hr)", "string 80"},
      {"result_id('a')", "string d80d0daea7dbdd7f"},
      {"result_id(name, hr)", "string 989d404bb04426cf"},
      {"result_id('Ann', '80')", "string 989d404bb04426cf"},
      {"result_id('ab', 'c')", "string 6f7c37fe7f9f3b56"},
      {"result_id('a', 'bc')", "string a49db729a8992b5a"},
      {"result_id(missing_s)", "string ac3fdc08a1c002aa"},
      {"coalesce(missing, hr)", "int 80"},
      {"coalesce(missing, 1.5)", "double 1.5"},
      {"coalesce(missing_s, name)", "string Ann"},
      {"coalesce(missing_s, missing_s)", "string null"},
      {"coalesce(NULL, NULL)", "int null"},
      {"if(hr > 60, 'ok', 'low')", "string ok"},
      {"if(hr > 90, 'ok', 'low')", "string low"},
      {"if(missing_b, 1, 2)", "int 2"},
      {"if(flag, 1, 2.5)", "double 1"},
      {"IF(flag, NULL, 2)", "int null"},
  });
}

TEST(ExpressionTest, KeywordsAndFunctionNamesAreCaseInsensitive) {
  ExpectAll({
      {"ROUND(spo2)", "double 98"},
      {"Lower(name)", "string ann"},
      {"hr between 1 and 100 and not tachycardic", "bool true"},
      {"hr Not In (1, 2) oR fAlSe", "bool true"},
      {"Case When flag Then 1 Else 0 End", "int 1"},
      {"missing iS nOt NuLl", "bool false"},
  });
}

TEST(ExpressionTest, ResultTypes) {
  const std::vector<std::pair<const char*, FieldType>> cases = {
      {"hr + 1", FieldType::kInt},          {"hr + 1.0", FieldType::kDouble},
      {"name || 'x'", FieldType::kString},  {"hr > 1", FieldType::kBool},
      {"ts + 1", FieldType::kTimestamp},    {"ts - ts", FieldType::kInt},
      {"NULL", FieldType::kInt},            {"sqrt(hr)", FieldType::kDouble},
      {"length(name)", FieldType::kInt},    {"coalesce(missing, 2.0)", FieldType::kDouble},
  };
  for (const auto& [text, type] : cases) {
    auto expr = Expression::Compile(text, TestSchema());
    ASSERT_TRUE(expr.ok()) << text << ": " << expr.status();
    EXPECT_EQ(expr->type(), type) << text;
  }
}

TEST(ExpressionTest, CompileErrorsNameTheProblemAndItsOffset) {
  ExpectErrors({{"hrr > 1", "unknown field 'hrr', expected one of patient_id, ts, hr", 0},
                {"hr + `x y`", "unknown field 'x y'", 5}},
               Schema({{"patient_id", FieldType::kString}, {"ts", FieldType::kTimestamp}, {"hr", FieldType::kInt}}));
  ExpectErrors({{"x", "unknown field 'x', the input has no fields", 0}}, Schema());
  ExpectErrors({
      // Types.
      {"hr > 0 AND hr", "expected BOOL operand for AND, got int", 11},
      {"hr OR flag", "expected BOOL operand for OR, got int", 0},
      {"NOT hr", "expected BOOL operand for NOT, got int", 4},
      {"hr + name", "expected numeric operand for +, got string; use || to concatenate strings", 5},
      {"flag * 2", "expected numeric operand for *, got bool", 0},
      {"ts * 2", "expected numeric operand for *, got timestamp", 0},
      {"-name", "expected numeric operand for unary -, got string", 1},
      {"+name", "expected numeric operand for unary +, got string", 1},
      {"name > 1", "cannot compare string with int using >", 5},
      {"hr * spo2 > name", "cannot compare double with string", 10},
      {"flag = 1", "cannot compare bool with int", 5},
      {"ts = 1.5", "cannot compare timestamp with double", 3},
      {"ts + ts", "cannot add two timestamps", 3},
      {"ts + 1.5", "expected int (milliseconds) operand for + with a timestamp, got double", 5},
      {"1 - ts", "cannot subtract a timestamp from a number", 2},
      {"ts = 'yesterday'", "invalid timestamp 'yesterday'", 5},
      {"hr || 1", "expected a STRING operand for ||, got int and int", 3},
      {"hr IN (1, 'a')", "IN list value of type string cannot be compared with int", 10},
      {"hr BETWEEN 'a' AND 2", "BETWEEN bound of type string cannot be compared with int", 11},
      {"name BETWEEN 'a' AND 2", "BETWEEN bound of type int cannot be compared with string", 21},
      {"CASE WHEN hr THEN 1 END", "expected BOOL condition for WHEN, got int", 10},
      {"CASE WHEN flag THEN 1 ELSE 'x' END", "CASE branch has type string, which does not match the earlier branches' int", 27},
      {"(hr + 1) AND flag", "expected BOOL operand for AND, got int", 0},
      // Functions.
      {"foo(1)", "unknown function 'foo', expected one of abs, ceil, coalesce, concat, exp, floor, greatest, if, least, length, ln, log10, lower, now, pow, result_id, round, sqrt, substr, trim, upper", 0},
      {"hr + median(hr)", "unknown function 'median'", 5},
      {"sum(hr)", "'sum' is an aggregate function", 0},
      {"count(*)", "'count' is an aggregate function", 0},
      {"abs(1, 2)", "abs() takes 1 argument, got 2", 0},
      {"round()", "round() takes 1 or 2 arguments, got 0", 0},
      {"coalesce()", "coalesce() takes at least 1 argument, got 0", 0},
      {"substr(name)", "substr() takes 2 or 3 arguments, got 1", 0},
      {"abs(name)", "expected numeric argument 1 for abs, got string", 4},
      {"pow(2, name)", "expected numeric argument 2 for pow, got string", 7},
      {"round(spo2, 1.5)", "expected INT argument 2 for round, got double", 12},
      {"substr(name, 1.5)", "expected INT argument 2 for substr, got double", 13},
      {"lower(hr)", "expected STRING argument 1 for lower, got int", 6},
      {"least(hr, name)", "argument 2 for least has type string, which does not match the earlier arguments' int", 10},
      {"coalesce(ts, hr)", "argument 2 for coalesce has type int", 13},
      {"if(hr, 1, 2)", "expected BOOL argument 1 for if, got int", 3},
      {"if(flag, 1, 'a')", "argument 3 for if has type string", 12},
      // Syntax.
      {"", "expected an expression at end of input", 0},
      {"   ", "expected an expression at end of input", 3},
      {"(hr > 0", "expected ')' at end of input", 7},
      {"(hr > 0 flag", "expected ')', got 'flag'", 8},
      {"hr >", "expected an expression at end of input", 4},
      {"hr > 1 hr", "expected an operator or end of input, got 'hr'", 7},
      {"hr )", "expected an operator or end of input, got ')'", 3},
      {"hr > AND", "expected an expression, got 'AND'", 5},
      {"end > 1", "(to use the field 'end', write `end`)", 0},
      {"abs(1,", "expected an expression at end of input", 6},
      {"abs(1 2)", "expected ',' or ')' in the arguments of abs, got '2'", 6},
      {"hr BETWEEN 1 hr", "expected AND in BETWEEN, got 'hr'", 13},
      {"hr IN 1", "expected '(' after IN, got '1'", 6},
      {"hr IN ()", "expected an expression, got ')'", 7},
      {"hr IN (1 2)", "expected ',' or ')' in IN list", 9},
      {"hr IS 1", "expected NULL or NOT NULL after IS, got '1'", 6},
      {"hr IS NOT 1", "expected NULL after IS NOT", 10},
      {"CASE hr END", "expected WHEN after CASE, got 'hr'", 5},
      {"CASE WHEN flag 1", "expected THEN, got '1'", 15},
      {"CASE WHEN flag THEN 1", "expected WHEN, ELSE or END at end of input", 21},
      {"CASE WHEN flag THEN 1 ELSE 2", "expected END at end of input", 28},
      {"hr NOT 5", "expected an operator or end of input, got 'NOT'", 3},
      // A postfix predicate cannot be the operand of a tighter operator.
      {"hr IN (1) * 2", "expected an operator or end of input, got '*'", 10},
      {"hr NOT IN (1, 2, NULL) || patient_id", "expected an operator or end of input, got '||'", 23},
      {"missing IS NULL + 1", "expected an operator or end of input, got '+'", 16},
      {"NOT flag IS NULL || 'x'", "expected an operator or end of input, got '||'", 17},
      {"hr = NOT flag", "expected an expression, got 'NOT'", 5},
      // Tokens.
      {"'abc", "unterminated string literal", 0},
      {"hr > 'abc", "unterminated string literal", 5},
      {"`abc", "unterminated quoted field name", 0},
      {"``", "empty quoted field name", 0},
      {"hr # 2", "unexpected character '#'", 3},
      {"hr > \x01", "unexpected byte 0x01", 5},
      {"hr > \"x\"", "double quotes are not supported", 5},
      {"!flag", "did you mean '!=' or NOT?", 0},
      {"flag && flag", "did you mean AND?", 5},
      {"flag | flag", "did you mean '||' or OR?", 5},
      {"99999999999999999999", "integer 99999999999999999999 is out of range", 0},
      {"1 + 1e999", "number 1e999 is out of range", 4},
      {"12abc", "invalid number '12abc'", 0},
      {"1.2.3", "invalid number '1.2.3'", 0},
  });
}

TEST(ExpressionTest, ErrorOffsetIsOptional) {
  auto expr = Expression::Compile("hr +", TestSchema());
  ASSERT_FALSE(expr.ok());
  EXPECT_EQ(expr.status().code(), absl::StatusCode::kInvalidArgument);
}

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.append(s);
  return out;
}

TEST(ExpressionTest, DeepNestingIsRejectedNotCrashing) {
  // Within the limit.
  EXPECT_EQ(Show(Repeat("(", 150) + "hr" + Repeat(")", 150)), "int 80");
  EXPECT_EQ(Show(Repeat("NOT ", 150) + "flag"), "bool true");
  EXPECT_EQ(Show(Repeat("-", 150) + "hr"), "int 80");
  EXPECT_EQ(Show("hr" + Repeat(" + hr", 149)), "int 12000");
  // A long AND / OR chain is one node, not a deep tree.
  EXPECT_EQ(Show("flag" + Repeat(" AND hr > 0", 1000)), "bool true");
  EXPECT_EQ(Show("hr IN (" + Repeat("1, ", 1000) + "80)"), "bool true");

  for (const std::string& text : {Repeat("(", 250) + "hr" + Repeat(")", 250), Repeat("(", 100000),
                                  Repeat("NOT ", 300) + "flag", Repeat("-", 100000) + "hr",
                                  "hr" + Repeat(" + hr", 300), "name" + Repeat(" || name", 300),
                                  Repeat("abs(", 300) + "hr" + Repeat(")", 300),
                                  Repeat("CASE WHEN flag THEN ", 300) + "1" + Repeat(" END", 300)}) {
    size_t offset = 0;
    auto expr = Expression::Compile(text, TestSchema(), &offset);
    ASSERT_FALSE(expr.ok()) << text.substr(0, 40);
    EXPECT_EQ(expr.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(expr.status().message().find("nested too deeply"), std::string::npos) << expr.status();
    EXPECT_LE(offset, text.size());
  }
}

TEST(ExpressionTest, EvalPredicateIsTrueOnlyForNonNullTrue) {
  Row row = TestRow();
  auto check = [&](const char* text, bool want) {
    auto expr = Expression::Compile(text, TestSchema());
    ASSERT_TRUE(expr.ok()) << text << ": " << expr.status();
    EXPECT_EQ(expr->EvalPredicate(row), want) << text;
  };
  check("flag", true);
  check("tachycardic", false);
  check("missing_b", false);
  check("NOT missing_b", false);
  check("missing > 1 OR flag", true);
  check("hr", false);  // not a boolean expression
}

TEST(ExpressionTest, EvalReusesTheOutputDatum) {
  auto expr = Expression::Compile("CASE WHEN flag THEN lower(name) END", TestSchema());
  ASSERT_TRUE(expr.ok()) << expr.status();
  Row row = TestRow();
  Datum out;
  out.SetString("a much longer leftover value that is not small");
  expr->Eval(row, &out);
  EXPECT_FALSE(out.is_null);
  EXPECT_EQ(out.s, "ann");
  row[kFlag].SetBool(false);
  expr->Eval(row, &out);
  EXPECT_TRUE(out.is_null);
  row[kFlag].SetBool(true);
  expr->Eval(row, &out);
  EXPECT_EQ(out.s, "ann");
}

TEST(ExpressionTest, EvalIntoAFieldOfTheSameRow) {
  auto expr = Expression::Compile("upper(name) || '/' || name", TestSchema());
  ASSERT_TRUE(expr.ok()) << expr.status();
  Row row = TestRow();
  expr->Eval(row, &row[kName]);
  EXPECT_EQ(row[kName].s, "ANN/Ann");
}

TEST(ExpressionTest, EvalDoesNotAllocate) {
  Row row = TestRow();
  row[kName].SetString("a name that is longer than the small string buffer");
  const char* texts[] = {
      "hr > 0 AND spo2 BETWEEN 50 AND 100",
      "CASE WHEN hr > 100 THEN 2 WHEN hr > 60 THEN 1 ELSE 0 END",
      "abs(hr - 100) * 2.5 + round(spo2, 1) / greatest(hr, 1)",
      "hr IN (1, 2, 80) OR missing IS NULL",
      "name = patient_id OR name IN ('x', 'y') OR name BETWEEN 'a' AND 'b'",
      "length(trim(name))",
      "substr(name, 3, 10)",
      "lower(name)",
      "coalesce(missing_s, name)",
      "name || patient_id",
  };
  for (const char* text : texts) {
    auto expr = Expression::Compile(text, TestSchema());
    ASSERT_TRUE(expr.ok()) << text << ": " << expr.status();
    Datum out;
    expr->Eval(row, &out);  // warms up out.s
    const long before = g_allocations;
    for (int i = 0; i < 100; ++i) {
      expr->Eval(row, &out);
      expr->EvalPredicate(row);
    }
    EXPECT_EQ(g_allocations - before, 0) << text;
  }
}

TEST(ExpressionTest, ConcurrentEvalGivesTheSameResults) {
  auto expr = Expression::Compile("concat(upper(name), ':', hr * 2, ':', round(spo2 / 3, 2))", TestSchema());
  ASSERT_TRUE(expr.ok()) << expr.status();
  std::vector<std::vector<std::string>> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Row row = TestRow();
      Datum out;
      for (int i = 0; i < 2000; ++i) {
        row[kHr].SetInt(i);
        row[kName].SetString(absl::StrCat("patient number ", i));
        expr->Eval(row, &out);
        results[t].push_back(out.s);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(results[0][7], "PATIENT NUMBER 7:14:32.5");
  for (int t = 1; t < 4; ++t) EXPECT_EQ(results[t], results[0]);
}

TEST(ExpressionTest, MovedExpressionStillEvaluates) {
  auto compiled = Expression::Compile("hr * 2", TestSchema());
  ASSERT_TRUE(compiled.ok());
  Expression moved = std::move(*compiled);
  Datum d;
  moved.Eval(TestRow(), &d);
  EXPECT_EQ(d.i, 160);
  auto other = Expression::Compile("hr + 1", TestSchema());
  ASSERT_TRUE(other.ok());
  moved = std::move(*other);
  moved.Eval(TestRow(), &d);
  EXPECT_EQ(d.i, 81);
  EXPECT_EQ(moved.text(), "hr + 1");
}

TEST(ExpressionTest, ShortRowReadsAsNull) {
  auto expr = Expression::Compile("coalesce(missing, hr, -1)", TestSchema());
  ASSERT_TRUE(expr.ok());
  Datum d;
  expr->Eval(Row(), &d);
  EXPECT_FALSE(d.is_null);
  EXPECT_EQ(d.i, -1);
}

// Compiles many random and mutated strings: every one must either compile
// (and then evaluate) or fail with InvalidArgument and an offset inside the
// text. Crashes, hangs and sanitizer reports are the failures looked for.
TEST(ExpressionTest, RandomAndMutatedInputNeverCrash) {
  const std::vector<std::string> seeds = {
      "hr > 0 AND spo2 BETWEEN 50 AND 100",
      "CASE WHEN tachycardic THEN 1 ELSE 0 END",
      "name || '-' || patient_id",
      "round(spo2 / 3, 2) + abs(hr - 100) % 7",
      "hr NOT IN (1, 2, NULL) OR missing IS NOT NULL",
      "substr(trim(note), 2, 4) = lower('AB''C')",
      "coalesce(missing, least(hr, 5), greatest(1, 2.5)) * -3",
      "if(flag, ts + 1000, ts - 5) > '2023-11-14'",
      "`odd name` / 0 <> concat(hr, NULL, TRUE)",
      "NOT (hr >= 1e3 OR pow(2, hr) < sqrt(spo2)) AND length(name) <= ln(10)",
  };
  const std::vector<std::string> vocabulary = {
      "hr", "spo2", "name", "ts", "flag", "missing", "missing_s", "`odd name`", "1", "2.5", "-",
      "'x'", "NULL", "TRUE", "(", ")", ",", "+", "*", "/", "%", "=", "<>", "<", ">=", "||",
      "AND", "OR", "NOT", "BETWEEN", "IN", "IS", "CASE", "WHEN", "THEN", "ELSE", "END",
      "abs(", "round(", "substr(", "concat(", "coalesce(", "if(", "least(", "lower(", "9223372036854775808",
  };
  std::mt19937 rng(20240611);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const Schema schema = TestSchema();
  Row full = TestRow();
  Row nulls(kNumFields);
  int compiled = 0, failed = 0;
  for (int iter = 0; iter < 100000; ++iter) {
    std::string text;
    switch (iter % 4) {
      case 0: {  // byte-level mutations of a valid expression
        text = seeds[pick(seeds.size())];
        for (size_t m = 1 + pick(4); m > 0; --m) {
          const size_t at = text.empty() ? 0 : pick(text.size());
          switch (pick(3)) {
            case 0: text.insert(text.begin() + at, static_cast<char>(rng())); break;
            case 1: if (!text.empty()) text.erase(at, 1); break;
            default: if (!text.empty()) text[at] = static_cast<char>(rng()); break;
          }
        }
        break;
      }
      case 1: {  // random tokens
        for (size_t n = 1 + pick(12); n > 0; --n) absl::StrAppend(&text, vocabulary[pick(vocabulary.size())], " ");
        break;
      }
      case 2: {  // splices of two valid expressions
        const std::string& a = seeds[pick(seeds.size())];
        const std::string& b = seeds[pick(seeds.size())];
        text = a.substr(0, pick(a.size() + 1)) + b.substr(pick(b.size() + 1));
        break;
      }
      default: {  // random bytes
        for (size_t n = pick(40); n > 0; --n) text.push_back(static_cast<char>(rng()));
        break;
      }
    }
    size_t offset = 0;
    auto expr = Expression::Compile(text, schema, &offset);
    if (expr.ok()) {
      ++compiled;
      Datum d;
      expr->Eval(full, &d);
      expr->Eval(nulls, &d);
      expr->Eval(Row(), &d);
      expr->EvalPredicate(full);
      expr->EvalPredicate(nulls);
    } else {
      ++failed;
      ASSERT_EQ(expr.status().code(), absl::StatusCode::kInvalidArgument) << text;
      ASSERT_FALSE(expr.status().message().empty()) << text;
      ASSERT_LE(offset, text.size()) << text << ": " << expr.status();
    }
  }
  std::cout << "compiled " << compiled << ", rejected " << failed << "\n";
  // Both outcomes must have been exercised for the test to mean anything.
  EXPECT_GT(compiled, 1000);
  EXPECT_GT(failed, 10000);
}

TEST(AggregateCallTest, SplitsFunctionAndArgument) {
  auto call = ParseAggregateCall("count(*)");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->func, "count");
  EXPECT_EQ(call->arg, "");

  call = ParseAggregateCall(" COUNT ( * ) ");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->func, "count");
  EXPECT_EQ(call->arg, "");

  call = ParseAggregateCall("max(hr)");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->func, "max");
  EXPECT_EQ(call->arg, "hr");
  EXPECT_EQ(call->arg_offset, 4u);

  const std::string text = "  Sum ( CASE WHEN x THEN 1 ELSE 0 END )  ";
  call = ParseAggregateCall(text);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->func, "sum");
  EXPECT_EQ(call->arg, "CASE WHEN x THEN 1 ELSE 0 END");
  EXPECT_EQ(text.substr(call->arg_offset, call->arg.size()), call->arg);

  call = ParseAggregateCall("avg(round(a, 2) * (b + 1))");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->func, "avg");
  EXPECT_EQ(call->arg, "round(a, 2) * (b + 1)");

  call = ParseAggregateCall("min(concat(')', name))");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->func, "min");
  EXPECT_EQ(call->arg, "concat(')', name)");

  call = ParseAggregateCall("count(hr)");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->arg, "hr");
  EXPECT_FALSE(call->has_param);

  for (const char* func : {"first", "last", "stddev"}) {
    call = ParseAggregateCall(absl::StrCat(func, "(hr)"));
    ASSERT_TRUE(call.ok()) << func << ": " << call.status();
    EXPECT_EQ(call->func, func);
    EXPECT_EQ(call->arg, "hr");
  }
}

TEST(AggregateCallTest, PercentileTakesAQuantile) {
  auto call = ParseAggregateCall("percentile(hr, 0.95)");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->func, "percentile");
  EXPECT_EQ(call->arg, "hr");
  EXPECT_EQ(call->arg_offset, 11u);
  EXPECT_TRUE(call->has_param);
  EXPECT_DOUBLE_EQ(call->param, 0.95);
  EXPECT_EQ(call->param_offset, 15u);

  // Commas inside parentheses and quoted strings do not split arguments.
  const std::string text = "PERCENTILE( least(a, b) + length(',)') ,1 )";
  call = ParseAggregateCall(text);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->func, "percentile");
  EXPECT_EQ(call->arg, "least(a, b) + length(',)')");
  EXPECT_EQ(text.substr(call->arg_offset, call->arg.size()), call->arg);
  EXPECT_DOUBLE_EQ(call->param, 1.0);
  EXPECT_EQ(text.substr(call->param_offset, 1), "1");

  call = ParseAggregateCall("percentile(`odd, name`, 5e-1)");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->arg, "`odd, name`");
  EXPECT_DOUBLE_EQ(call->param, 0.5);

  call = ParseAggregateCall("max(concat(a, ','))");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->arg, "concat(a, ',')");
}

TEST(AggregateCallTest, Errors) {
  struct Case {
    const char* text;
    const char* message;
    size_t offset;
  };
  const Case cases[] = {
      {"median(hr)",
       "unknown aggregate function 'median', expected one of count, sum, min, max, avg, first, "
       "last, stddev, percentile",
       0},
      {"  foo(hr)", "unknown aggregate function 'foo'", 2},
      {"max hr", "expected '(' after max", 4},
      {"max", "expected '(' after max at end of input", 3},
      {"max(hr", "expected ')' at end of input", 6},
      {"max((hr)", "expected ')' at end of input", 8},
      {"sum()", "sum() needs an argument", 4},
      {"count( )", "count() needs an argument", 7},
      {"sum(*)", "'*' is only allowed in count(*), not in sum", 4},
      {"max(hr) + 1", "unexpected text after max(...)", 8},
      {"", "expected an aggregate call", 0},
      {"42", "expected an aggregate call", 0},
      {"max('hr)", "unterminated string literal", 4},
      {"max(hr, 2)", "max takes one argument", 6},
      {"count(*, 1)", "count takes one argument", 7},
      {"percentile(hr)", "percentile needs two arguments", 13},
      {"percentile(hr, 0.5, 1)", "percentile takes two arguments", 18},
      {"percentile(hr, )", "percentile needs a quantile in (0, 1]", 15},
      {"percentile(, 0.5)", "percentile() needs an argument", 11},
      {"percentile(*, 0.5)", "'*' is only allowed in count(*), not in percentile", 11},
      {"percentile(hr, 0)", "percentile's quantile must be in (0, 1], got 0", 15},
      {"percentile(hr, 1.5)", "percentile's quantile must be in (0, 1], got 1.5", 15},
      {"percentile(hr,  -0.5)", "percentile's quantile must be in (0, 1], got -0.5", 16},
      {"percentile(hr, q)", "quantile must be a number in (0, 1] such as 0.95, got 'q'", 15},
      {"percentile(hr, 0.5 + 0.1)",
       "quantile must be a number in (0, 1] such as 0.95, got '0.5 + 0.1'", 15},
      {"percentile(hr, '0.5')", "got ''0.5''", 15},
  };
  for (const Case& c : cases) {
    size_t offset = 999;
    auto call = ParseAggregateCall(c.text, &offset);
    ASSERT_FALSE(call.ok()) << c.text;
    EXPECT_EQ(call.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(call.status().message().find(c.message), std::string::npos)
        << c.text << ": " << call.status().message();
    EXPECT_EQ(offset, c.offset) << c.text << ": " << call.status().message();
  }
}

}  // namespace
}  // namespace vstream
