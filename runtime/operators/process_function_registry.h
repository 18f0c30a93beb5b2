#pragma once
// Names keyed process functions (process_function.h) so that a job can use
// them: `type: process, function: no_data_alert, params: {timeout: 5m}`.
//
// Two programs look a name up. The client (vstream) makes the function with
// the job's params to validate them and compute the output schema when it
// compiles the job; each TaskManager makes one per subtask to run it. The
// built-in functions (builtin_process_functions.h) are in both, registered on
// the first use of Global(), whatever the linker kept. A user function is
// registered in a user's own TaskManager binary before it starts:
//
//   int main(int argc, char** argv) {
//     vstream::ProcessFunctionRegistry::Global().Register("first_reading", &FirstReading::Create);
//     return vstream::TaskManagerMain(argc, argv);  // taskmanager/task_manager_main.h
//   }
//
// (or with VSTREAM_REGISTER_PROCESS_FUNCTION in that binary's own sources).
// The stock CLI does not know such a function, so the job declares its
// `output_schema`; the TaskManager checks that the function agrees.
//
// Thread-safe: registration (at static initialization or in main) and
// lookups (from task threads) may race.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/operators/process_function.h"
#include "runtime/operators/process_params.h"

namespace vstream {

class ProcessFunctionRegistry {
 public:
  // Makes a function from the job's params, or explains (ProcessParams'
  // getters give errors that name the param).
  using Factory = std::function<absl::StatusOr<std::unique_ptr<KeyedProcessFunction>>(const ProcessParams& params)>;

  ProcessFunctionRegistry() = default;
  ProcessFunctionRegistry(const ProcessFunctionRegistry&) = delete;
  ProcessFunctionRegistry& operator=(const ProcessFunctionRegistry&) = delete;

  // The process-wide registry, the built-in functions already in it.
  static ProcessFunctionRegistry& Global();

  // Names may use letters, digits and '_'. AlreadyExists if taken,
  // InvalidArgument for a bad name or a null factory.
  absl::Status Register(const std::string& name, Factory factory);

  // NotFound "unknown process function 'NAME', expected one of A, B" for a
  // name nobody registered; the factory's error otherwise.
  absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Create(std::string_view name,
                                                               const ProcessParams& params) const;
  bool Contains(std::string_view name) const;
  // Every registered name, sorted.
  std::vector<std::string> Names() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, Factory, std::less<>> factories_ ABSL_GUARDED_BY(mu_);
};

// Registers a function at static initialization, in the binary whose
// sources contain it (a registrar in a static library that nothing else
// references is dropped by the linker):
//
//   VSTREAM_REGISTER_PROCESS_FUNCTION(first_reading, &FirstReading::Create);
//
// Aborts the program if the name is taken.
class ProcessFunctionRegistrar {
 public:
  ProcessFunctionRegistrar(const char* name, ProcessFunctionRegistry::Factory factory);
};

#define VSTREAM_REGISTER_PROCESS_FUNCTION(name, factory) \
  static const ::vstream::ProcessFunctionRegistrar vstream_process_function_registrar_##name(#name, factory)

}  // namespace vstream
