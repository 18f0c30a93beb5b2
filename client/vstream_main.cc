// vstream: the command-line client.
//
//   vstream submit JOB.yaml [--wait] [--from-savepoint PATH] [--parallelism N]
//                                           submit; print the job id
//   vstream savepoint JOB_ID [--dir DIR]    take a savepoint; print its path
//   vstream stop JOB_ID [--dir DIR]         take a savepoint, then stop the job
//   vstream jobs                            list jobs
//   vstream status JOB_ID                   vertices, parallelism, states, records,
//                                           checkpoints
//   vstream cancel JOB_ID
//   vstream plan JOB.yaml [--parallelism N] print the tasks and exchanges the
//                                           spec compiles to; starts nothing
//   vstream local JOB.yaml [--taskmanagers N] [--slots S]
//                                           run a whole cluster in this process
//   vstream send-hl7 HOST:PORT FILE...      send HL7 v2 files' messages over MLLP
//
// The JobManager address comes from --jobmanager HOST:PORT, else
// VSTREAM_JOBMANAGER, else 127.0.0.1:6123.
//
// Exit codes: 0 success; 1 the job or the request failed; 2 bad usage or a
// bad job spec.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "client/cluster_client.h"
#include "client/job_spec.h"
#include "common/flags.h"
#include "runtime/formats/hl7v2.h"
#include "runtime/network/mllp_client.h"
#include "common/logging.h"
#include "jobmanager/job_manager.h"
#include "jobmanager/job_master.h"
#include "runtime/stream_task.h"
#include "taskmanager/task_manager.h"

namespace vstream {
namespace {

constexpr char kUsage[] =
    "usage: vstream COMMAND [ARGS] [--jobmanager HOST:PORT]\n"
    "\n"
    "commands:\n"
    "  submit JOB.yaml [--wait] [--from-savepoint PATH] [--parallelism N]\n"
    "                               submit a job and print its id; with --wait, follow it\n"
    "                               and exit 0 only if it FINISHED; --from-savepoint starts\n"
    "                               it from a savepoint, --parallelism N replaces the spec's\n"
    "                               parallelism (rescaling)\n"
    "  savepoint JOB_ID [--dir DIR] take a savepoint of a running job and print its path\n"
    "                               (default DIR: the JobManager's data dir/savepoints)\n"
    "  stop JOB_ID [--dir DIR]      take a savepoint, stop the job and print the path\n"
    "  jobs                         list the jobs\n"
    "  status JOB_ID                show a job's vertices, states, record counts and\n"
    "                               checkpoints\n"
    "  cancel JOB_ID                cancel a job\n"
    "  plan JOB.yaml [--parallelism N]\n"
    "                               print what the spec compiles to: its tasks (chained\n"
    "                               operators) and the exchanges between them, with the\n"
    "                               fields each sends; submits nothing\n"
    "  local JOB.yaml [--taskmanagers N] [--slots S]\n"
    "                               run the job on a JobManager and N TaskManagers inside\n"
    "                               this process (default N=2, S=enough for the job)\n"
    "  send-hl7 HOST:PORT FILE...   send the HL7 v2 messages of the files over MLLP, one at\n"
    "                               a time, each once its ACK came (resent after a lost\n"
    "                               connection or no ACK in 10 s); report the ACK codes\n"
    "\n"
    "The JobManager address is --jobmanager, else $VSTREAM_JOBMANAGER, else 127.0.0.1:6123.\n";

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "vstream: %s\n", message.c_str());
  return code;
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

bool Terminal(proto::JobState s) {
  return s == proto::FINISHED || s == proto::FAILED || s == proto::CANCELED;
}

std::string Progress(const proto::JobStatus& st) {
  std::string line = JobStateName(st.state());
  for (const auto& v : st.vertices()) {
    absl::StrAppend(&line, "  ", v.name(), ": ", FormatCount(std::max(v.records_in(), v.records_out())));
  }
  if (st.state() == proto::CREATED && !st.message().empty()) absl::StrAppend(&line, "  (", st.message(), ")");
  return line;
}

// Follows a job to its end, printing progress to stderr. Returns the exit code.
int WaitForJob(ClusterClient& client, const std::string& job_id) {
  auto last_print = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  int unreachable = 0;
  while (true) {
    auto st = client.Get(job_id);
    if (!st.ok()) {
      if (absl::IsUnavailable(st.status()) && ++unreachable < 10) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        continue;
      }
      return Fail(Msg(st.status()));
    }
    unreachable = 0;
    const auto now = std::chrono::steady_clock::now();
    if (Terminal(st->state())) {
      std::fprintf(stderr, "%s", FormatJobStatus(*st).c_str());
      return st->state() == proto::FINISHED ? 0 : 1;
    }
    if (now - last_print >= std::chrono::seconds(2)) {
      std::fprintf(stderr, "%s\n", Progress(*st).c_str());
      last_print = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// The spec of flags.positional[1], at --parallelism if given; nothing (the
// error printed, exit code 2) on a bad flag or spec.
std::optional<proto::JobGraph> CompileSpec(const ParsedFlags& flags) {
  int parallelism = 0;
  if (auto p = flags.Get("parallelism")) {
    parallelism = std::atoi(p->c_str());
    if (parallelism < 1 || std::to_string(parallelism) != *p) {
      Fail(absl::StrCat("--parallelism must be a whole number of at least 1, got '", *p, "'"), 2);
      return std::nullopt;
    }
  }
  auto graph = CompileJobSpecFile(flags.positional[1], parallelism);
  if (!graph.ok()) {
    Fail(Msg(graph.status()), 2);
    return std::nullopt;
  }
  return std::move(*graph);
}

// "a, b, c": the names of `fields` (indexes) of `schema`.
template <typename Indexes>
std::string FieldNames(const Schema& schema, const Indexes& fields) {
  std::string names;
  for (int f : fields) absl::StrAppend(&names, names.empty() ? "" : ", ", schema.field(f).name);
  return names;
}

// Tasks (chains, as the JobMaster forms them: ChainedTo) and every edge that
// is not chained, with its partitioning and the fields it sends.
std::string FormatJobPlan(const proto::JobGraph& graph) {
  const int n = graph.vertices_size();
  const std::vector<int> producers = ChainProducers(graph);
  std::vector<int> head(n);
  for (int v = 0; v < n; ++v) {
    const int up = producers[v];
    head[v] = up >= 0 ? head[up] : v;  // a producer comes before its consumers
  }
  std::string out;
  int tasks = 0;
  for (int v = 0; v < n; ++v) tasks += head[v] == v;
  absl::StrAppend(&out, "Job ", graph.name(), ": ", n, " operators in ", tasks, " tasks, max parallelism ",
                  graph.max_parallelism(), "\n\nTASK  PARALLELISM  OPERATORS (chained: records passed by call, not sent)\n");
  int task = 0;
  for (int v = 0; v < n; ++v) {
    if (head[v] != v) continue;
    std::string members;
    for (int w = v; w < n; ++w) {
      if (head[w] == v) absl::StrAppend(&members, members.empty() ? "" : ", ", graph.vertices(w).name());
    }
    absl::StrAppend(&out, absl::StrFormat("%4d  %11d  %s\n", ++task, graph.vertices(v).parallelism(), members));
  }
  absl::StrAppend(&out, "\nEXCHANGE  (from -> to: partitioning [key]; fields sent)\n");
  for (const proto::JobEdge& e : graph.edges()) {
    if (IsChainedEdge(graph, e, producers)) continue;
    const Schema schema = EmittedSchema(graph, e);
    std::string line = absl::StrCat(graph.vertices(e.source()).name(),
                                    e.side_output().empty() ? "" : absl::StrCat(" (", e.side_output(), ")"), " -> ",
                                    graph.vertices(e.target()).name(), ": ");
    absl::StrAppend(&line, absl::AsciiStrToLower(proto::Partitioning_Name(e.partitioning())));
    if (e.key_fields_size() > 0) absl::StrAppend(&line, " [", FieldNames(schema, e.key_fields()), "]");
    if (e.projection_size() > 0) {
      absl::StrAppend(&line, "; ", e.projection_size(), " of ", schema.size(),
                      " fields: ", FieldNames(schema, e.projection()));
    } else {
      absl::StrAppend(&line, "; all ", schema.size(), " fields");
    }
    absl::StrAppend(&out, "  ", line, "\n");
  }
  std::string projected;
  for (const proto::JobVertex& v : graph.vertices()) {
    if (!v.op().has_source() || v.op().source().reads_size() == 0) continue;
    const Schema schema = Schema::FromProto(v.output_schema());
    absl::StrAppendFormat(&projected, "  %s: %d of %d fields: %s\n", v.name(), v.op().source().reads_size(),
                          schema.size(), FieldNames(schema, v.op().source().reads()));
  }
  if (!projected.empty()) {
    absl::StrAppend(&out, "\nPROJECTED SOURCES  (make only the fields the job reads; the others are null)\n",
                    projected);
  }
  std::string grouped;
  for (const proto::JobVertex& v : graph.vertices()) {
    if (v.key_group_fields() <= 0) continue;
    absl::StrAppendFormat(&grouped, "  %s: key [%s] grouped by [%s]\n", v.name(), KeyByNames(v, 0),
                          KeyByNames(v, v.key_group_fields()));
  }
  if (!grouped.empty()) {
    absl::StrAppend(&out,
                    "\nGROUPED  (keyed by more fields than the input is partitioned by: key groups from those alone)\n",
                    grouped);
  }
  return out;
}

int Plan(const ParsedFlags& flags) {
  if (flags.positional.size() != 2) return Fail("usage: vstream plan JOB.yaml [--parallelism N]", 2);
  std::optional<proto::JobGraph> graph = CompileSpec(flags);
  if (!graph) return 2;
  std::printf("%s", FormatJobPlan(*graph).c_str());
  return 0;
}

int Submit(const ParsedFlags& flags, const std::string& address) {
  if (flags.positional.size() != 2) {
    return Fail("usage: vstream submit JOB.yaml [--wait] [--from-savepoint PATH] [--parallelism N]", 2);
  }
  std::optional<proto::JobGraph> graph = CompileSpec(flags);
  if (!graph) return 2;
  ClusterClient client(address);
  auto id = client.Submit(*graph, flags.Get("from-savepoint").value_or(""));
  if (!id.ok()) return Fail(Msg(id.status()));
  std::printf("%s\n", id->c_str());
  std::fflush(stdout);
  if (!flags.Has("wait")) return 0;
  return WaitForJob(client, *id);
}

int Jobs(const std::string& address) {
  ClusterClient client(address);
  auto list = client.List();
  if (!list.ok()) return Fail(Msg(list.status()));
  std::printf("%-32s  %-10s  %s\n", "JOB ID", "STATE", "NAME");
  for (const auto& j : list->jobs()) {
    std::printf("%-32s  %-10s  %s\n", j.job_id().c_str(), JobStateName(j.state()).c_str(), j.name().c_str());
  }
  return 0;
}

int Status(const ParsedFlags& flags, const std::string& address) {
  if (flags.positional.size() != 2) return Fail("usage: vstream status JOB_ID", 2);
  ClusterClient client(address);
  auto st = client.Get(flags.positional[1]);
  if (!st.ok()) return Fail(Msg(st.status()));
  std::printf("%s", FormatJobStatus(*st).c_str());
  return 0;
}

int Cancel(const ParsedFlags& flags, const std::string& address) {
  if (flags.positional.size() != 2) return Fail("usage: vstream cancel JOB_ID", 2);
  ClusterClient client(address);
  absl::Status s = client.Cancel(flags.positional[1]);
  if (!s.ok()) return Fail(Msg(s));
  std::printf("cancelling job %s\n", flags.positional[1].c_str());
  return 0;
}

int Savepoint(const ParsedFlags& flags, const std::string& address, bool stop) {
  const char* usage = stop ? "usage: vstream stop JOB_ID [--dir DIR]" : "usage: vstream savepoint JOB_ID [--dir DIR]";
  if (flags.positional.size() != 2) return Fail(usage, 2);
  std::string dir = flags.Get("dir").value_or("");
  if (!dir.empty() && dir.find("://") == std::string::npos) {
    std::error_code ec;
    dir = std::filesystem::absolute(dir, ec).lexically_normal().string();
  }
  std::fprintf(stderr, "%s job %s...\n", stop ? "stopping" : "taking a savepoint of", flags.positional[1].c_str());
  ClusterClient client(address);
  auto r = client.Savepoint(flags.positional[1], dir, stop);
  if (!r.ok()) return Fail(Msg(r.status()));
  std::fprintf(stderr, "savepoint of checkpoint %lld complete%s\n", static_cast<long long>(r->checkpoint_id()),
               stop ? "; the job stops" : "");
  std::printf("%s\n", r->path().c_str());
  return 0;
}

int Local(const ParsedFlags& flags) {
  if (flags.positional.size() != 2) return Fail("usage: vstream local JOB.yaml [--taskmanagers N] [--slots S]", 2);
  auto graph = CompileJobSpecFile(flags.positional[1]);
  if (!graph.ok()) return Fail(Msg(graph.status()), 2);
  int max_parallelism = 1;
  for (const auto& v : graph->vertices()) max_parallelism = std::max(max_parallelism, v.parallelism());
  const int tms = std::atoi(flags.Get("taskmanagers").value_or("2").c_str());
  if (tms < 1) return Fail("--taskmanagers must be at least 1", 2);
  int slots = std::atoi(flags.Get("slots").value_or("0").c_str());
  if (slots < 1) slots = (max_parallelism + tms - 1) / tms;

  std::error_code ec;
  const auto root = std::filesystem::temp_directory_path() / absl::StrCat("vstream-local-", ::getpid());
  std::filesystem::create_directories(root, ec);
  JobManagerOptions jm_options;
  jm_options.data_dir = (root / "jobmanager").string();
  auto jm = JobManager::Start(jm_options);
  if (!jm.ok()) return Fail(Msg(jm.status()));
  std::vector<std::unique_ptr<TaskManager>> taskmanagers;
  for (int i = 0; i < tms; ++i) {
    TaskManagerOptions tm_options;
    tm_options.jobmanager_address = (*jm)->address();
    tm_options.slots = slots;
    tm_options.data_dir = (root / absl::StrCat("taskmanager-", i)).string();
    auto tm = TaskManager::Start(tm_options);
    if (!tm.ok()) return Fail(Msg(tm.status()));
    taskmanagers.push_back(std::move(*tm));
  }
  std::fprintf(stderr, "local cluster: JobManager on %s, %d TaskManager(s) with %d slot(s) each\n",
               (*jm)->address().c_str(), tms, slots);
  ClusterClient client((*jm)->address());
  auto id = client.Submit(*graph);
  if (!id.ok()) return Fail(Msg(id.status()));
  std::fprintf(stderr, "job %s submitted\n", id->c_str());
  const int code = WaitForJob(client, *id);
  for (auto& tm : taskmanagers) tm->Stop();
  (*jm)->Stop();
  std::filesystem::remove_all(root, ec);
  return code;
}

// ERR-8 of an ACK (the receiver's reason), "" if none.
std::string AckReason(std::string_view ack) {
  const size_t err = ack.find("\rERR");
  if (err == std::string_view::npos || err + 4 >= ack.size()) return "";
  const char sep = ack[err + 4];
  std::string_view rest = ack.substr(err + 5);
  rest = rest.substr(0, rest.find('\r'));
  for (int field = 1; field < 8; ++field) {
    const size_t at = rest.find(sep);
    if (at == std::string_view::npos) return "";
    rest.remove_prefix(at + 1);
  }
  return std::string(rest.substr(0, rest.find(sep)));
}

int SendHl7(const ParsedFlags& flags) {
  if (flags.positional.size() < 3) return Fail("usage: vstream send-hl7 HOST:PORT FILE...", 2);
  const std::string& target = flags.positional[1];
  const size_t colon = target.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(target.substr(colon + 1), &port) || port <= 0 || port > 65535) {
    return Fail(absl::StrCat("expected HOST:PORT, got '", target, "'"), 2);
  }
  const std::string host = target.substr(0, colon);
  std::unique_ptr<MllpClient> client;
  std::map<std::string, int64_t> codes;
  int64_t not_messages = 0;
  for (size_t f = 2; f < flags.positional.size(); ++f) {
    const std::string& path = flags.positional[f];
    std::ifstream in(path, std::ios::binary);
    if (!in) return Fail(absl::StrCat("cannot open ", path));
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    Hl7Splitter splitter(bytes);
    Hl7Piece piece;
    while (splitter.Next(&piece)) {
      if (!piece.error.empty()) {
        std::fprintf(stderr, "%s:%d: not sent: %s\n", path.c_str(), piece.line, piece.error.c_str());
        ++not_messages;
        continue;
      }
      absl::StatusOr<std::string> ack = absl::UnavailableError("not sent");
      for (int attempt = 0; attempt < 10 && !ack.ok(); ++attempt) {
        if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));  // backoff
        if (!client) {
          auto c = MllpClient::Connect(host, port, std::chrono::seconds(5));
          if (!c.ok()) {
            ack = c.status();
            continue;
          }
          client = std::move(*c);
        }
        ack = client->Send(piece.text, std::chrono::seconds(10));
        if (!ack.ok()) client.reset();
      }
      if (!ack.ok()) return Fail(absl::StrCat(path, ":", piece.line, ": ", Msg(ack.status())));
      const std::string code = AckCode(*ack);
      ++codes[code];
      if (code != "AA" && code != "CA") {
        std::fprintf(stderr, "%s:%d: %s %s\n", path.c_str(), piece.line, code.c_str(), AckReason(*ack).c_str());
      }
    }
  }
  std::string summary;
  int64_t total = 0;
  for (const auto& [code, n] : codes) {
    absl::StrAppend(&summary, summary.empty() ? "" : ", ", n, " ", code.empty() ? "without MSA" : code);
    total += n;
  }
  std::printf("sent %lld message%s: %s%s\n", static_cast<long long>(total), total == 1 ? "" : "s", summary.empty() ? "none" : summary.c_str(),
              not_messages > 0 ? absl::StrCat("; ", not_messages, " pieces were no message (not sent)").c_str() : "");
  return codes.size() == codes.count("AA") + codes.count("CA") && not_messages == 0 ? 0 : 1;
}

int Main(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv, 1,
                          {"jobmanager", "taskmanagers", "slots", "log-level", "from-savepoint", "parallelism", "dir"},
                          {"wait", "help"});
  if (!flags.ok()) return Fail(absl::StrCat(Msg(flags.status()), "\n", kUsage), 2);
  if (flags->Has("help") || flags->positional.empty()) {
    std::fputs(kUsage, flags->Has("help") ? stdout : stderr);
    return flags->Has("help") ? 0 : 2;
  }
  std::string address = "127.0.0.1:6123";
  if (const char* env = std::getenv("VSTREAM_JOBMANAGER"); env && *env) address = env;
  if (auto a = flags->Get("jobmanager")) address = *a;
  const std::string& command = flags->positional[0];
  // Quiet by default: the CLI's own output is what the user reads.
  const char* env_level = std::getenv("VSTREAM_LOG_LEVEL");
  InitLogging("vstream", flags->Get("log-level").value_or(env_level && *env_level ? env_level : "warn"));
  if (command == "submit") return Submit(*flags, address);
  if (command == "jobs") return Jobs(address);
  if (command == "status") return Status(*flags, address);
  if (command == "cancel") return Cancel(*flags, address);
  if (command == "savepoint") return Savepoint(*flags, address, /*stop=*/false);
  if (command == "stop") return Savepoint(*flags, address, /*stop=*/true);
  if (command == "local") return Local(*flags);
  if (command == "plan") return Plan(*flags);
  if (command == "send-hl7") return SendHl7(*flags);
  return Fail(absl::StrCat("unknown command '", command,
                           "', expected one of submit, plan, jobs, status, cancel, savepoint, stop, local, send-hl7"),
              2);
}

}  // namespace
}  // namespace vstream

int main(int argc, char** argv) { return vstream::Main(argc, argv); }
