#include "runtime/operators/operator.h"

namespace vstream {

absl::Status OpenKeyedValueState(const OperatorContext& ctx, const std::string& name,
                                 std::unique_ptr<KeyedStateBackend>* backend, StateId* state) {
  KeyedStateBackendOptions options;
  options.path = ctx.state_dir;
  options.resources = ctx.state_resources;
  auto opened = KeyedStateBackend::Open(options);
  if (!opened.ok()) return opened.status();
  *backend = std::move(*opened);
  auto id = (*backend)->RegisterState(name, /*write_back_cache=*/true);
  if (!id.ok()) return id.status();
  *state = *id;
  return absl::OkStatus();
}

}  // namespace vstream
