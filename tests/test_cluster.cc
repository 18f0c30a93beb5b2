#include "tests/test_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/cluster_client.h"
#include "gtest/gtest.h"

namespace vstream::testing {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& tag) {
  std::string templ = (fs::temp_directory_path() / ("vstream-" + tag + "-XXXXXX")).string();
  char* made = mkdtemp(templ.data());
  path_ = made ? made : templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!std::getenv("VSTREAM_KEEP_TEST_DIRS")) fs::remove_all(path_, ec);
}

std::string BinPath(const std::string& name) { return std::string(VSTREAM_BIN_DIR) + "/" + name; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

Subprocess::Subprocess(std::vector<std::string> argv, const std::string& log_dir, const std::string& name,
                       const std::map<std::string, std::string>& env) {
  stdout_path_ = log_dir + "/" + name + ".out";
  stderr_path_ = log_dir + "/" + name + ".err";
  pid_ = fork();
  if (pid_ == 0) {
    int out = open(stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
}

Subprocess::~Subprocess() {
  if (Running()) {
    Kill(SIGKILL);
    Wait(std::chrono::seconds(10));
  }
}

bool Subprocess::Running() {
  if (exit_code_ >= 0 || pid_ <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return false;
}

int Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (!WaitFor([&] { return !Running(); }, timeout)) return -1;
  return exit_code_;
}

void Subprocess::Kill(int signal) {
  if (Running()) kill(pid_, signal);
}

int64_t Subprocess::RssBytes() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

CommandResult RunCommand(std::vector<std::string> argv, const std::string& log_dir,
                         std::chrono::milliseconds timeout, const std::map<std::string, std::string>& env) {
  static int counter = 0;
  Subprocess p(std::move(argv), log_dir, absl::StrCat("cmd-", ++counter), env);
  CommandResult r;
  r.exit_code = p.Wait(timeout);
  r.out = p.Stdout();
  r.err = p.Stderr();
  return r;
}

namespace {

// Reads "<what> listening on HOST:PORT" from a process's stdout.
std::string AwaitListeningAddress(Subprocess& p, const std::string& what) {
  std::string address;
  WaitFor(
      [&] {
        std::string out = p.Stdout();
        auto at = out.find(what + " listening on ");
        if (at == std::string::npos) return false;
        auto start = at + what.size() + 14;
        auto end = out.find('\n', start);
        if (end == std::string::npos) return false;
        address = out.substr(start, end - start);
        return true;
      },
      std::chrono::seconds(30));
  return address;
}

}  // namespace

TestCluster::TestCluster(int taskmanagers, int slots, const std::string& taskmanager_binary)
    : dir_("cluster"), slots_(slots), taskmanager_binary_(taskmanager_binary) {
  jm_ = std::make_unique<Subprocess>(
      std::vector<std::string>{BinPath("vstream-jobmanager"), "--rpc-port", "0", "--data-dir", dir_.File("jm")},
      dir_.path(), "jobmanager");
  jm_address_ = AwaitListeningAddress(*jm_, "JobManager");
  if (jm_address_.empty()) {
    ADD_FAILURE() << "JobManager did not start: " << jm_->Stderr();
    return;
  }
  for (int i = 0; i < taskmanagers; ++i) tms_.push_back(StartTaskManager(i, "taskmanager" + std::to_string(i)));
  bool ok = true;
  for (auto& tm : tms_) ok = Registered(*tm) && ok;
  if (!ok) ADD_FAILURE() << "TaskManagers did not register";
}

bool Registered(const Subprocess& tm, std::chrono::milliseconds timeout) {
  return WaitFor([&] { return tm.Stderr().find("registered with JobManager") != std::string::npos; }, timeout);
}

std::unique_ptr<Subprocess> TestCluster::StartTaskManagerWith(const std::string& name,
                                                              const std::vector<std::string>& flags) {
  return StartTaskManagerProcess(name, name, flags);
}

std::unique_ptr<Subprocess> TestCluster::StartTaskManager(int i, const std::string& log_name) {
  return StartTaskManagerProcess("tm" + std::to_string(i), log_name, {"--slots", std::to_string(slots_)});
}

std::unique_ptr<Subprocess> TestCluster::StartTaskManagerProcess(const std::string& data_dir,
                                                                 const std::string& log_name,
                                                                 const std::vector<std::string>& flags) {
  std::vector<std::string> argv{BinPath(taskmanager_binary_), "--jobmanager", jm_address_, "--rpc-port", "0",
                                "--data-dir", dir_.File(data_dir)};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return std::make_unique<Subprocess>(std::move(argv), dir_.path(), log_name);
}

bool TestCluster::RestartTaskManager(int i) {
  if (tms_[i]->Running()) {
    tms_[i]->Kill(SIGKILL);
    tms_[i]->Wait(std::chrono::seconds(10));
  }
  tms_[i] = StartTaskManager(i, "taskmanager" + std::to_string(i) + "-r" + std::to_string(++restarts_));
  return Registered(*tms_[i]);
}

bool TestCluster::RestartJobManager() {
  if (jm_->Running()) {
    jm_->Kill(SIGKILL);
    jm_->Wait(std::chrono::seconds(10));
  }
  const std::string port = jm_address_.substr(jm_address_.rfind(':') + 1);
  jm_ = std::make_unique<Subprocess>(
      std::vector<std::string>{BinPath("vstream-jobmanager"), "--rpc-port", port, "--data-dir", dir_.File("jm")},
      dir_.path(), "jobmanager-r" + std::to_string(++restarts_));
  return !AwaitListeningAddress(*jm_, "JobManager").empty();
}

TestCluster::~TestCluster() {
  for (auto& tm : tms_) tm->Kill(SIGTERM);
  for (auto& tm : tms_) {
    if (tm->Wait(std::chrono::seconds(10)) < 0) tm->Kill(SIGKILL);
  }
  if (jm_) {
    jm_->Kill(SIGTERM);
    jm_->Wait(std::chrono::seconds(10));
  }
}

CommandResult TestCluster::Vstream(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{BinPath("vstream")};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--jobmanager");
  argv.push_back(jm_address_);
  return RunCommand(argv, dir_.path(), timeout);
}

std::vector<std::string> ReadOutputLines(const std::string& dir, bool skip_header) {
  std::vector<std::string> lines;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return lines;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    EXPECT_NE(path.filename().string()[0], '.') << "in-progress file left: " << path;
    std::istringstream in(ReadFile(path.string()));
    std::string line;
    if (skip_header) std::getline(in, line);
    while (std::getline(in, line)) lines.push_back(line);
  }
  return lines;
}

}  // namespace vstream::testing
