#pragma once
// Private to runtime/expr: splits expression text into tokens.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace vstream {

enum class TokenKind : uint8_t {
  kEnd,          // end of input
  kError,        // malformed input; `text` holds the message
  kInt,          // 42 (text: the digits)
  kDouble,       // 3.5, 1e-3, .5 (text: the literal)
  kString,       // 'it''s' (text: the decoded value)
  kIdent,        // hr, AND, round (text as written)
  kQuotedIdent,  // `odd name` (text: the decoded name); never a keyword
  kLParen,
  kRParen,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kEq,      // = or ==
  kNe,      // != or <>
  kLt,
  kLe,
  kGt,
  kGe,
  kConcat,  // ||
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  size_t offset = 0;  // byte offset in the expression text
  size_t length = 0;  // bytes of source text
  std::string text;
};

// Tokenizes all of `text`. The result always ends with a kEnd token, or with
// a kError token at the first malformed input, so that the parser reports
// errors in text order.
std::vector<Token> Tokenize(std::string_view text);

// Case-insensitive comparison of an unquoted identifier with a keyword.
bool IsKeyword(const Token& token, std::string_view keyword);

}  // namespace vstream
