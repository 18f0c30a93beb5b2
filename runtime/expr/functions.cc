#include "runtime/expr/functions.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace vstream {
namespace {

// ---- Nodes ----

enum class MathFn : uint8_t { kSqrt, kLn, kLog10, kExp, kFloor, kCeil, kRound };

template <MathFn kFn>
class MathNode final : public ExprNode {
 public:
  explicit MathNode(NodePtr x) : ExprNode(VType::kDouble), x_(std::move(x)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar v;
    if (!x_->EvalScalar(row, &v)) return false;
    const double x = v.d;
    double r;
    if constexpr (kFn == MathFn::kSqrt) {
      if (x < 0) return false;
      r = std::sqrt(x);
    } else if constexpr (kFn == MathFn::kLn) {
      if (x <= 0) return false;
      r = std::log(x);
    } else if constexpr (kFn == MathFn::kLog10) {
      if (x <= 0) return false;
      r = std::log10(x);
    } else if constexpr (kFn == MathFn::kExp) {
      r = std::exp(x);
    } else if constexpr (kFn == MathFn::kFloor) {
      r = std::floor(x);
    } else if constexpr (kFn == MathFn::kCeil) {
      r = std::ceil(x);
    } else {
      r = std::round(x);
    }
    if (std::isnan(r)) return false;
    out->d = r;
    return true;
  }

 private:
  const NodePtr x_;
};

class PowNode final : public ExprNode {
 public:
  PowNode(NodePtr x, NodePtr y) : ExprNode(VType::kDouble), x_(std::move(x)), y_(std::move(y)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar x, y;
    if (!x_->EvalScalar(row, &x) || !y_->EvalScalar(row, &y)) return false;
    const double r = std::pow(x.d, y.d);
    if (std::isnan(r)) return false;
    out->d = r;
    return true;
  }

 private:
  const NodePtr x_, y_;
};

class AbsNode final : public ExprNode {
 public:
  explicit AbsNode(NodePtr x) : ExprNode(x->type()), x_(std::move(x)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar v;
    if (!x_->EvalScalar(row, &v)) return false;
    if (type() == VType::kDouble) {
      out->d = std::fabs(v.d);
    } else {
      out->i = v.i < 0 ? static_cast<int64_t>(0 - static_cast<uint64_t>(v.i)) : v.i;  // abs(MIN) wraps
    }
    return true;
  }

 private:
  const NodePtr x_;
};

// round(x, digits); digits may be negative (round(1250, -2) = 1300).
class RoundDigitsNode final : public ExprNode {
 public:
  RoundDigitsNode(NodePtr x, NodePtr digits)
      : ExprNode(x->type()), x_(std::move(x)), digits_(std::move(digits)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar v, d;
    if (!x_->EvalScalar(row, &v) || !digits_->EvalScalar(row, &d)) return false;
    if (type() == VType::kDouble) {
      if (std::isinf(v.d) || d.i > 300) {
        out->d = v.d;
      } else if (d.i < -308) {
        out->d = std::copysign(0.0, v.d);
      } else {
        const double scale = std::pow(10.0, static_cast<double>(d.i));
        const double r = std::round(v.d * scale) / scale;
        out->d = std::isfinite(r) ? r : v.d;
      }
      return true;
    }
    if (d.i >= 0) {
      out->i = v.i;
      return true;
    }
    if (d.i < -18) {
      out->i = 0;
      return true;
    }
    int64_t p = 1;
    for (int64_t k = 0; k < -d.i; ++k) p *= 10;
    const int64_t q = v.i / p, rem = v.i % p;
    int64_t rounded = q;
    if (rem >= 0 ? rem * 2 >= p : -rem * 2 >= p) rounded += v.i < 0 ? -1 : 1;
    out->i = static_cast<int64_t>(static_cast<uint64_t>(rounded) * static_cast<uint64_t>(p));  // wraps
    return true;
  }

 private:
  const NodePtr x_, digits_;
};

template <bool kGreatest>
class ScalarExtremeNode final : public ExprNode {
 public:
  ScalarExtremeNode(VType type, std::vector<NodePtr> args) : ExprNode(type), args_(std::move(args)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    const bool is_double = type() == VType::kDouble;
    bool found = false;
    for (const NodePtr& arg : args_) {
      Scalar v;
      if (!arg->EvalScalar(row, &v)) continue;
      const bool better = !found || (is_double ? (kGreatest ? v.d > out->d : v.d < out->d)
                                               : (kGreatest ? v.i > out->i : v.i < out->i));
      if (better) *out = v;
      found = true;
    }
    return found;
  }

 private:
  const std::vector<NodePtr> args_;
};

template <bool kGreatest>
class StringExtremeNode final : public ExprNode {
 public:
  explicit StringExtremeNode(std::vector<NodePtr> args) : ExprNode(VType::kString), args_(std::move(args)) {}
  bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const override {
    std::string tmp;
    bool found = false;
    for (const NodePtr& arg : args_) {
      std::string_view v;
      if (!arg->EvalString(row, &tmp, &v)) continue;
      if (!found || (kGreatest ? v > *out : v < *out)) {
        AssignView(scratch, v);
        *out = *scratch;
      }
      found = true;
    }
    return found;
  }

 private:
  const std::vector<NodePtr> args_;
};

template <bool kUpper>
class CaseMapNode final : public ExprNode {
 public:
  explicit CaseMapNode(NodePtr x) : ExprNode(VType::kString), x_(std::move(x)) {}
  bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const override {
    std::string_view v;
    if (!x_->EvalString(row, scratch, &v)) return false;
    AssignView(scratch, v);
    for (char& c : *scratch) c = kUpper ? absl::ascii_toupper(c) : absl::ascii_tolower(c);
    *out = *scratch;
    return true;
  }

 private:
  const NodePtr x_;
};

// result_id(a, b, ...): a deterministic id of its arguments, 16 hex digits
// of 64-bit FNV-1a over each argument's text with its length (a null is
// marked as such). The same inputs give the same id in every process and
// run, so a downstream system can drop results replayed after a restore.
class ResultIdNode final : public ExprNode {
 public:
  explicit ResultIdNode(std::vector<NodePtr> args) : ExprNode(VType::kString), args_(std::move(args)) {}
  bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const override {
    uint64_t h = 14695981039346656037ull;
    auto mix = [&h](unsigned char c) {
      h ^= c;
      h *= 1099511628211ull;
    };
    for (const NodePtr& arg : args_) {
      std::string_view v;
      bool present;
      if (arg->type() == VType::kString) {
        present = arg->EvalString(row, scratch, &v);
      } else {
        Scalar x;
        present = arg->EvalScalar(row, &x);
        if (present) {
          scratch->clear();
          AppendScalar(arg->type(), x, scratch);  // its text, as concat() writes it
          v = *scratch;
        }
      }
      if (!present) {
        for (int i = 0; i < 5; ++i) mix(0xff);  // null: a length no text has
        continue;
      }
      const uint32_t n = static_cast<uint32_t>(v.size());
      for (int i = 0; i < 4; ++i) mix(static_cast<unsigned char>((n >> (8 * i)) & 0xff));
      for (char c : v) mix(static_cast<unsigned char>(c));
    }
    static constexpr char kHex[] = "0123456789abcdef";
    scratch->resize(16);
    for (int i = 15; i >= 0; --i, h >>= 4) (*scratch)[i] = kHex[h & 0xf];
    *out = *scratch;
    return true;
  }

 private:
  const std::vector<NodePtr> args_;
};

bool IsUtf8Continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Byte offset `n` characters after byte offset `pos` (or the end).
size_t Utf8Advance(std::string_view s, size_t pos, uint64_t n) {
  while (n > 0 && pos < s.size()) {
    ++pos;
    while (pos < s.size() && IsUtf8Continuation(s[pos])) ++pos;
    --n;
  }
  return pos;
}

class LengthNode final : public ExprNode {
 public:
  explicit LengthNode(NodePtr x) : ExprNode(VType::kInt), x_(std::move(x)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    std::string scratch;
    std::string_view v;
    if (!x_->EvalString(row, &scratch, &v)) return false;
    int64_t n = 0;
    for (char c : v) n += IsUtf8Continuation(c) ? 0 : 1;
    out->i = n;
    return true;
  }

 private:
  const NodePtr x_;
};

class TrimNode final : public ExprNode {
 public:
  explicit TrimNode(NodePtr x) : ExprNode(VType::kString), x_(std::move(x)) {}
  bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const override {
    std::string_view v;
    if (!x_->EvalString(row, scratch, &v)) return false;
    size_t b = 0, e = v.size();
    while (b < e && absl::ascii_isspace(static_cast<unsigned char>(v[b]))) ++b;
    while (e > b && absl::ascii_isspace(static_cast<unsigned char>(v[e - 1]))) --e;
    *out = v.substr(b, e - b);
    return true;
  }

 private:
  const NodePtr x_;
};

// PostgreSQL's substr: the characters at positions [start, start + len)
// that exist, counting from 1. A negative length gives NULL.
class SubstrNode final : public ExprNode {
 public:
  SubstrNode(NodePtr s, NodePtr start, NodePtr len)
      : ExprNode(VType::kString), s_(std::move(s)), start_(std::move(start)), len_(std::move(len)) {}
  bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const override {
    std::string_view s;
    Scalar start, len;
    if (!s_->EvalString(row, scratch, &s) || !start_->EvalScalar(row, &start)) return false;
    int64_t end = std::numeric_limits<int64_t>::max();  // exclusive
    if (len_ != nullptr) {
      if (!len_->EvalScalar(row, &len) || len.i < 0) return false;
      if (start.i <= end - len.i) end = start.i + len.i;
    }
    const int64_t from = std::max<int64_t>(start.i, 1);
    if (end <= from) {
      *out = s.substr(0, 0);
      return true;
    }
    const size_t b = Utf8Advance(s, 0, static_cast<uint64_t>(from - 1));
    const size_t e = len_ == nullptr ? s.size() : Utf8Advance(s, b, static_cast<uint64_t>(end - from));
    *out = s.substr(b, e - b);
    return true;
  }

 private:
  const NodePtr s_, start_, len_;  // len_ may be null
};

class CoalesceNode final : public ExprNode {
 public:
  CoalesceNode(VType type, std::vector<NodePtr> args) : ExprNode(type), args_(std::move(args)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    for (const NodePtr& arg : args_) {
      if (arg->EvalScalar(row, out)) return true;
    }
    return false;
  }
  bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const override {
    for (const NodePtr& arg : args_) {
      if (arg->EvalString(row, scratch, out)) return true;
    }
    return false;
  }

 private:
  const std::vector<NodePtr> args_;
};

// ---- Checking ----

struct Call {
  std::string name;  // lower case
  size_t offset;
  std::vector<Operand> args;

  std::string Arg(size_t i) const { return absl::StrCat("argument ", i + 1, " for ", name); }
  Shape MakeShape() const {
    Shape shape;
    for (const Operand& a : args) shape.Add(a);
    return shape;
  }
};

absl::Status ExpectString(CompileContext& ctx, const Operand& o, std::string_view what) {
  if (o.type == VType::kString || o.type == VType::kNull) return absl::OkStatus();
  return ctx.Error(o.offset, absl::StrCat("expected STRING ", AV(what), ", got ", VTypeName(o.type)));
}

absl::Status ExpectInt(CompileContext& ctx, const Operand& o, std::string_view what) {
  if (o.type == VType::kInt || o.type == VType::kNull) return absl::OkStatus();
  return ctx.Error(o.offset, absl::StrCat("expected INT ", AV(what), ", got ", VTypeName(o.type)));
}

absl::Status ExpectAllNumeric(CompileContext& ctx, const Call& call) {
  for (size_t i = 0; i < call.args.size(); ++i) RETURN_IF_ERROR(ExpectNumeric(ctx, call.args[i], call.Arg(i)));
  return absl::OkStatus();
}

// The common type of all arguments from `first` on.
absl::StatusOr<VType> UnifyArgs(CompileContext& ctx, const Call& call, size_t first) {
  VType type = VType::kNull;
  for (size_t i = first; i < call.args.size(); ++i) {
    std::optional<VType> next = Unify(type, call.args[i].type);
    if (!next) {
      return ctx.Error(call.args[i].offset,
                       absl::StrCat(call.Arg(i), " has type ", VTypeName(call.args[i].type),
                                    ", which does not match the earlier arguments' ", VTypeName(type)));
    }
    type = *next;
  }
  return type;
}

Operand NullOf(VType type, size_t offset) { return MakeLiteralOperand(MakeNullLiteral(type), offset); }

bool HasNullArg(const Call& call) {
  for (const Operand& a : call.args) {
    if (a.type == VType::kNull) return true;
  }
  return false;
}

std::vector<NodePtr> TakeNodes(Call& call, VType cast_to) {
  std::vector<NodePtr> nodes;
  nodes.reserve(call.args.size());
  for (Operand& a : call.args) nodes.push_back(CastTo(std::move(a), cast_to).node);
  return nodes;
}

template <MathFn kFn>
absl::StatusOr<Operand> BuildDoubleMath(CompileContext& ctx, Call& call) {
  RETURN_IF_ERROR(ExpectAllNumeric(ctx, call));
  if (HasNullArg(call)) return NullOf(VType::kDouble, call.offset);
  Shape shape = call.MakeShape();
  Operand x = CastTo(std::move(call.args[0]), VType::kDouble);
  return Finish(ctx, std::make_unique<MathNode<kFn>>(std::move(x.node)), call.offset, shape);
}

// floor, ceil and one-argument round: the identity on ints.
template <MathFn kFn>
absl::StatusOr<Operand> BuildRounding(CompileContext& ctx, Call& call) {
  RETURN_IF_ERROR(ExpectAllNumeric(ctx, call));
  if (call.args[0].type != VType::kDouble) {  // int or NULL: the identity
    Operand x = std::move(call.args[0]);
    x.offset = call.offset;
    return x;
  }
  Shape shape = call.MakeShape();
  return Finish(ctx, std::make_unique<MathNode<kFn>>(std::move(call.args[0].node)), call.offset, shape);
}

absl::StatusOr<Operand> BuildAbs(CompileContext& ctx, Call& call) {
  RETURN_IF_ERROR(ExpectAllNumeric(ctx, call));
  if (HasNullArg(call)) return NullOf(VType::kNull, call.offset);
  Shape shape = call.MakeShape();
  return Finish(ctx, std::make_unique<AbsNode>(std::move(call.args[0].node)), call.offset, shape);
}

absl::StatusOr<Operand> BuildRound(CompileContext& ctx, Call& call) {
  if (call.args.size() == 1) return BuildRounding<MathFn::kRound>(ctx, call);
  RETURN_IF_ERROR(ExpectNumeric(ctx, call.args[0], call.Arg(0)));
  RETURN_IF_ERROR(ExpectInt(ctx, call.args[1], call.Arg(1)));
  const VType type = call.args[0].type;
  if (HasNullArg(call)) return NullOf(type, call.offset);
  Shape shape = call.MakeShape();
  return Finish(ctx,
                std::make_unique<RoundDigitsNode>(std::move(call.args[0].node), std::move(call.args[1].node)),
                call.offset, shape);
}

absl::StatusOr<Operand> BuildPow(CompileContext& ctx, Call& call) {
  RETURN_IF_ERROR(ExpectAllNumeric(ctx, call));
  if (HasNullArg(call)) return NullOf(VType::kDouble, call.offset);
  Shape shape = call.MakeShape();
  std::vector<NodePtr> nodes = TakeNodes(call, VType::kDouble);
  return Finish(ctx, std::make_unique<PowNode>(std::move(nodes[0]), std::move(nodes[1])), call.offset, shape);
}

template <bool kGreatest>
absl::StatusOr<Operand> BuildExtreme(CompileContext& ctx, Call& call) {
  ASSIGN_OR_RETURN(VType type, UnifyArgs(ctx, call, 0));
  if (type == VType::kNull) return NullOf(VType::kNull, call.offset);
  Shape shape = call.MakeShape();
  std::vector<NodePtr> nodes = TakeNodes(call, type);
  NodePtr node;
  if (type == VType::kString) {
    node = std::make_unique<StringExtremeNode<kGreatest>>(std::move(nodes));
  } else {
    node = std::make_unique<ScalarExtremeNode<kGreatest>>(type, std::move(nodes));
  }
  return Finish(ctx, std::move(node), call.offset, shape);
}

template <typename Node, VType kResult>
absl::StatusOr<Operand> BuildStringFn(CompileContext& ctx, Call& call) {
  RETURN_IF_ERROR(ExpectString(ctx, call.args[0], call.Arg(0)));
  if (HasNullArg(call)) return NullOf(kResult, call.offset);
  Shape shape = call.MakeShape();
  return Finish(ctx, std::make_unique<Node>(std::move(call.args[0].node)), call.offset, shape);
}

absl::StatusOr<Operand> BuildSubstr(CompileContext& ctx, Call& call) {
  RETURN_IF_ERROR(ExpectString(ctx, call.args[0], call.Arg(0)));
  for (size_t i = 1; i < call.args.size(); ++i) RETURN_IF_ERROR(ExpectInt(ctx, call.args[i], call.Arg(i)));
  if (HasNullArg(call)) return NullOf(VType::kString, call.offset);
  Shape shape = call.MakeShape();
  NodePtr len = call.args.size() > 2 ? std::move(call.args[2].node) : nullptr;
  return Finish(ctx,
                std::make_unique<SubstrNode>(std::move(call.args[0].node), std::move(call.args[1].node),
                                             std::move(len)),
                call.offset, shape);
}

absl::StatusOr<Operand> BuildConcat(CompileContext& ctx, Call& call) {
  Shape shape = call.MakeShape();
  std::vector<NodePtr> nodes = TakeNodes(call, VType::kNull);
  return Finish(ctx, MakeConcat(std::move(nodes), /*skip_nulls=*/true), call.offset, shape);
}

// now(): the wall clock (epoch milliseconds, a timestamp) when the row is
// evaluated: processing time. Never folded into a constant. Not
// deterministic: a replay gives other values (use it to measure latency,
// not to compute results).
class NowNode final : public ExprNode {
 public:
  NowNode() : ExprNode(VType::kTimestamp) {}
  bool EvalScalar(const Row&, Scalar* out) const override {
    out->i = NowMillis();
    return true;
  }
};

absl::StatusOr<Operand> BuildNow(CompileContext& ctx, Call& call) {
  Shape shape;
  shape.constant = false;
  return Finish(ctx, std::make_unique<NowNode>(), call.offset, shape);
}

absl::StatusOr<Operand> BuildResultId(CompileContext& ctx, Call& call) {
  Shape shape = call.MakeShape();
  std::vector<NodePtr> nodes = TakeNodes(call, VType::kNull);
  return Finish(ctx, std::make_unique<ResultIdNode>(std::move(nodes)), call.offset, shape);
}

absl::StatusOr<Operand> BuildCoalesce(CompileContext& ctx, Call& call) {
  ASSIGN_OR_RETURN(VType type, UnifyArgs(ctx, call, 0));
  if (type == VType::kNull) return NullOf(VType::kNull, call.offset);
  Shape shape = call.MakeShape();
  std::vector<NodePtr> nodes = TakeNodes(call, type);
  return Finish(ctx, std::make_unique<CoalesceNode>(type, std::move(nodes)), call.offset, shape);
}

absl::StatusOr<Operand> BuildIf(CompileContext& ctx, Call& call) {
  RETURN_IF_ERROR(ExpectBool(ctx, call.args[0], call.Arg(0)));
  ASSIGN_OR_RETURN(VType type, UnifyArgs(ctx, call, 1));
  if (type == VType::kNull) return NullOf(VType::kNull, call.offset);
  Shape shape = call.MakeShape();
  std::vector<std::pair<NodePtr, NodePtr>> whens;
  whens.emplace_back(std::move(call.args[0].node), CastTo(std::move(call.args[1]), type).node);
  NodePtr otherwise = CastTo(std::move(call.args[2]), type).node;
  return Finish(ctx, MakeCase(type, std::move(whens), std::move(otherwise)), call.offset, shape);
}

using Builder = absl::StatusOr<Operand> (*)(CompileContext&, Call&);

struct FunctionSpec {
  std::string_view name;
  size_t min_args;
  size_t max_args;
  Builder build;
};

constexpr size_t kVariadic = std::numeric_limits<size_t>::max();

// Sorted by name.
constexpr FunctionSpec kFunctions[] = {
    {"abs", 1, 1, &BuildAbs},
    {"ceil", 1, 1, &BuildRounding<MathFn::kCeil>},
    {"coalesce", 1, kVariadic, &BuildCoalesce},
    {"concat", 1, kVariadic, &BuildConcat},
    {"exp", 1, 1, &BuildDoubleMath<MathFn::kExp>},
    {"floor", 1, 1, &BuildRounding<MathFn::kFloor>},
    {"greatest", 1, kVariadic, &BuildExtreme<true>},
    {"if", 3, 3, &BuildIf},
    {"least", 1, kVariadic, &BuildExtreme<false>},
    {"length", 1, 1, &BuildStringFn<LengthNode, VType::kInt>},
    {"ln", 1, 1, &BuildDoubleMath<MathFn::kLn>},
    {"log10", 1, 1, &BuildDoubleMath<MathFn::kLog10>},
    {"lower", 1, 1, &BuildStringFn<CaseMapNode<false>, VType::kString>},
    {"now", 0, 0, &BuildNow},
    {"pow", 2, 2, &BuildPow},
    {"result_id", 1, kVariadic, &BuildResultId},
    {"round", 1, 2, &BuildRound},
    {"sqrt", 1, 1, &BuildDoubleMath<MathFn::kSqrt>},
    {"substr", 2, 3, &BuildSubstr},
    {"trim", 1, 1, &BuildStringFn<TrimNode, VType::kString>},
    {"upper", 1, 1, &BuildStringFn<CaseMapNode<true>, VType::kString>},
};

std::string ArgCount(size_t n) { return absl::StrCat(n, n == 1 ? " argument" : " arguments"); }

absl::StatusOr<const FunctionSpec*> FindFunction(CompileContext& ctx, std::string_view name,
                                                 size_t offset) {
  const std::string lower = absl::AsciiStrToLower(AV(name));
  for (const FunctionSpec& f : kFunctions) {
    if (f.name == lower) return &f;
  }
  if (lower == "count" || lower == "sum" || lower == "min" || lower == "max" || lower == "avg") {
    return ctx.Error(offset, absl::StrCat("'", lower,
                                          "' is an aggregate function, which is not allowed inside an "
                                          "expression"));
  }
  std::string message = absl::StrCat("unknown function '", AV(name), "', expected one of ");
  for (const FunctionSpec& f : kFunctions) {
    absl::StrAppend(&message, &f == kFunctions ? "" : ", ", AV(f.name));
  }
  return ctx.Error(offset, std::move(message));
}

}  // namespace

std::vector<std::string_view> FunctionNames() {
  std::vector<std::string_view> names;
  for (const FunctionSpec& f : kFunctions) names.push_back(f.name);
  return names;
}

absl::Status CheckFunctionExists(CompileContext& ctx, std::string_view name, size_t offset) {
  return FindFunction(ctx, name, offset).status();
}

absl::StatusOr<Operand> CheckCall(CompileContext& ctx, std::string_view name, size_t offset,
                                  std::vector<Operand> args) {
  ASSIGN_OR_RETURN(const FunctionSpec* spec, FindFunction(ctx, name, offset));
  Call call{std::string(spec->name), offset, std::move(args)};
  const size_t n = call.args.size();
  if (n < spec->min_args || n > spec->max_args) {
    std::string expected;
    if (spec->max_args == kVariadic) {
      expected = absl::StrCat("at least ", ArgCount(spec->min_args));
    } else if (spec->min_args == spec->max_args) {
      expected = ArgCount(spec->min_args);
    } else {
      expected = absl::StrCat(spec->min_args, " or ", ArgCount(spec->max_args));
    }
    return ctx.Error(offset, absl::StrCat(call.name, "() takes ", expected, ", got ", n));
  }
  return spec->build(ctx, call);
}

}  // namespace vstream
