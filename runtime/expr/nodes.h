#pragma once
// Private to runtime/expr: factories for the operator, literal and field
// nodes. The type checker (checker.cc) decides every type and inserts the
// casts; these factories trust it. Functions live in functions.h.

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/expr/expr_node.h"

namespace vstream {

using NodePtr = std::unique_ptr<ExprNode>;

// The representation both operands of a numeric operator or a comparison
// have after the checker's casts. Bool and timestamp compare as kInt.
enum class OperandKind : uint8_t { kInt, kDouble, kString };

enum class ArithOp : uint8_t { kAdd, kSub, kMul, kDiv, kMod };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

const char* ArithOpName(ArithOp op);  // "+", "-", ...
const char* CmpOpName(CmpOp op);      // "=", "!=", ...

// A NULL constant of static type `type` (kNull for a bare NULL literal).
NodePtr MakeNullLiteral(VType type);
// A non-null constant of a non-string type.
NodePtr MakeScalarLiteral(VType type, Scalar value);
NodePtr MakeStringLiteral(std::string value);
// Reads row[index]; a row shorter than the schema reads as NULL.
NodePtr MakeFieldRef(size_t index, VType type);

NodePtr MakeIntToDouble(NodePtr child);
// Unary minus over `kind` (kInt or kDouble); the node has the child's type.
NodePtr MakeNegate(OperandKind kind, NodePtr child);
// Integer arithmetic wraps around on overflow; division and modulo by zero
// give NULL (for doubles too).
NodePtr MakeArith(ArithOp op, OperandKind kind, VType result, NodePtr lhs, NodePtr rhs);
NodePtr MakeCompare(CmpOp op, OperandKind kind, NodePtr lhs, NodePtr rhs);
// x [NOT] BETWEEN lo AND hi, i.e. lo <= x AND x <= hi with NULL logic.
NodePtr MakeBetween(OperandKind kind, bool negated, NodePtr x, NodePtr lo, NodePtr hi);
// x [NOT] IN (list): NULL if x is NULL, or if no element matches and one is NULL.
NodePtr MakeIn(OperandKind kind, bool negated, NodePtr x, std::vector<NodePtr> list);
NodePtr MakeIsNull(bool negated, NodePtr x);

// Three-valued AND / OR over two or more bool operands, short-circuiting.
NodePtr MakeAnd(std::vector<NodePtr> operands);
NodePtr MakeOr(std::vector<NodePtr> operands);
NodePtr MakeNot(NodePtr operand);

// CASE WHEN c1 THEN v1 ... ELSE e END; the values already have type `type`.
NodePtr MakeCase(VType type, std::vector<std::pair<NodePtr, NodePtr>> whens, NodePtr otherwise);

// Concatenates the text of its parts (of any type). With skip_nulls a NULL
// part is skipped (concat()); without, any NULL part makes the result NULL (||).
NodePtr MakeConcat(std::vector<NodePtr> parts, bool skip_nulls);

}  // namespace vstream
