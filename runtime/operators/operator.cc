#include "runtime/operators/operator.h"

namespace vstream {

absl::StatusOr<std::unique_ptr<KeyedStateBackend>> OpenKeyedStateBackend(const OperatorContext& ctx) {
  KeyedStateBackendOptions options;
  options.path = ctx.state_dir;
  options.resources = ctx.state_resources;
  if (ctx.state_resources != nullptr) options.write_back_cache_bytes = ctx.state_resources->write_back_cache_bytes();
  options.clock = ctx.clock;
  options.wipe_on_open = !ctx.restored;
  return KeyedStateBackend::Open(options);
}

absl::Status OpenKeyedValueState(const OperatorContext& ctx, const std::string& name,
                                 std::unique_ptr<KeyedStateBackend>* backend, StateId* state,
                                 int64_t ttl_ms) {
  auto opened = OpenKeyedStateBackend(ctx);
  if (!opened.ok()) return opened.status();
  *backend = std::move(*opened);
  ValueStateDescriptor descriptor;
  descriptor.name = name;
  descriptor.ttl_ms = ttl_ms;
  descriptor.write_back_cache = true;
  auto handle = (*backend)->GetValueState(descriptor);
  if (!handle.ok()) return handle.status();
  *state = (*handle)->id();
  return absl::OkStatus();
}

}  // namespace vstream
