#include "examples/custom_taskmanager/first_reading.h"

#include "common/status_macros.h"

namespace vitals_example {

absl::StatusOr<std::unique_ptr<vstream::KeyedProcessFunction>> FirstReading::Create(
    const vstream::ProcessParams& params) {
  RETURN_IF_ERROR(params.CheckKnown({}));
  return std::unique_ptr<vstream::KeyedProcessFunction>(new FirstReading());
}

absl::StatusOr<vstream::ProcessOutputSchema> FirstReading::OutputSchema(const vstream::ProcessInput& input) const {
  return vstream::ProcessOutputSchema{input.schema, input.time_index};
}

absl::Status FirstReading::Open(vstream::ProcessSetup& setup) {
  vstream::ValueStateDescriptor seen;
  seen.name = "seen";
  seen.write_back_cache = true;  // every record reads it
  ASSIGN_OR_RETURN(seen_, setup.GetValueState(seen));
  return absl::OkStatus();
}

absl::Status FirstReading::ProcessElement(const vstream::Row& in, vstream::ProcessContext& ctx) {
  ASSIGN_OR_RETURN(vstream::StateLookup r, seen_->Get("", &scratch_));
  if (r == vstream::StateLookup::kFound) return absl::OkStatus();
  RETURN_IF_ERROR(seen_->Put("", "1"));
  ctx.Emit() = in;
  return absl::OkStatus();
}

}  // namespace vitals_example
