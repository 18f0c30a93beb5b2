#pragma once
// Private to runtime/expr: the type rules. The parser hands each construct's
// typed operands to one of the Check* functions, which validates the types,
// inserts int -> double casts, folds constant subtrees and builds the node.
//
// Type rules, in short:
//   - NULL has type kNull, which is compatible with every type.
//   - int op double -> double; int / int -> int (truncating).
//   - timestamp +/- int -> timestamp; timestamp - timestamp -> int (ms).
//   - numbers compare with numbers, strings with strings, bools with bools,
//     timestamps with timestamps, ints (epoch ms) and string literals
//     (parsed as timestamps at compile time).
//   - AND, OR, NOT, WHEN and if() conditions take bool.
//   - CASE, coalesce, if, least and greatest unify their values
//     (int + double -> double).

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/expr/nodes.h"
#include "runtime/types.h"

namespace vstream {

// Compile-wide state: the input and the offset of the first error.
struct CompileContext {
  CompileContext(std::string_view text, const Schema& schema) : text(text), schema(schema) {}

  // Records `offset` and returns InvalidArgument(message).
  absl::Status Error(size_t offset, std::string message);

  std::string_view text;
  const Schema& schema;
  size_t error_offset = 0;
  std::vector<int> fields_read;  // every field reference, in the order met
};

// A checked, typed subexpression.
struct Operand {
  NodePtr node;
  VType type = VType::kNull;
  size_t offset = 0;      // where its text starts
  int height = 1;         // height of `node`'s tree
  bool constant = false;  // reads no field, so it can be folded
  bool literal = false;   // `node` is a literal
};

// A literal operand.
Operand MakeLiteralOperand(NodePtr node, size_t offset);

// Collects the height and constness of a node's children before they are
// moved into it.
struct Shape {
  int height = 0;
  bool constant = true;
  void Add(const Operand& o) {
    height = std::max(height, o.height);
    constant = constant && o.constant;
  }
};

// Wraps a freshly built node: enforces kMaxExprDepth and folds it into a
// literal if it is constant.
absl::StatusOr<Operand> Finish(CompileContext& ctx, NodePtr node, size_t offset, Shape shape);

// The common type of two values (for CASE and friends), or nullopt.
std::optional<VType> Unify(VType a, VType b);
// Converts an int operand to double; other operands are returned unchanged.
Operand CastTo(Operand o, VType target);
// "expected BOOL operand for AND, got int" unless o is bool or NULL.
absl::Status ExpectBool(CompileContext& ctx, const Operand& o, std::string_view what);
// "expected numeric operand for abs, got string" unless o is int, double or NULL.
absl::Status ExpectNumeric(CompileContext& ctx, const Operand& o, std::string_view what);

absl::StatusOr<Operand> CheckField(CompileContext& ctx, const std::string& name, size_t offset);
absl::StatusOr<Operand> CheckNegate(CompileContext& ctx, size_t op_offset, Operand x);
absl::StatusOr<Operand> CheckArith(CompileContext& ctx, ArithOp op, size_t op_offset, Operand lhs,
                                   Operand rhs);
absl::StatusOr<Operand> CheckConcatOp(CompileContext& ctx, size_t op_offset, Operand lhs, Operand rhs);
absl::StatusOr<Operand> CheckCompare(CompileContext& ctx, CmpOp op, size_t op_offset, Operand lhs,
                                     Operand rhs);
absl::StatusOr<Operand> CheckBetween(CompileContext& ctx, bool negated, Operand x, Operand lo,
                                     Operand hi);
absl::StatusOr<Operand> CheckIn(CompileContext& ctx, bool negated, Operand x, std::vector<Operand> list);
absl::StatusOr<Operand> CheckIsNull(CompileContext& ctx, bool negated, Operand x);
// AND (is_and) or OR over two or more operands.
absl::StatusOr<Operand> CheckLogic(CompileContext& ctx, bool is_and, std::vector<Operand> operands);
absl::StatusOr<Operand> CheckNot(CompileContext& ctx, size_t op_offset, Operand x);
absl::StatusOr<Operand> CheckCase(CompileContext& ctx, size_t offset,
                                  std::vector<std::pair<Operand, Operand>> whens,
                                  std::optional<Operand> otherwise);

}  // namespace vstream
