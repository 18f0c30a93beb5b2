#include "runtime/expr/checker.h"

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace vstream {
namespace {

OperandKind KindOf(VType t) {
  switch (t) {
    case VType::kDouble: return OperandKind::kDouble;
    case VType::kString: return OperandKind::kString;
    default: return OperandKind::kInt;
  }
}

// A NULL result of type `type` replacing an operator that has a NULL operand
// and is NULL whenever an operand is.
Operand NullResult(VType type, size_t offset) {
  return MakeLiteralOperand(MakeNullLiteral(type), offset);
}

bool AnyNull(const Operand& a, const Operand& b) {
  return a.type == VType::kNull || b.type == VType::kNull;
}

// The type in which values of types a and b compare, or nullopt.
std::optional<VType> ComparableType(VType a, VType b) {
  if (a == VType::kNull) return b;
  if (b == VType::kNull) return a;
  if (a == b) return a;
  if (IsNumeric(a) && IsNumeric(b)) return VType::kDouble;
  if ((a == VType::kTimestamp && b == VType::kInt) || (a == VType::kInt && b == VType::kTimestamp)) {
    return VType::kTimestamp;
  }
  return std::nullopt;
}

// A constant string compared with a timestamp is parsed as one, at compile
// time: ts > '2024-01-02T00:00:00Z'.
absl::Status CoerceTimestampLiteral(CompileContext& ctx, Operand* o, VType other) {
  if (other != VType::kTimestamp || o->type != VType::kString || !o->constant) return absl::OkStatus();
  Datum d;
  o->node->Eval(Row(), &d);
  int64_t ms = 0;
  if (d.is_null) {
    o->node = MakeNullLiteral(VType::kTimestamp);
  } else if (ParseTimestamp(d.s, &ms)) {
    o->node = MakeScalarLiteral(VType::kTimestamp, Scalar{ms, 0});
  } else {
    return ctx.Error(o->offset, absl::StrCat("invalid timestamp '", d.s,
                                             "', expected epoch milliseconds or ISO-8601 such as "
                                             "'2024-01-02T03:04:05Z'"));
  }
  o->type = VType::kTimestamp;
  o->height = 1;
  o->literal = true;
  return absl::OkStatus();
}

}  // namespace

absl::Status CompileContext::Error(size_t offset, std::string message) {
  error_offset = offset;
  return absl::InvalidArgumentError(message);
}

Operand MakeLiteralOperand(NodePtr node, size_t offset) {
  Operand o;
  o.type = node->type();
  o.node = std::move(node);
  o.offset = offset;
  o.height = 1;
  o.constant = true;
  o.literal = true;
  return o;
}

absl::StatusOr<Operand> Finish(CompileContext& ctx, NodePtr node, size_t offset, Shape shape) {
  if (shape.height + 1 > kMaxExprDepth) {
    return ctx.Error(offset,
                     absl::StrCat("expression is nested too deeply (more than ", kMaxExprDepth, " levels)"));
  }
  if (shape.constant) {
    // Evaluate once now; the row is never read by a constant tree.
    static const Row kEmptyRow;
    Datum d;
    node->Eval(kEmptyRow, &d);
    const VType type = node->type();
    if (d.is_null) {
      node = MakeNullLiteral(type);
    } else if (type == VType::kString) {
      node = MakeStringLiteral(std::move(d.s));
    } else {
      node = MakeScalarLiteral(type, Scalar{d.i, d.d});
    }
    return MakeLiteralOperand(std::move(node), offset);
  }
  Operand o;
  o.type = node->type();
  o.node = std::move(node);
  o.offset = offset;
  o.height = shape.height + 1;
  o.constant = false;
  return o;
}

std::optional<VType> Unify(VType a, VType b) {
  if (a == VType::kNull) return b;
  if (b == VType::kNull) return a;
  if (a == b) return a;
  if (IsNumeric(a) && IsNumeric(b)) return VType::kDouble;
  return std::nullopt;
}

Operand CastTo(Operand o, VType target) {
  if (target != VType::kDouble || o.type != VType::kInt) return o;
  if (o.literal) {
    Scalar v;
    o.node->EvalScalar(Row(), &v);
    o.node = MakeScalarLiteral(VType::kDouble, Scalar{0, static_cast<double>(v.i)});
  } else {
    o.node = MakeIntToDouble(std::move(o.node));
    ++o.height;  // at most kMaxExprDepth + 1; evaluation handles that fine
  }
  o.type = VType::kDouble;
  return o;
}

absl::Status ExpectBool(CompileContext& ctx, const Operand& o, std::string_view what) {
  if (o.type == VType::kBool || o.type == VType::kNull) return absl::OkStatus();
  return ctx.Error(o.offset, absl::StrCat("expected BOOL ", AV(what), ", got ", VTypeName(o.type)));
}

absl::Status ExpectNumeric(CompileContext& ctx, const Operand& o, std::string_view what) {
  if (IsNumeric(o.type) || o.type == VType::kNull) return absl::OkStatus();
  return ctx.Error(o.offset, absl::StrCat("expected numeric ", AV(what), ", got ", VTypeName(o.type)));
}

absl::StatusOr<Operand> CheckField(CompileContext& ctx, const std::string& name, size_t offset) {
  const int index = ctx.schema.IndexOf(name);
  if (index < 0) {
    std::string message = absl::StrCat("unknown field '", name, "'");
    if (ctx.schema.size() == 0) {
      absl::StrAppend(&message, ", the input has no fields");
    } else {
      absl::StrAppend(&message, ", expected one of ");
      for (size_t i = 0; i < ctx.schema.size(); ++i) {
        absl::StrAppend(&message, i ? ", " : "", ctx.schema.field(i).name);
      }
    }
    return ctx.Error(offset, std::move(message));
  }
  ctx.fields_read.push_back(index);
  Operand o;
  o.type = ToVType(ctx.schema.field(index).type);
  o.node = MakeFieldRef(static_cast<size_t>(index), o.type);
  o.offset = offset;
  return o;
}

absl::StatusOr<Operand> CheckNegate(CompileContext& ctx, size_t op_offset, Operand x) {
  if (x.type == VType::kNull) return NullResult(VType::kNull, op_offset);
  if (!IsNumeric(x.type)) {
    return ctx.Error(x.offset, absl::StrCat("expected numeric operand for unary -, got ", VTypeName(x.type)));
  }
  Shape shape;
  shape.Add(x);
  return Finish(ctx, MakeNegate(KindOf(x.type), std::move(x.node)), op_offset, shape);
}

absl::StatusOr<Operand> CheckArith(CompileContext& ctx, ArithOp op, size_t op_offset, Operand lhs,
                                   Operand rhs) {
  const std::string what = absl::StrCat("operand for ", ArithOpName(op));
  const bool additive = op == ArithOp::kAdd || op == ArithOp::kSub;
  for (const Operand* o : {&lhs, &rhs}) {
    if (additive && o->type == VType::kTimestamp) continue;
    if (IsNumeric(o->type) || o->type == VType::kNull) continue;
    std::string message = absl::StrCat("expected numeric ", what, ", got ", VTypeName(o->type));
    if (o->type == VType::kString && op == ArithOp::kAdd) absl::StrAppend(&message, "; use || to concatenate strings");
    return ctx.Error(o->offset, std::move(message));
  }

  const bool lts = lhs.type == VType::kTimestamp, rts = rhs.type == VType::kTimestamp;
  VType result;
  OperandKind kind = OperandKind::kInt;
  if (lts && rts) {
    if (op == ArithOp::kAdd) return ctx.Error(op_offset, "cannot add two timestamps");
    result = VType::kInt;  // difference in milliseconds
  } else if (lts || rts) {
    const Operand& other = lts ? rhs : lhs;
    if (other.type == VType::kDouble) {
      return ctx.Error(other.offset, absl::StrCat("expected int (milliseconds) ", what,
                                                  " with a timestamp, got double"));
    }
    if (rts && op == ArithOp::kSub) return ctx.Error(op_offset, "cannot subtract a timestamp from a number");
    result = VType::kTimestamp;
  } else if (lhs.type == VType::kDouble || rhs.type == VType::kDouble) {
    result = VType::kDouble;
    kind = OperandKind::kDouble;
  } else if (lhs.type == VType::kNull && rhs.type == VType::kNull) {
    result = VType::kNull;
  } else {
    result = VType::kInt;
  }
  if (AnyNull(lhs, rhs)) return NullResult(result, lhs.offset);

  Shape shape;
  shape.Add(lhs);
  shape.Add(rhs);
  const size_t offset = lhs.offset;
  lhs = CastTo(std::move(lhs), result);
  rhs = CastTo(std::move(rhs), result);
  return Finish(ctx, MakeArith(op, kind, result, std::move(lhs.node), std::move(rhs.node)), offset, shape);
}

absl::StatusOr<Operand> CheckConcatOp(CompileContext& ctx, size_t op_offset, Operand lhs, Operand rhs) {
  // Like PostgreSQL: 'bed ' || 12 is fine, 1 || 2 is not.
  if (lhs.type != VType::kString && rhs.type != VType::kString && !AnyNull(lhs, rhs)) {
    return ctx.Error(op_offset, absl::StrCat("expected a STRING operand for ||, got ", VTypeName(lhs.type),
                                             " and ", VTypeName(rhs.type)));
  }
  if (AnyNull(lhs, rhs)) return NullResult(VType::kString, lhs.offset);
  Shape shape;
  shape.Add(lhs);
  shape.Add(rhs);
  const size_t offset = lhs.offset;
  std::vector<NodePtr> parts;
  parts.push_back(std::move(lhs.node));
  parts.push_back(std::move(rhs.node));
  return Finish(ctx, MakeConcat(std::move(parts), /*skip_nulls=*/false), offset, shape);
}

absl::StatusOr<Operand> CheckCompare(CompileContext& ctx, CmpOp op, size_t op_offset, Operand lhs,
                                     Operand rhs) {
  RETURN_IF_ERROR(CoerceTimestampLiteral(ctx, &lhs, rhs.type));
  RETURN_IF_ERROR(CoerceTimestampLiteral(ctx, &rhs, lhs.type));
  const std::optional<VType> common = ComparableType(lhs.type, rhs.type);
  if (!common) {
    return ctx.Error(op_offset, absl::StrCat("cannot compare ", VTypeName(lhs.type), " with ",
                                             VTypeName(rhs.type), " using ", CmpOpName(op)));
  }
  if (AnyNull(lhs, rhs)) return NullResult(VType::kBool, lhs.offset);
  Shape shape;
  shape.Add(lhs);
  shape.Add(rhs);
  const size_t offset = lhs.offset;
  lhs = CastTo(std::move(lhs), *common);
  rhs = CastTo(std::move(rhs), *common);
  return Finish(ctx, MakeCompare(op, KindOf(*common), std::move(lhs.node), std::move(rhs.node)), offset,
                shape);
}

absl::StatusOr<Operand> CheckBetween(CompileContext& ctx, bool negated, Operand x, Operand lo,
                                     Operand hi) {
  RETURN_IF_ERROR(CoerceTimestampLiteral(ctx, &lo, x.type));
  RETURN_IF_ERROR(CoerceTimestampLiteral(ctx, &hi, x.type));
  std::optional<VType> common = x.type;
  for (Operand* bound : {&lo, &hi}) {
    std::optional<VType> next = ComparableType(*common, bound->type);
    if (!next) {
      return ctx.Error(bound->offset, absl::StrCat("BETWEEN bound of type ", VTypeName(bound->type),
                                                   " cannot be compared with ", VTypeName(x.type)));
    }
    common = next;
  }
  if (x.type == VType::kNull) return NullResult(VType::kBool, x.offset);
  Shape shape;
  shape.Add(x);
  shape.Add(lo);
  shape.Add(hi);
  const size_t offset = x.offset;
  x = CastTo(std::move(x), *common);
  lo = CastTo(std::move(lo), *common);
  hi = CastTo(std::move(hi), *common);
  return Finish(ctx,
                MakeBetween(KindOf(*common), negated, std::move(x.node), std::move(lo.node), std::move(hi.node)),
                offset, shape);
}

absl::StatusOr<Operand> CheckIn(CompileContext& ctx, bool negated, Operand x, std::vector<Operand> list) {
  std::optional<VType> common = x.type;
  for (Operand& e : list) {
    RETURN_IF_ERROR(CoerceTimestampLiteral(ctx, &e, x.type));
    std::optional<VType> next = ComparableType(*common, e.type);
    if (!next) {
      return ctx.Error(e.offset, absl::StrCat("IN list value of type ", VTypeName(e.type),
                                              " cannot be compared with ", VTypeName(*common)));
    }
    common = next;
  }
  if (x.type == VType::kNull) return NullResult(VType::kBool, x.offset);
  Shape shape;
  shape.Add(x);
  for (const Operand& e : list) shape.Add(e);
  const size_t offset = x.offset;
  x = CastTo(std::move(x), *common);
  std::vector<NodePtr> nodes;
  nodes.reserve(list.size());
  for (Operand& e : list) nodes.push_back(CastTo(std::move(e), *common).node);
  return Finish(ctx, MakeIn(KindOf(*common), negated, std::move(x.node), std::move(nodes)), offset, shape);
}

absl::StatusOr<Operand> CheckIsNull(CompileContext& ctx, bool negated, Operand x) {
  Shape shape;
  shape.Add(x);
  const size_t offset = x.offset;
  return Finish(ctx, MakeIsNull(negated, std::move(x.node)), offset, shape);
}

absl::StatusOr<Operand> CheckLogic(CompileContext& ctx, bool is_and, std::vector<Operand> operands) {
  const char* what = is_and ? "operand for AND" : "operand for OR";
  Shape shape;
  for (const Operand& o : operands) {
    RETURN_IF_ERROR(ExpectBool(ctx, o, what));
    shape.Add(o);
  }
  const size_t offset = operands.front().offset;
  std::vector<NodePtr> nodes;
  nodes.reserve(operands.size());
  for (Operand& o : operands) nodes.push_back(std::move(o.node));
  return Finish(ctx, is_and ? MakeAnd(std::move(nodes)) : MakeOr(std::move(nodes)), offset, shape);
}

absl::StatusOr<Operand> CheckNot(CompileContext& ctx, size_t op_offset, Operand x) {
  RETURN_IF_ERROR(ExpectBool(ctx, x, "operand for NOT"));
  if (x.type == VType::kNull) return NullResult(VType::kBool, op_offset);
  Shape shape;
  shape.Add(x);
  return Finish(ctx, MakeNot(std::move(x.node)), op_offset, shape);
}

absl::StatusOr<Operand> CheckCase(CompileContext& ctx, size_t offset,
                                  std::vector<std::pair<Operand, Operand>> whens,
                                  std::optional<Operand> otherwise) {
  VType type = VType::kNull;
  Shape shape;
  auto add_value = [&](const Operand& v) -> absl::Status {
    std::optional<VType> next = Unify(type, v.type);
    if (!next) {
      return ctx.Error(v.offset, absl::StrCat("CASE branch has type ", VTypeName(v.type),
                                              ", which does not match the earlier branches' ",
                                              VTypeName(type)));
    }
    type = *next;
    shape.Add(v);
    return absl::OkStatus();
  };
  for (const auto& [cond, value] : whens) {
    RETURN_IF_ERROR(ExpectBool(ctx, cond, "condition for WHEN"));
    shape.Add(cond);
    RETURN_IF_ERROR(add_value(value));
  }
  if (otherwise) RETURN_IF_ERROR(add_value(*otherwise));
  if (type == VType::kNull) return NullResult(VType::kNull, offset);

  std::vector<std::pair<NodePtr, NodePtr>> nodes;
  nodes.reserve(whens.size());
  for (auto& [cond, value] : whens) {
    nodes.emplace_back(std::move(cond.node), CastTo(std::move(value), type).node);
  }
  NodePtr else_node =
      otherwise ? CastTo(std::move(*otherwise), type).node : MakeNullLiteral(type);
  return Finish(ctx, MakeCase(type, std::move(nodes), std::move(else_node)), offset, shape);
}

}  // namespace vstream
