#pragma once
// Private to runtime/expr: the compiled form of an Expression.
//
// Compile() turns the text into a tree of ExprNodes whose types are all
// checked, so a node never has to check a type at run time. Evaluation is
// pull-based: a node asks its children for their values through one of two
// virtual calls, chosen by the child's static type:
//
//   EvalScalar  int, double, bool, timestamp (and the NULL type): no heap use
//   EvalString  string: returns a view, so that field references and literals
//               are never copied; computed strings are written into a
//               caller-provided scratch string, whose capacity is reused.
//
// Nodes are immutable after construction, so one tree may be evaluated from
// several threads at once; all per-call state lives on the stack.

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/types.h"

namespace vstream {

// Static type of a node: a FieldType, plus kNull for the NULL literal (and
// for expressions built only from NULLs), which is compatible with anything.
enum class VType : uint8_t { kNull, kInt, kDouble, kString, kBool, kTimestamp };

const char* VTypeName(VType type);  // "null", "int", "double", ...
VType ToVType(FieldType type);
// kNull maps to kInt: an expression that is always NULL has no better type.
FieldType ToFieldType(VType type);

inline bool IsNumeric(VType t) { return t == VType::kInt || t == VType::kDouble; }

// The value of a non-string node: int, bool (0/1) and timestamp in `i`,
// double in `d`.
struct Scalar {
  int64_t i = 0;
  double d = 0;
};

// Upper bound on the height of a compiled tree and on the parser's recursion;
// deeper input is rejected at compile time, so evaluation cannot overflow the
// stack.
inline constexpr int kMaxExprDepth = 200;

class ExprNode {
 public:
  explicit ExprNode(VType type) : type_(type) {}
  virtual ~ExprNode() = default;
  ExprNode(const ExprNode&) = delete;
  ExprNode& operator=(const ExprNode&) = delete;

  VType type() const { return type_; }

  // For non-string nodes. Returns false if the value is NULL; otherwise
  // stores it in *out.
  virtual bool EvalScalar(const Row& row, Scalar* out) const;

  // For string nodes. Returns false if the value is NULL; otherwise sets *out
  // to the value. *out may point into `row`, into the node itself or into
  // *scratch, and stays valid until one of those changes.
  virtual bool EvalString(const Row& row, std::string* scratch, std::string_view* out) const;

  // Evaluates into a Datum of this node's type. `out` must not be an element
  // of `row`.
  void Eval(const Row& row, Datum* out) const;

 private:
  const VType type_;
};

// Makes *s hold exactly `v`; `v` may point into *s.
inline void AssignView(std::string* s, std::string_view v) {
  if (v.data() == s->data() && v.size() == s->size()) return;
  s->assign(v.data(), v.size());
}

// Appends the text of a non-string value as DatumToString would print it.
void AppendScalar(VType type, const Scalar& v, std::string* out);

}  // namespace vstream
