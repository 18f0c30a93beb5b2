#include "runtime/expr/parser.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "runtime/expr/functions.h"
#include "runtime/expr/lexer.h"

namespace vstream {
namespace {

constexpr std::string_view kReserved[] = {"and",  "or",   "not",  "between", "in",   "is",   "case",
                                          "when", "then", "else", "end",     "true", "false", "null"};

bool IsReserved(const Token& t) {
  for (std::string_view k : kReserved) {
    if (IsKeyword(t, k)) return true;
  }
  return false;
}

std::optional<CmpOp> ComparisonOf(TokenKind kind) {
  switch (kind) {
    case TokenKind::kEq: return CmpOp::kEq;
    case TokenKind::kNe: return CmpOp::kNe;
    case TokenKind::kLt: return CmpOp::kLt;
    case TokenKind::kLe: return CmpOp::kLe;
    case TokenKind::kGt: return CmpOp::kGt;
    case TokenKind::kGe: return CmpOp::kGe;
    default: return std::nullopt;
  }
}

class Parser {
 public:
  explicit Parser(CompileContext& ctx) : ctx_(ctx), tokens_(Tokenize(ctx.text)) {}

  absl::StatusOr<Operand> Run() {
    ASSIGN_OR_RETURN(Operand root, ParseExpr());
    if (Peek().kind != TokenKind::kEnd) return Unexpected(Peek(), "an operator or end of input");
    return root;
  }

 private:
  // Counts recursion; every recursive path goes through one of these.
  class DepthGuard {
   public:
    explicit DepthGuard(Parser* p) : p_(p) { ++p_->depth_; }
    ~DepthGuard() { --p_->depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Parser* p_;
  };

  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  // Consumes the current token; the final kEnd / kError is never passed.
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }

  absl::Status TooDeep() {
    return ctx_.Error(Peek().offset,
                      absl::StrCat("expression is nested too deeply (more than ", kMaxExprDepth, " levels)"));
  }

  std::string Describe(const Token& t) const {
    std::string_view source = ctx_.text.substr(t.offset, t.length);
    if (source.size() > 30) return absl::StrCat("'", AV(source.substr(0, 27)), "...'");
    return absl::StrCat("'", AV(source), "'");
  }

  absl::Status Unexpected(const Token& t, std::string_view expected) {
    if (t.kind == TokenKind::kError) return ctx_.Error(t.offset, t.text);
    if (t.kind == TokenKind::kEnd) {
      return ctx_.Error(t.offset, absl::StrCat("expected ", AV(expected), " at end of input"));
    }
    std::string message = absl::StrCat("expected ", AV(expected), ", got ", Describe(t));
    if (IsReserved(t) && ctx_.schema.IndexOf(t.text) >= 0) {
      absl::StrAppend(&message, " (to use the field '", t.text, "', write `", t.text, "`)");
    }
    return ctx_.Error(t.offset, std::move(message));
  }

  absl::Status Expect(TokenKind kind, std::string_view what) {
    if (Peek().kind != kind) return Unexpected(Peek(), what);
    Next();
    return absl::OkStatus();
  }

  absl::Status ExpectKeyword(std::string_view keyword, std::string_view what) {
    if (!IsKeyword(Peek(), keyword)) return Unexpected(Peek(), what);
    Next();
    return absl::OkStatus();
  }

  // How tightly the binary and postfix operators bind, loosest first. NOT is
  // a prefix operator between AND and the predicates.
  enum Prec : int { kNone = 0, kOr, kAnd, kNot, kPredicate, kConcat, kAdditive, kMultiplicative };

  Prec PrecedenceOf(const Token& t) const {
    switch (t.kind) {
      case TokenKind::kEq:
      case TokenKind::kNe:
      case TokenKind::kLt:
      case TokenKind::kLe:
      case TokenKind::kGt:
      case TokenKind::kGe: return kPredicate;
      case TokenKind::kConcat: return kConcat;  // looser than + and -, as in PostgreSQL
      case TokenKind::kPlus:
      case TokenKind::kMinus: return kAdditive;
      case TokenKind::kStar:
      case TokenKind::kSlash:
      case TokenKind::kPercent: return kMultiplicative;
      case TokenKind::kIdent:
        if (IsKeyword(t, "or")) return kOr;
        if (IsKeyword(t, "and")) return kAnd;
        if (IsKeyword(t, "between") || IsKeyword(t, "in") || IsKeyword(t, "is")) return kPredicate;
        if (IsKeyword(t, "not") && (IsKeyword(Peek(1), "between") || IsKeyword(Peek(1), "in"))) {
          return kPredicate;
        }
        return kNone;
      default: return kNone;
    }
  }

  absl::StatusOr<Operand> ParseExpr() {
    DepthGuard guard(this);
    if (depth_ > kMaxExprDepth) return TooDeep();
    return ParseBinary(kOr);
  }

  // Precedence climbing: parses an operand followed by every operator that
  // binds at least as tightly as `min`. Recursion only grows with the
  // nesting of parentheses, calls and CASE, which ParseExpr bounds.
  absl::StatusOr<Operand> ParseBinary(int min) {
    Operand left;
    // The loosest operator applied to `left` so far. A tighter operator may
    // not follow it: "x IN (1) * 2" is an error, not "(x IN (1)) * 2".
    int applied = kMultiplicative;
    if (min <= kNot && IsKeyword(Peek(), "not")) {
      ASSIGN_OR_RETURN(left, ParseNot());
      applied = kNot;
    } else {
      ASSIGN_OR_RETURN(left, ParseUnary());
    }
    while (true) {
      const Token& t = Peek();
      const Prec prec = PrecedenceOf(t);
      if (prec == kNone || prec < min || prec > applied) return left;
      applied = prec;
      if (prec == kOr || prec == kAnd) {
        ASSIGN_OR_RETURN(left, ParseLogic(prec, std::move(left)));
      } else if (prec == kPredicate) {
        ASSIGN_OR_RETURN(left, ParsePredicate(std::move(left)));
      } else {
        Next();
        ASSIGN_OR_RETURN(Operand right, ParseBinary(prec + 1));  // left-associative
        if (t.kind == TokenKind::kConcat) {
          ASSIGN_OR_RETURN(left, CheckConcatOp(ctx_, t.offset, std::move(left), std::move(right)));
        } else {
          ASSIGN_OR_RETURN(left, CheckArith(ctx_, ArithOf(t.kind), t.offset, std::move(left), std::move(right)));
        }
      }
    }
  }

  static ArithOp ArithOf(TokenKind kind) {
    switch (kind) {
      case TokenKind::kMinus: return ArithOp::kSub;
      case TokenKind::kStar: return ArithOp::kMul;
      case TokenKind::kSlash: return ArithOp::kDiv;
      case TokenKind::kPercent: return ArithOp::kMod;
      default: return ArithOp::kAdd;
    }
  }

  // A chain of ANDs (or ORs) becomes one n-ary node.
  [[gnu::noinline]] absl::StatusOr<Operand> ParseLogic(Prec prec, Operand first) {
    const std::string_view keyword = prec == kAnd ? "and" : "or";
    std::vector<Operand> operands;
    operands.push_back(std::move(first));
    while (IsKeyword(Peek(), keyword)) {
      Next();
      ASSIGN_OR_RETURN(Operand next, ParseBinary(prec + 1));
      operands.push_back(std::move(next));
    }
    return CheckLogic(ctx_, prec == kAnd, std::move(operands));
  }

  [[gnu::noinline]] absl::StatusOr<Operand> ParseNot() {
    const size_t offset = Next().offset;
    DepthGuard guard(this);
    if (depth_ > kMaxExprDepth) return TooDeep();
    ASSIGN_OR_RETURN(Operand x, ParseBinary(kNot));
    return CheckNot(ctx_, offset, std::move(x));
  }

  // One comparison, [NOT] BETWEEN, [NOT] IN or IS [NOT] NULL after `left`.
  [[gnu::noinline]] absl::StatusOr<Operand> ParsePredicate(Operand left) {
    const Token& t = Next();
    if (std::optional<CmpOp> op = ComparisonOf(t.kind)) {
      ASSIGN_OR_RETURN(Operand right, ParseBinary(kConcat));
      return CheckCompare(ctx_, *op, t.offset, std::move(left), std::move(right));
    }
    if (IsKeyword(t, "is")) {
      bool is_not = false;
      if (IsKeyword(Peek(), "not")) {
        is_not = true;
        Next();
      }
      RETURN_IF_ERROR(ExpectKeyword("null", is_not ? "NULL after IS NOT" : "NULL or NOT NULL after IS"));
      return CheckIsNull(ctx_, is_not, std::move(left));
    }
    const bool negated = IsKeyword(t, "not");
    const Token& keyword = negated ? Next() : t;  // BETWEEN or IN, as PrecedenceOf checked
    if (IsKeyword(keyword, "between")) {
      ASSIGN_OR_RETURN(Operand lo, ParseBinary(kConcat));
      RETURN_IF_ERROR(ExpectKeyword("and", "AND in BETWEEN"));
      ASSIGN_OR_RETURN(Operand hi, ParseBinary(kConcat));
      return CheckBetween(ctx_, negated, std::move(left), std::move(lo), std::move(hi));
    }
    RETURN_IF_ERROR(Expect(TokenKind::kLParen, "'(' after IN"));
    std::vector<Operand> list;
    do {
      ASSIGN_OR_RETURN(Operand e, ParseExpr());
      list.push_back(std::move(e));
    } while (Peek().kind == TokenKind::kComma && (Next(), true));
    RETURN_IF_ERROR(Expect(TokenKind::kRParen, "',' or ')' in IN list"));
    return CheckIn(ctx_, negated, std::move(left), std::move(list));
  }

  absl::StatusOr<Operand> ParseUnary() {
    const Token& t = Peek();
    if (t.kind != TokenKind::kMinus && t.kind != TokenKind::kPlus) return ParsePrimary();
    Next();
    DepthGuard guard(this);
    if (depth_ > kMaxExprDepth) return TooDeep();
    if (t.kind == TokenKind::kMinus && Peek().kind == TokenKind::kInt &&
        Peek().text == "9223372036854775808") {
      Next();  // the one int literal that only exists negated
      return MakeLiteralOperand(
          MakeScalarLiteral(VType::kInt, Scalar{std::numeric_limits<int64_t>::min(), 0}), t.offset);
    }
    ASSIGN_OR_RETURN(Operand x, ParseUnary());
    if (t.kind == TokenKind::kMinus) return CheckNegate(ctx_, t.offset, std::move(x));
    RETURN_IF_ERROR(ExpectNumeric(ctx_, x, "operand for unary +"));
    x.offset = t.offset;
    return x;
  }

  absl::StatusOr<Operand> ParsePrimary() {
    const Token& t = Peek();
    switch (t.kind) {
      case TokenKind::kInt: {
        Next();
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (ec != std::errc() || end != t.text.data() + t.text.size()) {
          return ctx_.Error(t.offset, absl::StrCat("integer ", t.text, " is out of range"));
        }
        return MakeLiteralOperand(MakeScalarLiteral(VType::kInt, Scalar{v, 0}), t.offset);
      }
      case TokenKind::kDouble: {
        Next();
        double v = 0;
        const auto [end, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (ec != std::errc() || end != t.text.data() + t.text.size()) {
          return ctx_.Error(t.offset, absl::StrCat("number ", t.text, " is out of range"));
        }
        return MakeLiteralOperand(MakeScalarLiteral(VType::kDouble, Scalar{0, v}), t.offset);
      }
      case TokenKind::kString:
        Next();
        return MakeLiteralOperand(MakeStringLiteral(t.text), t.offset);
      case TokenKind::kQuotedIdent:
        Next();
        return CheckField(ctx_, t.text, t.offset);
      case TokenKind::kLParen: {
        Next();
        ASSIGN_OR_RETURN(Operand x, ParseExpr());
        RETURN_IF_ERROR(Expect(TokenKind::kRParen, "')'"));
        x.offset = t.offset;
        return x;
      }
      case TokenKind::kIdent: break;
      default: return Unexpected(t, "an expression");
    }
    if (IsKeyword(t, "true") || IsKeyword(t, "false")) {
      Next();
      return MakeLiteralOperand(MakeScalarLiteral(VType::kBool, Scalar{IsKeyword(t, "true") ? 1 : 0, 0}),
                                t.offset);
    }
    if (IsKeyword(t, "null")) {
      Next();
      return MakeLiteralOperand(MakeNullLiteral(VType::kNull), t.offset);
    }
    if (IsKeyword(t, "case")) return ParseCase();
    if (IsReserved(t)) return Unexpected(t, "an expression");
    if (Peek(1).kind == TokenKind::kLParen) return ParseCall();
    Next();
    return CheckField(ctx_, t.text, t.offset);
  }

  [[gnu::noinline]] absl::StatusOr<Operand> ParseCall() {
    const Token& name = Next();
    RETURN_IF_ERROR(CheckFunctionExists(ctx_, name.text, name.offset));
    Next();  // (
    std::vector<Operand> args;
    if (Peek().kind != TokenKind::kRParen) {
      do {
        ASSIGN_OR_RETURN(Operand arg, ParseExpr());
        args.push_back(std::move(arg));
      } while (Peek().kind == TokenKind::kComma && (Next(), true));
    }
    RETURN_IF_ERROR(Expect(TokenKind::kRParen, "',' or ')' in the arguments of " + name.text));
    return CheckCall(ctx_, name.text, name.offset, std::move(args));
  }

  [[gnu::noinline]] absl::StatusOr<Operand> ParseCase() {
    const size_t offset = Next().offset;
    if (!IsKeyword(Peek(), "when")) return Unexpected(Peek(), "WHEN after CASE");
    std::vector<std::pair<Operand, Operand>> whens;
    while (IsKeyword(Peek(), "when")) {
      Next();
      ASSIGN_OR_RETURN(Operand cond, ParseExpr());
      RETURN_IF_ERROR(ExpectKeyword("then", "THEN"));
      ASSIGN_OR_RETURN(Operand value, ParseExpr());
      whens.emplace_back(std::move(cond), std::move(value));
    }
    std::optional<Operand> otherwise;
    if (IsKeyword(Peek(), "else")) {
      Next();
      ASSIGN_OR_RETURN(otherwise, ParseExpr());
      RETURN_IF_ERROR(ExpectKeyword("end", "END"));
    } else {
      RETURN_IF_ERROR(ExpectKeyword("end", "WHEN, ELSE or END"));
    }
    return CheckCase(ctx_, offset, std::move(whens), std::move(otherwise));
  }

  CompileContext& ctx_;
  const std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<Operand> ParseExpression(CompileContext& ctx) { return Parser(ctx).Run(); }

}  // namespace vstream
