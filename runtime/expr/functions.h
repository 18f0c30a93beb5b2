#pragma once
// Private to runtime/expr: the built-in scalar functions.
//
//   abs(x)                 int -> int, double -> double
//   round(x[, digits])     half away from zero; keeps x's type
//   floor(x), ceil(x)      keep x's type
//   sqrt, ln, log10, exp   -> double; NULL outside the domain (sqrt(-1), ln(0))
//   pow(x, y)              -> double; NULL if the result is not a number
//   least(...), greatest(...)  ignore NULL arguments; NULL only if all are
//   lower(s), upper(s)     ASCII case mapping
//   length(s)              characters (UTF-8 code points)
//   trim(s)                strips leading and trailing whitespace
//   substr(s, start[, len])  1-based, in characters, as in PostgreSQL
//   concat(...)            text of all non-NULL arguments, of any type
//   coalesce(...)          first non-NULL argument
//   if(cond, a, b)         a if cond is TRUE, else b
//
// Names are case-insensitive.

#include <cstddef>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/expr/checker.h"

namespace vstream {

// Checks a call of function `name` (as written) at `offset` and builds it.
absl::StatusOr<Operand> CheckCall(CompileContext& ctx, std::string_view name, size_t offset,
                                  std::vector<Operand> args);

// OK if `name` is a function; otherwise the error a call of it would get
// ("unknown function 'foo', expected one of abs, ceil, ...").
absl::Status CheckFunctionExists(CompileContext& ctx, std::string_view name, size_t offset);

// The function names, sorted.
std::vector<std::string_view> FunctionNames();

}  // namespace vstream
