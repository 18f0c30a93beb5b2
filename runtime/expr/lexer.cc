#include "runtime/expr/lexer.h"

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"

namespace vstream {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }

std::string Printable(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return absl::StrCat("character '", std::string(1, c), "'");
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02x", u);
  return absl::StrCat("byte ", buf);
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  std::vector<Token> Run() {
    std::vector<Token> tokens;
    while (true) {
      Token t = Next();
      const TokenKind kind = t.kind;
      tokens.push_back(std::move(t));
      if (kind == TokenKind::kEnd || kind == TokenKind::kError) break;
    }
    return tokens;
  }

 private:
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  bool AtEnd(size_t ahead = 0) const { return pos_ + ahead >= text_.size(); }

  Token Make(TokenKind kind, size_t start, std::string text = "") const {
    return Token{kind, start, pos_ - start, std::move(text)};
  }
  Token Error(size_t start, std::string message) {
    pos_ = text_.size();
    return Token{TokenKind::kError, start, 0, std::move(message)};
  }
  Token Op(TokenKind kind, size_t length) {
    const size_t start = pos_;
    pos_ += length;
    return Make(kind, start);
  }

  Token Next() {
    while (!AtEnd() && IsSpace(Peek())) ++pos_;
    const size_t start = pos_;
    if (AtEnd()) return Make(TokenKind::kEnd, start);
    const char c = Peek();
    if (IsDigit(c) || (c == '.' && IsDigit(Peek(1)))) return Number();
    if (IsIdentStart(c)) {
      while (!AtEnd() && IsIdentChar(Peek())) ++pos_;
      return Make(TokenKind::kIdent, start, std::string(text_.substr(start, pos_ - start)));
    }
    switch (c) {
      case '\'': return Quoted('\'', TokenKind::kString);
      case '`': return Quoted('`', TokenKind::kQuotedIdent);
      case '"':
        return Error(start,
                     "double quotes are not supported; use 'single quotes' for strings or "
                     "`backquotes` for field names");
      case '(': return Op(TokenKind::kLParen, 1);
      case ')': return Op(TokenKind::kRParen, 1);
      case ',': return Op(TokenKind::kComma, 1);
      case '+': return Op(TokenKind::kPlus, 1);
      case '-': return Op(TokenKind::kMinus, 1);
      case '*': return Op(TokenKind::kStar, 1);
      case '/': return Op(TokenKind::kSlash, 1);
      case '%': return Op(TokenKind::kPercent, 1);
      case '=': return Op(TokenKind::kEq, Peek(1) == '=' ? 2 : 1);
      case '!':
        if (Peek(1) == '=') return Op(TokenKind::kNe, 2);
        return Error(start, "unexpected character '!', did you mean '!=' or NOT?");
      case '<':
        if (Peek(1) == '=') return Op(TokenKind::kLe, 2);
        if (Peek(1) == '>') return Op(TokenKind::kNe, 2);
        return Op(TokenKind::kLt, 1);
      case '>':
        if (Peek(1) == '=') return Op(TokenKind::kGe, 2);
        return Op(TokenKind::kGt, 1);
      case '|':
        if (Peek(1) == '|') return Op(TokenKind::kConcat, 2);
        return Error(start, "unexpected character '|', did you mean '||' or OR?");
      case '&': return Error(start, "unexpected character '&', did you mean AND?");
      default: return Error(start, absl::StrCat("unexpected ", Printable(c)));
    }
  }

  Token Number() {
    const size_t start = pos_;
    bool is_double = false;
    while (IsDigit(Peek())) ++pos_;
    if (Peek() == '.') {
      is_double = true;
      ++pos_;
      while (IsDigit(Peek())) ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      size_t digits = 1;
      if (Peek(1) == '+' || Peek(1) == '-') digits = 2;
      if (IsDigit(Peek(digits))) {
        is_double = true;
        pos_ += digits;
        while (IsDigit(Peek())) ++pos_;
      }
    }
    if (IsIdentChar(Peek()) || Peek() == '.') {
      while (IsIdentChar(Peek()) || Peek() == '.') ++pos_;
      return Error(start, absl::StrCat("invalid number '", AV(text_.substr(start, pos_ - start)), "'"));
    }
    return Make(is_double ? TokenKind::kDouble : TokenKind::kInt, start,
                std::string(text_.substr(start, pos_ - start)));
  }

  // 'text' or `name`; the quote character is escaped by doubling it.
  Token Quoted(char quote, TokenKind kind) {
    const size_t start = pos_;
    ++pos_;
    std::string value;
    while (true) {
      if (AtEnd()) {
        return Error(start, kind == TokenKind::kString ? "unterminated string literal"
                                                       : "unterminated quoted field name");
      }
      const char c = Peek();
      ++pos_;
      if (c == quote) {
        if (Peek() != quote) break;
        ++pos_;
      }
      value.push_back(c);
    }
    if (kind == TokenKind::kQuotedIdent && value.empty()) return Error(start, "empty quoted field name");
    return Make(kind, start, std::move(value));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<Token> Tokenize(std::string_view text) { return Lexer(text).Run(); }

bool IsKeyword(const Token& token, std::string_view keyword) {
  return token.kind == TokenKind::kIdent && absl::EqualsIgnoreCase(AV(token.text), AV(keyword));
}

}  // namespace vstream
