#pragma once
// first_reading: emits the first record of each key and drops the rest: a
// patient's admission vitals, or deduplication by key (Flink's "keep the
// first" example). Output = input schema, with the input's event time. No
// params.
//
// A user process function, registered in this example's TaskManager only:
// the stock CLI does not know it, so a job declares its output_schema.

#include <memory>
#include <string>

#include "runtime/operators/process_function.h"
#include "runtime/operators/process_params.h"

namespace vitals_example {

class FirstReading final : public vstream::KeyedProcessFunction {
 public:
  static absl::StatusOr<std::unique_ptr<vstream::KeyedProcessFunction>> Create(const vstream::ProcessParams& params);

  absl::StatusOr<vstream::ProcessOutputSchema> OutputSchema(const vstream::ProcessInput& input) const override;
  absl::Status Open(vstream::ProcessSetup& setup) override;
  absl::Status ProcessElement(const vstream::Row& in, vstream::ProcessContext& ctx) override;

 private:
  vstream::ValueState* seen_ = nullptr;  // "1" once the key's first record went out
  std::string scratch_;
};

}  // namespace vitals_example
