#include "runtime/expr/expression.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "runtime/expr/checker.h"
#include "runtime/expr/expr_node.h"
#include "runtime/expr/lexer.h"
#include "runtime/expr/parser.h"

namespace vstream {

Expression::Expression(std::unique_ptr<ExprNode> root, FieldType type, std::string text, std::vector<int> fields)
    : root_(std::move(root)), type_(type), text_(std::move(text)), fields_(std::move(fields)) {}
Expression::~Expression() = default;
Expression::Expression(Expression&&) noexcept = default;
Expression& Expression::operator=(Expression&&) noexcept = default;

absl::StatusOr<Expression> Expression::Compile(std::string_view text, const Schema& input,
                                               size_t* error_offset) {
  CompileContext ctx(text, input);
  absl::StatusOr<Operand> root = ParseExpression(ctx);
  if (!root.ok()) {
    if (error_offset != nullptr) *error_offset = std::min(ctx.error_offset, text.size());
    return root.status();
  }
  const FieldType type = ToFieldType(root->type);
  std::vector<int>& fields = ctx.fields_read;
  std::sort(fields.begin(), fields.end());
  fields.erase(std::unique(fields.begin(), fields.end()), fields.end());
  return Expression(std::move(root->node), type, std::string(text), std::move(fields));
}

void Expression::Eval(const Row& row, Datum* out) const {
  // A string result is built in out->s, which must not be a string the
  // expression reads. Callers computing a row in place get a slower but
  // correct path.
  if (type_ == FieldType::kString && !row.empty()) {
    std::less<const Datum*> less;
    if (!less(out, row.data()) && less(out, row.data() + row.size())) {
      Datum tmp;
      root_->Eval(row, &tmp);
      *out = std::move(tmp);
      return;
    }
  }
  root_->Eval(row, out);
}

bool Expression::EvalPredicate(const Row& row) const {
  Scalar v;
  return type_ == FieldType::kBool && root_->EvalScalar(row, &v) && v.i != 0;
}

absl::StatusOr<AggregateCallText> ParseAggregateCall(std::string_view text, size_t* error_offset) {
  auto fail = [&](size_t offset, std::string message) -> absl::Status {
    if (error_offset != nullptr) *error_offset = std::min(offset, text.size());
    return absl::InvalidArgumentError(std::move(message));
  };
  constexpr char kExpected[] = "count, sum, min, max, avg, first, last, stddev, percentile";

  // The lexer skips quoted strings, so parentheses and commas inside 'text'
  // or `name` do not count.
  const std::vector<Token> tokens = Tokenize(text);
  const Token& name = tokens[0];
  if (name.kind == TokenKind::kError) return fail(name.offset, name.text);
  if (name.kind != TokenKind::kIdent) {
    return fail(name.offset, absl::StrCat("expected an aggregate call such as count(*) or max(hr), one of ",
                                          kExpected));
  }
  AggregateCallText call;
  call.func = absl::AsciiStrToLower(name.text);
  const bool two_args = call.func == "percentile";
  if (call.func != "count" && call.func != "sum" && call.func != "min" && call.func != "max" &&
      call.func != "avg" && call.func != "first" && call.func != "last" && call.func != "stddev" &&
      !two_args) {
    return fail(name.offset,
                absl::StrCat("unknown aggregate function '", name.text, "', expected one of ", kExpected));
  }
  const Token& open = tokens[1];
  if (open.kind != TokenKind::kLParen) {
    if (open.kind == TokenKind::kEnd) {
      return fail(open.offset, absl::StrCat("expected '(' after ", call.func, " at end of input"));
    }
    return fail(open.offset, absl::StrCat("expected '(' after ", call.func));
  }
  // Find the matching ')' and the commas between the arguments.
  std::vector<size_t> commas;  // token indexes of top-level commas
  size_t i = 2;
  for (int depth = 1;; ++i) {
    const Token& t = tokens[i];
    if (t.kind == TokenKind::kError) return fail(t.offset, t.text);
    if (t.kind == TokenKind::kEnd) return fail(t.offset, "expected ')' at end of input");
    if (t.kind == TokenKind::kLParen) ++depth;
    if (t.kind == TokenKind::kRParen && --depth == 0) break;
    if (t.kind == TokenKind::kComma && depth == 1) commas.push_back(i);
  }
  const size_t close_index = i;
  const Token& close = tokens[close_index];
  const Token& after = tokens[i + 1];
  if (after.kind == TokenKind::kError) return fail(after.offset, after.text);
  if (after.kind != TokenKind::kEnd) {
    return fail(after.offset, absl::StrCat("unexpected text after ", call.func, "(...)"));
  }
  const size_t wanted = two_args ? 2 : 1;
  if (commas.size() >= wanted) {
    return fail(tokens[commas[wanted - 1]].offset,
                two_args ? std::string("percentile takes two arguments: percentile(x, q)")
                         : absl::StrCat(call.func, " takes one argument"));
  }
  if (two_args && commas.empty()) {
    return fail(close.offset,
                "percentile needs two arguments, the value and the quantile: percentile(x, 0.95)");
  }

  // An argument: the text between its delimiters, trimmed.
  auto trim = [&](size_t begin, size_t end) {
    while (begin < end && absl::ascii_isspace(static_cast<unsigned char>(text[begin]))) ++begin;
    while (end > begin && absl::ascii_isspace(static_cast<unsigned char>(text[end - 1]))) --end;
    return std::make_pair(begin, end);
  };
  const size_t arg_end_index = two_args ? commas[0] : close_index;
  const auto [begin, end] = trim(open.offset + 1, tokens[arg_end_index].offset);
  const std::string_view arg = text.substr(begin, end - begin);
  if (arg == "*") {
    if (call.func != "count") return fail(begin, absl::StrCat("'*' is only allowed in count(*), not in ", call.func));
    call.arg_offset = begin;
  } else if (arg.empty()) {
    return fail(tokens[arg_end_index].offset,
                call.func == "count"
                    ? std::string("count() needs an argument: count(*) or count(expr)")
                    : absl::StrCat(call.func, "() needs an argument"));
  } else {
    call.arg = std::string(arg);
    call.arg_offset = begin;
  }
  if (!two_args) return call;

  // The quantile: a numeric literal, optionally negated (to reject it with a
  // clear message), in (0, 1].
  const auto [q_begin, q_end] = trim(tokens[commas[0]].offset + 1, close.offset);
  const std::string_view q_text = text.substr(q_begin, q_end - q_begin);
  if (q_text.empty()) {
    return fail(close.offset, "percentile needs a quantile in (0, 1] as its second argument");
  }
  size_t t = commas[0] + 1;
  const bool negative = tokens[t].kind == TokenKind::kMinus;
  if (negative) ++t;
  double q = 0;
  if ((tokens[t].kind != TokenKind::kInt && tokens[t].kind != TokenKind::kDouble) ||
      t + 1 != close_index || !absl::SimpleAtod(AV(tokens[t].text), &q)) {
    return fail(q_begin,
                absl::StrCat("percentile's quantile must be a number in (0, 1] such as 0.95, got '",
                             AV(q_text), "'"));
  }
  if (negative) q = -q;
  if (!(q > 0 && q <= 1)) {
    return fail(q_begin, absl::StrCat("percentile's quantile must be in (0, 1], got ", AV(q_text)));
  }
  call.has_param = true;
  call.param = q;
  call.param_offset = q_begin;
  return call;
}

}  // namespace vstream
