#pragma once
// Private to runtime/expr: recursive-descent parser. It type-checks as it
// goes (through checker.h), so its result is a ready-to-run node tree.
//
// Precedence, loosest first:
//   OR
//   AND
//   NOT
//   = == != <> < <= > >=, [NOT] BETWEEN, [NOT] IN, IS [NOT] NULL
//   ||
//   + -
//   * / %
//   unary - +
//   literals, fields, f(...), CASE, ( ... )

#include "absl/status/statusor.h"
#include "runtime/expr/checker.h"

namespace vstream {

// Parses and checks all of ctx.text. On error, ctx.error_offset is set.
absl::StatusOr<Operand> ParseExpression(CompileContext& ctx);

}  // namespace vstream
