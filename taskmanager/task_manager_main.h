#pragma once
// The TaskManager program as a library function, so that a user can build a
// TaskManager with process functions of their own (see
// runtime/operators/process_function_registry.h and
// examples/custom_taskmanager/):
//
//   int main(int argc, char** argv) {
//     vstream::ProcessFunctionRegistry::Global().Register("first_reading", &FirstReading::Create);
//     return vstream::TaskManagerMain(argc, argv);
//   }
//
// Called on the main thread; returns when the process gets SIGTERM or SIGINT.

namespace vstream {

// Parses the flags of vstream-taskmanager (--jobmanager HOST:PORT --data-dir
// DIR [--rpc-port PORT] [--slots N] [--host ADDRESS] [--memory-mb MB]
// [--state-memory-mb MB] [--config FILE] [--log-level LEVEL]), runs a
// TaskManager until SIGTERM or SIGINT, and returns the process exit code (2
// for bad flags, 1 if the TaskManager cannot start).
int TaskManagerMain(int argc, char** argv);

}  // namespace vstream
