#include "runtime/expr/nodes.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"

namespace vstream {

const char* VTypeName(VType type) {
  switch (type) {
    case VType::kNull: return "null";
    case VType::kInt: return "int";
    case VType::kDouble: return "double";
    case VType::kString: return "string";
    case VType::kBool: return "bool";
    case VType::kTimestamp: return "timestamp";
  }
  return "unknown";
}

VType ToVType(FieldType type) {
  switch (type) {
    case FieldType::kInt: return VType::kInt;
    case FieldType::kDouble: return VType::kDouble;
    case FieldType::kString: return VType::kString;
    case FieldType::kBool: return VType::kBool;
    case FieldType::kTimestamp: return VType::kTimestamp;
  }
  return VType::kNull;
}

FieldType ToFieldType(VType type) {
  switch (type) {
    case VType::kNull: return FieldType::kInt;
    case VType::kInt: return FieldType::kInt;
    case VType::kDouble: return FieldType::kDouble;
    case VType::kString: return FieldType::kString;
    case VType::kBool: return FieldType::kBool;
    case VType::kTimestamp: return FieldType::kTimestamp;
  }
  return FieldType::kInt;
}

const char* ArithOpName(ArithOp op) {
  switch (op) {
    case ArithOp::kAdd: return "+";
    case ArithOp::kSub: return "-";
    case ArithOp::kMul: return "*";
    case ArithOp::kDiv: return "/";
    case ArithOp::kMod: return "%";
  }
  return "?";
}

const char* CmpOpName(CmpOp op) {
  switch (op) {
    case CmpOp::kEq: return "=";
    case CmpOp::kNe: return "!=";
    case CmpOp::kLt: return "<";
    case CmpOp::kLe: return "<=";
    case CmpOp::kGt: return ">";
    case CmpOp::kGe: return ">=";
  }
  return "?";
}

// The base versions are only reached through a checker bug (asking a string
// node for a scalar or the reverse); they read as NULL rather than crash.
bool ExprNode::EvalScalar(const Row&, Scalar*) const { return false; }
bool ExprNode::EvalString(const Row&, std::string*, std::string_view*) const { return false; }

void ExprNode::Eval(const Row& row, Datum* out) const {
  if (type_ == VType::kString) {
    std::string_view v;
    if (!EvalString(row, &out->s, &v)) {
      out->is_null = true;
      return;
    }
    AssignView(&out->s, v);
    out->is_null = false;
    return;
  }
  Scalar v;
  if (!EvalScalar(row, &v)) {
    out->is_null = true;
    return;
  }
  out->is_null = false;
  out->i = v.i;
  out->d = v.d;
}

void AppendScalar(VType type, const Scalar& v, std::string* out) {
  switch (type) {
    case VType::kInt: absl::StrAppend(out, v.i); break;
    case VType::kDouble: absl::StrAppend(out, v.d); break;
    case VType::kBool: out->append(v.i ? "true" : "false"); break;
    case VType::kTimestamp: AppendTimestamp(v.i, out); break;
    case VType::kNull:
    case VType::kString: break;
  }
}

namespace {

// ---- Literals and fields ----

class NullLiteral final : public ExprNode {
 public:
  using ExprNode::ExprNode;
  bool EvalScalar(const Row&, Scalar*) const override { return false; }
  bool EvalString(const Row&, std::string*, std::string_view*) const override { return false; }
};

class ScalarLiteral final : public ExprNode {
 public:
  ScalarLiteral(VType type, Scalar value) : ExprNode(type), value_(value) {}
  bool EvalScalar(const Row&, Scalar* out) const override {
    *out = value_;
    return true;
  }

 private:
  const Scalar value_;
};

class StringLiteral final : public ExprNode {
 public:
  explicit StringLiteral(std::string value) : ExprNode(VType::kString), value_(std::move(value)) {}
  bool EvalString(const Row&, std::string*, std::string_view* out) const override {
    *out = value_;
    return true;
  }

 private:
  const std::string value_;
};

class ScalarField final : public ExprNode {
 public:
  ScalarField(size_t index, VType type) : ExprNode(type), index_(index) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    if (index_ >= row.size()) return false;
    const Datum& d = row[index_];
    if (d.is_null) return false;
    out->i = d.i;
    out->d = d.d;
    return true;
  }

 private:
  const size_t index_;
};

class StringField final : public ExprNode {
 public:
  explicit StringField(size_t index) : ExprNode(VType::kString), index_(index) {}
  bool EvalString(const Row& row, std::string*, std::string_view* out) const override {
    if (index_ >= row.size()) return false;
    const Datum& d = row[index_];
    if (d.is_null) return false;
    *out = d.s;
    return true;
  }

 private:
  const size_t index_;
};

// ---- Arithmetic ----

class IntToDouble final : public ExprNode {
 public:
  explicit IntToDouble(NodePtr child) : ExprNode(VType::kDouble), child_(std::move(child)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar v;
    if (!child_->EvalScalar(row, &v)) return false;
    out->d = static_cast<double>(v.i);
    return true;
  }

 private:
  const NodePtr child_;
};

template <OperandKind kKind>
class Negate final : public ExprNode {
 public:
  explicit Negate(NodePtr child) : ExprNode(child->type()), child_(std::move(child)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar v;
    if (!child_->EvalScalar(row, &v)) return false;
    if constexpr (kKind == OperandKind::kInt) {
      out->i = static_cast<int64_t>(0 - static_cast<uint64_t>(v.i));  // wraps
    } else {
      out->d = -v.d;
    }
    return true;
  }

 private:
  const NodePtr child_;
};

template <ArithOp kOp>
class IntArith final : public ExprNode {
 public:
  IntArith(VType result, NodePtr lhs, NodePtr rhs)
      : ExprNode(result), lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar a, b;
    if (!lhs_->EvalScalar(row, &a) || !rhs_->EvalScalar(row, &b)) return false;
    // Unsigned arithmetic wraps instead of being undefined on overflow.
    const uint64_t x = static_cast<uint64_t>(a.i), y = static_cast<uint64_t>(b.i);
    if constexpr (kOp == ArithOp::kAdd) {
      out->i = static_cast<int64_t>(x + y);
    } else if constexpr (kOp == ArithOp::kSub) {
      out->i = static_cast<int64_t>(x - y);
    } else if constexpr (kOp == ArithOp::kMul) {
      out->i = static_cast<int64_t>(x * y);
    } else if constexpr (kOp == ArithOp::kDiv) {
      if (b.i == 0) return false;
      out->i = b.i == -1 ? static_cast<int64_t>(0 - x) : a.i / b.i;  // INT64_MIN / -1 wraps
    } else {
      if (b.i == 0) return false;
      out->i = b.i == -1 ? 0 : a.i % b.i;
    }
    return true;
  }

 private:
  const NodePtr lhs_, rhs_;
};

template <ArithOp kOp>
class DoubleArith final : public ExprNode {
 public:
  DoubleArith(NodePtr lhs, NodePtr rhs)
      : ExprNode(VType::kDouble), lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar a, b;
    if (!lhs_->EvalScalar(row, &a) || !rhs_->EvalScalar(row, &b)) return false;
    if constexpr (kOp == ArithOp::kAdd) {
      out->d = a.d + b.d;
    } else if constexpr (kOp == ArithOp::kSub) {
      out->d = a.d - b.d;
    } else if constexpr (kOp == ArithOp::kMul) {
      out->d = a.d * b.d;
    } else if constexpr (kOp == ArithOp::kDiv) {
      if (b.d == 0) return false;
      out->d = a.d / b.d;
    } else {
      if (b.d == 0) return false;
      out->d = std::fmod(a.d, b.d);
    }
    return true;
  }

 private:
  const NodePtr lhs_, rhs_;
};

// ---- Comparisons ----

// How each OperandKind reads its value from a child. Scratch is where a
// computed string lands; numeric kinds need none.
struct Empty {};

struct IntReader {
  using Value = int64_t;
  using Scratch = Empty;
  static bool Get(const ExprNode& n, const Row& row, Scratch*, Value* v) {
    Scalar s;
    if (!n.EvalScalar(row, &s)) return false;
    *v = s.i;
    return true;
  }
};

struct DoubleReader {
  using Value = double;
  using Scratch = Empty;
  static bool Get(const ExprNode& n, const Row& row, Scratch*, Value* v) {
    Scalar s;
    if (!n.EvalScalar(row, &s)) return false;
    *v = s.d;
    return true;
  }
};

struct StringReader {
  using Value = std::string_view;
  using Scratch = std::string;
  static bool Get(const ExprNode& n, const Row& row, Scratch* scratch, Value* v) {
    return n.EvalString(row, scratch, v);
  }
};

template <CmpOp kOp, typename T>
bool Apply(const T& a, const T& b) {
  if constexpr (kOp == CmpOp::kEq) {
    return a == b;
  } else if constexpr (kOp == CmpOp::kNe) {
    return a != b;
  } else if constexpr (kOp == CmpOp::kLt) {
    return a < b;
  } else if constexpr (kOp == CmpOp::kLe) {
    return a <= b;
  } else if constexpr (kOp == CmpOp::kGt) {
    return a > b;
  } else {
    return a >= b;
  }
}

template <CmpOp kOp, typename Reader>
class Compare final : public ExprNode {
 public:
  Compare(NodePtr lhs, NodePtr rhs)
      : ExprNode(VType::kBool), lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    typename Reader::Scratch sa, sb;
    typename Reader::Value a{}, b{};
    if (!Reader::Get(*lhs_, row, &sa, &a) || !Reader::Get(*rhs_, row, &sb, &b)) return false;
    out->i = Apply<kOp>(a, b) ? 1 : 0;
    return true;
  }

 private:
  const NodePtr lhs_, rhs_;
};

template <typename Reader>
NodePtr MakeCompareFor(CmpOp op, NodePtr lhs, NodePtr rhs) {
  switch (op) {
    case CmpOp::kEq: return std::make_unique<Compare<CmpOp::kEq, Reader>>(std::move(lhs), std::move(rhs));
    case CmpOp::kNe: return std::make_unique<Compare<CmpOp::kNe, Reader>>(std::move(lhs), std::move(rhs));
    case CmpOp::kLt: return std::make_unique<Compare<CmpOp::kLt, Reader>>(std::move(lhs), std::move(rhs));
    case CmpOp::kLe: return std::make_unique<Compare<CmpOp::kLe, Reader>>(std::move(lhs), std::move(rhs));
    case CmpOp::kGt: return std::make_unique<Compare<CmpOp::kGt, Reader>>(std::move(lhs), std::move(rhs));
    case CmpOp::kGe: return std::make_unique<Compare<CmpOp::kGe, Reader>>(std::move(lhs), std::move(rhs));
  }
  return nullptr;
}

template <typename Reader>
class Between final : public ExprNode {
 public:
  Between(bool negated, NodePtr x, NodePtr lo, NodePtr hi)
      : ExprNode(VType::kBool), negated_(negated), x_(std::move(x)), lo_(std::move(lo)),
        hi_(std::move(hi)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    typename Reader::Scratch sx, slo, shi;
    typename Reader::Value x{}, lo{}, hi{};
    if (!Reader::Get(*x_, row, &sx, &x)) return false;
    const bool lo_known = Reader::Get(*lo_, row, &slo, &lo);
    const bool hi_known = Reader::Get(*hi_, row, &shi, &hi);
    // lo <= x AND x <= hi, three-valued.
    if ((lo_known && !(lo <= x)) || (hi_known && !(x <= hi))) {
      out->i = negated_ ? 1 : 0;
      return true;
    }
    if (!lo_known || !hi_known) return false;
    out->i = negated_ ? 0 : 1;
    return true;
  }

 private:
  const bool negated_;
  const NodePtr x_, lo_, hi_;
};

template <typename Reader>
class In final : public ExprNode {
 public:
  In(bool negated, NodePtr x, std::vector<NodePtr> list)
      : ExprNode(VType::kBool), negated_(negated), x_(std::move(x)), list_(std::move(list)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    typename Reader::Scratch sx, se;
    typename Reader::Value x{}, e{};
    if (!Reader::Get(*x_, row, &sx, &x)) return false;
    bool saw_null = false;
    for (const NodePtr& node : list_) {
      if (!Reader::Get(*node, row, &se, &e)) {
        saw_null = true;
      } else if (e == x) {
        out->i = negated_ ? 0 : 1;
        return true;
      }
    }
    if (saw_null) return false;
    out->i = negated_ ? 1 : 0;
    return true;
  }

 private:
  const bool negated_;
  const NodePtr x_;
  const std::vector<NodePtr> list_;
};

class IsNull final : public ExprNode {
 public:
  IsNull(bool negated, NodePtr x) : ExprNode(VType::kBool), negated_(negated), x_(std::move(x)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    bool is_null;
    if (x_->type() == VType::kString) {
      std::string scratch;
      std::string_view v;
      is_null = !x_->EvalString(row, &scratch, &v);
    } else {
      Scalar v;
      is_null = !x_->EvalScalar(row, &v);
    }
    out->i = is_null != negated_ ? 1 : 0;
    return true;
  }

 private:
  const bool negated_;
  const NodePtr x_;
};

// ---- Logic ----

template <bool kIsAnd>
class Logic final : public ExprNode {
 public:
  explicit Logic(std::vector<NodePtr> operands)
      : ExprNode(VType::kBool), operands_(std::move(operands)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    // AND: any FALSE decides; OR: any TRUE decides. Otherwise NULL wins.
    constexpr int64_t kDecisive = kIsAnd ? 0 : 1;
    bool saw_null = false;
    for (const NodePtr& node : operands_) {
      Scalar v;
      if (!node->EvalScalar(row, &v)) {
        saw_null = true;
      } else if ((v.i != 0 ? 1 : 0) == kDecisive) {
        out->i = kDecisive;
        return true;
      }
    }
    if (saw_null) return false;
    out->i = 1 - kDecisive;
    return true;
  }

 private:
  const std::vector<NodePtr> operands_;
};

class Not final : public ExprNode {
 public:
  explicit Not(NodePtr x) : ExprNode(VType::kBool), x_(std::move(x)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    Scalar v;
    if (!x_->EvalScalar(row, &v)) return false;
    out->i = v.i != 0 ? 0 : 1;
    return true;
  }

 private:
  const NodePtr x_;
};

class Case final : public ExprNode {
 public:
  Case(VType type, std::vector<std::pair<NodePtr, NodePtr>> whens, NodePtr otherwise)
      : ExprNode(type), whens_(std::move(whens)), otherwise_(std::move(otherwise)) {}
  bool EvalScalar(const Row& row, Scalar* out) const override {
    return Pick(row).EvalScalar(row, out);
  }
  bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const override {
    return Pick(row).EvalString(row, scratch, out);
  }

 private:
  const ExprNode& Pick(const Row& row) const {
    for (const auto& [cond, value] : whens_) {
      Scalar c;
      if (cond->EvalScalar(row, &c) && c.i != 0) return *value;
    }
    return *otherwise_;
  }

  const std::vector<std::pair<NodePtr, NodePtr>> whens_;
  const NodePtr otherwise_;
};

class Concat final : public ExprNode {
 public:
  Concat(std::vector<NodePtr> parts, bool skip_nulls)
      : ExprNode(VType::kString), parts_(std::move(parts)), skip_nulls_(skip_nulls) {}

  bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const override {
    // The first string part may be computed straight into *scratch; later
    // ones go through `tmp` (no heap use when they are fields or literals).
    bool started = false;
    std::string tmp;
    for (const NodePtr& part : parts_) {
      if (part->type() == VType::kString) {
        std::string_view v;
        if (!part->EvalString(row, started ? &tmp : scratch, &v)) {
          if (skip_nulls_) continue;
          return false;
        }
        if (started) {
          scratch->append(v.data(), v.size());
        } else {
          AssignView(scratch, v);
          started = true;
        }
      } else {
        Scalar v;
        if (!part->EvalScalar(row, &v)) {
          if (skip_nulls_) continue;
          return false;
        }
        if (!started) {
          scratch->clear();
          started = true;
        }
        AppendScalar(part->type(), v, scratch);
      }
    }
    if (!started) scratch->clear();
    *out = *scratch;
    return true;
  }

 private:
  const std::vector<NodePtr> parts_;
  const bool skip_nulls_;
};

template <template <ArithOp> class Node, typename... Args>
NodePtr MakeArithFor(ArithOp op, Args&&... args) {
  switch (op) {
    case ArithOp::kAdd: return std::make_unique<Node<ArithOp::kAdd>>(std::forward<Args>(args)...);
    case ArithOp::kSub: return std::make_unique<Node<ArithOp::kSub>>(std::forward<Args>(args)...);
    case ArithOp::kMul: return std::make_unique<Node<ArithOp::kMul>>(std::forward<Args>(args)...);
    case ArithOp::kDiv: return std::make_unique<Node<ArithOp::kDiv>>(std::forward<Args>(args)...);
    case ArithOp::kMod: return std::make_unique<Node<ArithOp::kMod>>(std::forward<Args>(args)...);
  }
  return nullptr;
}

}  // namespace

NodePtr MakeNullLiteral(VType type) { return std::make_unique<NullLiteral>(type); }

NodePtr MakeScalarLiteral(VType type, Scalar value) {
  return std::make_unique<ScalarLiteral>(type, value);
}

NodePtr MakeStringLiteral(std::string value) {
  return std::make_unique<StringLiteral>(std::move(value));
}

NodePtr MakeFieldRef(size_t index, VType type) {
  if (type == VType::kString) return std::make_unique<StringField>(index);
  return std::make_unique<ScalarField>(index, type);
}

NodePtr MakeIntToDouble(NodePtr child) { return std::make_unique<IntToDouble>(std::move(child)); }

NodePtr MakeNegate(OperandKind kind, NodePtr child) {
  if (kind == OperandKind::kDouble) return std::make_unique<Negate<OperandKind::kDouble>>(std::move(child));
  return std::make_unique<Negate<OperandKind::kInt>>(std::move(child));
}

NodePtr MakeArith(ArithOp op, OperandKind kind, VType result, NodePtr lhs, NodePtr rhs) {
  if (kind == OperandKind::kDouble) return MakeArithFor<DoubleArith>(op, std::move(lhs), std::move(rhs));
  return MakeArithFor<IntArith>(op, result, std::move(lhs), std::move(rhs));
}

NodePtr MakeCompare(CmpOp op, OperandKind kind, NodePtr lhs, NodePtr rhs) {
  switch (kind) {
    case OperandKind::kInt: return MakeCompareFor<IntReader>(op, std::move(lhs), std::move(rhs));
    case OperandKind::kDouble: return MakeCompareFor<DoubleReader>(op, std::move(lhs), std::move(rhs));
    case OperandKind::kString: return MakeCompareFor<StringReader>(op, std::move(lhs), std::move(rhs));
  }
  return nullptr;
}

NodePtr MakeBetween(OperandKind kind, bool negated, NodePtr x, NodePtr lo, NodePtr hi) {
  switch (kind) {
    case OperandKind::kInt:
      return std::make_unique<Between<IntReader>>(negated, std::move(x), std::move(lo), std::move(hi));
    case OperandKind::kDouble:
      return std::make_unique<Between<DoubleReader>>(negated, std::move(x), std::move(lo), std::move(hi));
    case OperandKind::kString:
      return std::make_unique<Between<StringReader>>(negated, std::move(x), std::move(lo), std::move(hi));
  }
  return nullptr;
}

NodePtr MakeIn(OperandKind kind, bool negated, NodePtr x, std::vector<NodePtr> list) {
  switch (kind) {
    case OperandKind::kInt: return std::make_unique<In<IntReader>>(negated, std::move(x), std::move(list));
    case OperandKind::kDouble:
      return std::make_unique<In<DoubleReader>>(negated, std::move(x), std::move(list));
    case OperandKind::kString:
      return std::make_unique<In<StringReader>>(negated, std::move(x), std::move(list));
  }
  return nullptr;
}

NodePtr MakeIsNull(bool negated, NodePtr x) { return std::make_unique<IsNull>(negated, std::move(x)); }

NodePtr MakeAnd(std::vector<NodePtr> operands) {
  return std::make_unique<Logic<true>>(std::move(operands));
}

NodePtr MakeOr(std::vector<NodePtr> operands) {
  return std::make_unique<Logic<false>>(std::move(operands));
}

NodePtr MakeNot(NodePtr operand) { return std::make_unique<Not>(std::move(operand)); }

NodePtr MakeCase(VType type, std::vector<std::pair<NodePtr, NodePtr>> whens, NodePtr otherwise) {
  return std::make_unique<Case>(type, std::move(whens), std::move(otherwise));
}

NodePtr MakeConcat(std::vector<NodePtr> parts, bool skip_nulls) {
  return std::make_unique<Concat>(std::move(parts), skip_nulls);
}

}  // namespace vstream
