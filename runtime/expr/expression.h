#pragma once
// The expression language of job specs: filters, computed fields and
// aggregate arguments.
//
//   literals     42  3.5  'text'  TRUE  FALSE  NULL
//   fields       hr, patient_id, `odd name`
//   arithmetic   + - * / %  unary -
//   comparison   = == != <> < <= > >=
//   logic        AND OR NOT   (SQL three-valued logic with NULL)
//   predicates   x BETWEEN a AND b, x [NOT] IN (a, b, ...), x IS [NOT] NULL
//   conditional  CASE WHEN c THEN v [WHEN ...] [ELSE v] END
//   functions    abs, round, floor, ceil, sqrt, pow, ln, exp, least, greatest,
//                lower, upper, length, trim, substr, concat, coalesce, ...
//   strings      || concatenation
//
// Keywords are case-insensitive. Expressions are compiled once against the
// input schema: every error (unknown field, type mismatch, syntax) is found
// at compile time, which is when the job is submitted.
//
// Thread-compatible: a compiled Expression is immutable; Eval may be called
// concurrently from several threads.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/types.h"

namespace vstream {

class ExprNode;  // private to runtime/expr

class Expression {
 public:
  ~Expression();
  Expression(Expression&&) noexcept;
  Expression& operator=(Expression&&) noexcept;

  // Parses and type-checks `text` against `input`. On error returns
  // InvalidArgument with a message such as "expected BOOL, got int" and, if
  // error_offset is not null, stores the 0-based byte offset in `text` where
  // the problem starts.
  static absl::StatusOr<Expression> Compile(std::string_view text, const Schema& input,
                                            size_t* error_offset = nullptr);

  FieldType type() const { return type_; }
  const std::string& text() const { return text_; }
  // The input fields it reads (indexes, ascending, each once).
  const std::vector<int>& fields() const { return fields_; }

  // Evaluates against one row of the input schema.
  void Eval(const Row& row, Datum* out) const;
  // For boolean expressions: true only if the value is non-null and true.
  bool EvalPredicate(const Row& row) const;

 private:
  Expression(std::unique_ptr<ExprNode> root, FieldType type, std::string text, std::vector<int> fields);
  std::unique_ptr<ExprNode> root_;
  FieldType type_;
  std::string text_;
  std::vector<int> fields_;
};

// An aggregate call as written in a job spec: "count(*)", "max(hr)",
// "sum(CASE WHEN x THEN 1 ELSE 0 END)", "percentile(hr, 0.95)".
struct AggregateCallText {
  // Lower case: count, sum, min, max, avg, first, last, stddev, percentile.
  std::string func;
  std::string arg;        // argument text; empty for count(*)
  size_t arg_offset = 0;  // offset of arg in the original text
  // percentile only: the quantile, a numeric literal in (0, 1].
  bool has_param = false;
  double param = 0;
  size_t param_offset = 0;  // offset of the quantile in the original text
};

// Splits an aggregate call. percentile takes two arguments, the value and the
// quantile; every other function takes exactly one (count(*) included).
// Arguments are split on commas outside parentheses and quoted strings.
// Errors (InvalidArgument, with *error_offset set) for unknown functions,
// missing parentheses, a missing or extra argument, or a bad quantile.
absl::StatusOr<AggregateCallText> ParseAggregateCall(std::string_view text,
                                                     size_t* error_offset = nullptr);

}  // namespace vstream
