#pragma once
// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define VS_CONCAT_INNER(a, b) a##b
#define VS_CONCAT(a, b) VS_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status _vs_status = (expr);        \
    if (!_vs_status.ok()) return _vs_status;   \
  } while (0)

#define VS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  VS_ASSIGN_OR_RETURN_IMPL(VS_CONCAT(_vs_statusor_, __LINE__), lhs, rexpr)
