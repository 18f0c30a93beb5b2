// vstream-taskmanager --jobmanager HOST:PORT --rpc-port PORT --slots N --data-dir DIR [--config FILE]
//
// The stock TaskManager: the built-in process functions only. A TaskManager
// with functions of its own has its own main (examples/custom_taskmanager).

#include "taskmanager/task_manager_main.h"

int main(int argc, char** argv) { return vstream::TaskManagerMain(argc, argv); }
