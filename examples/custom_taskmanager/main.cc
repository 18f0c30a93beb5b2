// vstream-example-taskmanager: the stock TaskManager plus a process function
// of our own. Run it instead of vstream-taskmanager (same flags), and name
// the function in a job:
//
//   operators:
//     - name: admission
//       type: process
//       input: vitals
//       key_by: [patient_id]
//       function: first_reading
//       output_schema: {patient_id: string, ts: timestamp, hr: int}  # the CLI does not know it

#include <cstdio>

#include "examples/custom_taskmanager/first_reading.h"
#include "runtime/operators/process_function_registry.h"
#include "taskmanager/task_manager_main.h"

int main(int argc, char** argv) {
  absl::Status s =
      vstream::ProcessFunctionRegistry::Global().Register("first_reading", &vitals_example::FirstReading::Create);
  if (!s.ok()) {
    std::fprintf(stderr, "vstream-example-taskmanager: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return vstream::TaskManagerMain(argc, argv);
}
