#include "runtime/expr/expression.h"

#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "runtime/expr/checker.h"
#include "runtime/expr/expr_node.h"
#include "runtime/expr/lexer.h"
#include "runtime/expr/parser.h"

namespace vstream {

Expression::Expression(std::unique_ptr<ExprNode> root, FieldType type, std::string text)
    : root_(std::move(root)), type_(type), text_(std::move(text)) {}
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
  return Expression(std::move(root->node), type, std::string(text));
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
  constexpr char kExpected[] = "count, sum, min, max, avg";

  // The lexer skips quoted strings, so parentheses inside 'text' do not count.
  const std::vector<Token> tokens = Tokenize(text);
  const Token& name = tokens[0];
  if (name.kind == TokenKind::kError) return fail(name.offset, name.text);
  if (name.kind != TokenKind::kIdent) {
    return fail(name.offset, absl::StrCat("expected an aggregate call such as count(*) or max(hr), one of ",
                                          kExpected));
  }
  AggregateCallText call;
  call.func = absl::AsciiStrToLower(name.text);
  if (call.func != "count" && call.func != "sum" && call.func != "min" && call.func != "max" &&
      call.func != "avg") {
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
  // Find the matching ')'.
  size_t i = 2;
  for (int depth = 1;; ++i) {
    const Token& t = tokens[i];
    if (t.kind == TokenKind::kError) return fail(t.offset, t.text);
    if (t.kind == TokenKind::kEnd) return fail(t.offset, "expected ')' at end of input");
    if (t.kind == TokenKind::kLParen) ++depth;
    if (t.kind == TokenKind::kRParen && --depth == 0) break;
  }
  const Token& close = tokens[i];
  const Token& after = tokens[i + 1];
  if (after.kind == TokenKind::kError) return fail(after.offset, after.text);
  if (after.kind != TokenKind::kEnd) {
    return fail(after.offset, absl::StrCat("unexpected text after ", call.func, "(...)"));
  }

  // The argument: the text between the parentheses, trimmed.
  size_t begin = open.offset + 1, end = close.offset;
  while (begin < end && absl::ascii_isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && absl::ascii_isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  const std::string_view arg = text.substr(begin, end - begin);
  if (arg == "*") {
    if (call.func != "count") return fail(begin, absl::StrCat("'*' is only allowed in count(*), not in ", call.func));
    call.arg_offset = begin;
    return call;
  }
  if (arg.empty()) {
    return fail(close.offset, call.func == "count"
                                  ? std::string("count() needs an argument: count(*) or count(expr)")
                                  : absl::StrCat(call.func, "() needs an argument"));
  }
  call.arg = std::string(arg);
  call.arg_offset = begin;
  return call;
}

}  // namespace vstream
