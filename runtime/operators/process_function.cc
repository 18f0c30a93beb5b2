#include "runtime/operators/process_function.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace vstream {

const char* TimeDomainName(TimeDomain domain) {
  return domain == TimeDomain::kEventTime ? "event time" : "processing time";
}

absl::Status ProcessSetup::CheckName(const std::string& name) const {
  if (name.rfind("__", 0) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("state name '", name, "' starts with '__', which the operator reserves for its timers"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ValueState*> ProcessSetup::GetValueState(ValueStateDescriptor descriptor) {
  RETURN_IF_ERROR(CheckName(descriptor.name));
  descriptor.ttl_ms = Ttl(descriptor.ttl_ms);
  return backend_.GetValueState(descriptor);
}

absl::StatusOr<ListState*> ProcessSetup::GetListState(ListStateDescriptor descriptor) {
  RETURN_IF_ERROR(CheckName(descriptor.name));
  descriptor.ttl_ms = Ttl(descriptor.ttl_ms);
  return backend_.GetListState(descriptor);
}

absl::StatusOr<MapState*> ProcessSetup::GetMapState(MapStateDescriptor descriptor) {
  RETURN_IF_ERROR(CheckName(descriptor.name));
  descriptor.ttl_ms = Ttl(descriptor.ttl_ms);
  return backend_.GetMapState(descriptor);
}

absl::StatusOr<ReducingState*> ProcessSetup::GetReducingState(ReducingStateDescriptor descriptor) {
  RETURN_IF_ERROR(CheckName(descriptor.name));
  descriptor.ttl_ms = Ttl(descriptor.ttl_ms);
  return backend_.GetReducingState(descriptor);
}

absl::StatusOr<AggregatingState*> ProcessSetup::GetAggregatingState(AggregatingStateDescriptor descriptor) {
  RETURN_IF_ERROR(CheckName(descriptor.name));
  descriptor.ttl_ms = Ttl(descriptor.ttl_ms);
  return backend_.GetAggregatingState(descriptor);
}

}  // namespace vstream
