#include "runtime/operators/operator.h"

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "runtime/row_codec.h"

namespace vstream {

absl::Status OwnedKeyGroups::Init(const OperatorContext& ctx, std::string_view kind,
                                  const std::vector<int>& key_fields) {
  range_ = KeyGroupRangeForSubtask(ctx.max_parallelism, ctx.parallelism, ctx.subtask_index);
  who_ = absl::StrCat(AV(kind), " '", ctx.vertex_name, "' subtask ", ctx.subtask_index);
  max_parallelism_ = ctx.max_parallelism;
  parallelism_ = ctx.parallelism;
  group_fields_.clear();
  if (ctx.key_group_fields == 0) return absl::OkStatus();
  if (ctx.key_group_fields < 0 || static_cast<size_t>(ctx.key_group_fields) >= key_fields.size()) {
    return absl::InvalidArgumentError(absl::StrCat(who_, ": cannot group its records by the first ",
                                                   ctx.key_group_fields, " of its ", key_fields.size(),
                                                   " key fields (a bug in the job graph; please report it)"));
  }
  group_fields_.assign(key_fields.begin(), key_fields.begin() + ctx.key_group_fields);
  return absl::OkStatus();
}

int OwnedKeyGroups::KeyGroupOfFields(const Schema& schema, const Row& row) {
  group_key_.clear();
  EncodeKey(schema, row, group_fields_, &group_key_);  // as the HASH edge routed it (RecordEmitter)
  return KeyGroupForHash(HashKeyBytes(group_key_), max_parallelism_);
}

absl::Status OwnedKeyGroups::Foreign(int key_group) const {
  // Key groups only: never the key, which may identify a patient.
  return absl::InternalError(absl::StrCat(
      who_, " (key groups ", range_.start, "-", range_.end, " of ", max_parallelism_, ") got a record of key group ",
      key_group, ", which subtask ", SubtaskForKeyGroup(key_group, max_parallelism_, parallelism_),
      " owns: its input is not partitioned by its key as the job graph says (a bug; please report it)"));
}

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
