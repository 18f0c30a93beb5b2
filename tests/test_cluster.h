#pragma once
// Test fixtures that run the real binaries: a Subprocess with captured
// output, and a TestCluster of one JobManager and N TaskManagers on
// ephemeral loopback ports with temporary data dirs. Nothing is mocked.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/wait_for.h"

namespace vstream::testing {

using vstream::WaitFor;  // polls every 20 ms

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string BinPath(const std::string& name);  // build/bin/<name>
std::string ReadFile(const std::string& path);
// The lines of every committed file a file sink wrote to `dir` (none if it
// does not exist), without each file's first line when `skip_header`
// (CSV). Expects no in-progress file to be left behind.
std::vector<std::string> ReadOutputLines(const std::string& dir, bool skip_header);
void WriteFile(const std::string& path, const std::string& content);

// A child process; stdout and stderr go to files that the test can read
// while it runs. Killed (SIGKILL) by the destructor if still running.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, const std::string& log_dir, const std::string& name,
             const std::map<std::string, std::string>& env = {});
  ~Subprocess();
  pid_t pid() const { return pid_; }
  std::string Stdout() const { return ReadFile(stdout_path_); }
  std::string Stderr() const { return ReadFile(stderr_path_); }
  bool Running();
  // Waits for exit; returns the exit code (128+signal if killed), or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  void Kill(int signal);
  // Resident set size in bytes, from /proc (0 if gone).
  int64_t RssBytes() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string stdout_path_, stderr_path_;
};

// The result of a CLI run to completion.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(std::vector<std::string> argv, const std::string& log_dir,
                         std::chrono::milliseconds timeout,
                         const std::map<std::string, std::string>& env = {});

// Waits until TaskManager `tm` logged its registration with the JobManager.
bool Registered(const Subprocess& tm, std::chrono::milliseconds timeout = std::chrono::seconds(30));

class TestCluster {
 public:
  // Starts a JobManager and `taskmanagers` TaskManagers with `slots` each,
  // and waits until all have registered. `taskmanager_binary` names the
  // TaskManager program in build/bin (a custom one, with its own process
  // functions, takes the same flags).
  TestCluster(int taskmanagers, int slots, const std::string& taskmanager_binary = "vstream-taskmanager");
  ~TestCluster();

  const std::string& jobmanager_address() const { return jm_address_; }
  const std::string& dir() const { return dir_.path(); }
  Subprocess& taskmanager(int i) { return *tms_[i]; }
  Subprocess& jobmanager() { return *jm_; }
  int num_taskmanagers() const { return static_cast<int>(tms_.size()); }
  // Runs `vstream ARGS... --jobmanager <this cluster>`.
  CommandResult Vstream(std::vector<std::string> args, std::chrono::milliseconds timeout);

  // Starts one more TaskManager on this cluster, logging as `name` into a
  // data dir of its own (dir()/name), with more flags (e.g. {"--cpuset",
  // "0"}). Wait for it with Registered.
  std::unique_ptr<Subprocess> StartTaskManagerWith(const std::string& name, const std::vector<std::string>& flags);

  // Starts TaskManager i again (killing it first if it runs) on its data
  // dir, and waits until it registered. False if it did not.
  bool RestartTaskManager(int i);
  // Starts the JobManager again on the same port and data dir (killing it
  // first if it runs), and waits until it listens. False if it did not.
  bool RestartJobManager();

 private:
  std::unique_ptr<Subprocess> StartTaskManager(int i, const std::string& log_name);
  // A TaskManager on data dir dir()/data_dir, logging as log_name, with more flags.
  std::unique_ptr<Subprocess> StartTaskManagerProcess(const std::string& data_dir, const std::string& log_name,
                                                      const std::vector<std::string>& flags);

  TempDir dir_;
  int slots_;
  std::string taskmanager_binary_;
  std::unique_ptr<Subprocess> jm_;
  std::vector<std::unique_ptr<Subprocess>> tms_;
  std::string jm_address_;
  int restarts_ = 0;  // names the logs of restarted processes
};

}  // namespace vstream::testing
