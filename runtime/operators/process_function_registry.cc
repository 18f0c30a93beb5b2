#include "runtime/operators/process_function_registry.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/absl_compat.h"
#include "runtime/operators/builtin_process_functions.h"

namespace vstream {

namespace {

bool IsValidFunctionName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

}  // namespace

ProcessFunctionRegistry& ProcessFunctionRegistry::Global() {
  // Built here, not by registrars: a static library's unreferenced object
  // files (and their registrars) never reach the binary.
  static ProcessFunctionRegistry* registry = [] {
    auto* r = new ProcessFunctionRegistry();
    RegisterBuiltinProcessFunctions(*r);
    return r;
  }();
  return *registry;
}

absl::Status ProcessFunctionRegistry::Register(const std::string& name, Factory factory) {
  if (!IsValidFunctionName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid process function name '", name, "': use letters, digits and '_'"));
  }
  if (!factory) return absl::InvalidArgumentError(absl::StrCat("process function '", name, "' has no factory"));
  absl::MutexLock lock(&mu_);
  if (!factories_.emplace(name, std::move(factory)).second) {
    return absl::AlreadyExistsError(absl::StrCat("process function '", name, "' is already registered"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> ProcessFunctionRegistry::Create(
    std::string_view name, const ProcessParams& params) const {
  Factory factory;
  {
    absl::MutexLock lock(&mu_);
    auto it = factories_.find(name);
    if (it != factories_.end()) factory = it->second;
  }
  if (!factory) {
    return absl::NotFoundError(
        absl::StrCat("unknown process function '", AV(name), "', expected one of ", absl::StrJoin(Names(), ", ")));
  }
  absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> fn = factory(params);
  if (fn.ok() && *fn == nullptr) {
    return absl::InternalError(absl::StrCat("the factory of process function '", AV(name), "' returned null"));
  }
  return fn;
}

bool ProcessFunctionRegistry::Contains(std::string_view name) const {
  absl::MutexLock lock(&mu_);
  return factories_.find(name) != factories_.end();
}

std::vector<std::string> ProcessFunctionRegistry::Names() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories_) names.push_back(name);
  return names;
}

ProcessFunctionRegistrar::ProcessFunctionRegistrar(const char* name, ProcessFunctionRegistry::Factory factory) {
  absl::Status s = ProcessFunctionRegistry::Global().Register(name, std::move(factory));
  if (!s.ok()) {
    std::fprintf(stderr, "cannot register process function: %s\n", std::string(s.message()).c_str());
    std::abort();
  }
}

}  // namespace vstream
