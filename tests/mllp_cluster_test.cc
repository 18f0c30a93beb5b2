// The MLLP source's guarantee, end to end on a real cluster: four senders
// push 10,000 HL7 ORU^R01 messages over MLLP to the bedside-news2 job of
// issue 5 (mllp -> dedup -> news2 -> file), some of them sent twice and
// some malformed, and the TaskManager that runs an MLLP subtask is killed
// with SIGKILL mid-stream. Senders that lose their connection or get no ACK
// in time reconnect and send again, as interface engines do. In the end:
//   - every message ACKed AA has exactly one NEWS2 row in the committed output;
//   - every malformed one was answered AE or AR and is in the dead letters.

#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <sstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/cluster_client.h"
#include "gtest/gtest.h"
#include "runtime/network/mllp_client.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kJob[] = R"yaml(name: bedside-news2
parallelism: 2
checkpointing: {interval: 300ms, mode: exactly_once}
sources:
  - name: hl7
    connector: mllp
    port: $PORT
    format: hl7v2
    dead_letter: bad
operators:
  - name: unique
    type: dedup
    input: hl7
    key: [message_id, set_id]
    ttl: 1h
  - name: scores
    type: news2
    input: unique
sinks:
  - name: out
    connector: file
    input: scores
    path: $DIR/scores
    format: jsonl
  - name: rejected
    connector: file
    input: bad
    path: $DIR/bad
    format: jsonl
)yaml";

// A port p with p + 1 free too (subtask i listens on port + i).
int TwoFreePorts() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int fds[2] = {::socket(AF_INET, SOCK_STREAM, 0), ::socket(AF_INET, SOCK_STREAM, 0)};
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = 0;
    if (::bind(fds[0], reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
        ::getsockname(fds[0], reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
      a.sin_port = htons(static_cast<uint16_t>(port + 1));
      if (port >= 65535 || ::bind(fds[1], reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) port = 0;
    }
    ::close(fds[0]);
    ::close(fds[1]);
    if (port != 0) return port;
  }
  return 0;
}

enum class Kind { kGood, kBadValue, kNoMsh };

Kind KindOf(int i) {
  if (i % 100 == 7) return Kind::kBadValue;  // AE: OBX-5 of type NM is no number
  if (i % 100 == 57) return Kind::kNoMsh;    // AR: no message at all
  return Kind::kGood;
}

std::string Message(int i) {
  const std::string id = absl::StrCat("M", i);
  if (KindOf(i) == Kind::kNoMsh) return absl::StrCat("PID|1||P1^^^HOSP^MR\rNTE|1||", id, "\r");
  // 200 patients, one observation set a minute each.
  const int64_t minute = i / 200;
  const std::string at = absl::StrCat("202403011", 5 + minute / 60 % 5, minute % 60 < 10 ? "0" : "", minute % 60,
                                      "00+0000");
  const std::string hr = KindOf(i) == Kind::kBadValue ? "9O" : std::to_string(60 + i % 50);
  return absl::StrCat("MSH|^~\\&|MON|ICU|VSTREAM|HOSP|", at, "||ORU^R01^ORU_R01|", id, "|P|2.6\r",
                      "PID|1||P", i % 200, "^^^HOSP^MR\r",
                      "OBR|1|||VITALS|||", at, "\r",
                      "OBX|1|NM|8867-4^Heart rate^LN||", hr, "|/min|||||F\r",
                      "OBX|2|NM|9279-1^Respiratory rate^LN||", 12 + i % 14, "|/min|||||F\r",
                      "OBX|3|NM|59408-5^SpO2^LN||", 90 + i % 10, "|%|||||F\r",
                      "OBX|4|NM|8480-6^Systolic BP^LN||", 95 + i % 60, "|mm[Hg]|||||F\r",
                      "OBX|5|NM|8310-5^Body temperature^LN||", 36 + (i % 30) / 10.0, "|Cel|||||F\r");
}

// The committed lines of a file sink's output of a running job (in-progress
// files, starting with '.', are left out).
std::vector<std::string> CommittedLines(const std::string& dir) {
  std::vector<std::string> lines;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return lines;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename().string()[0] == '.') continue;
    std::istringstream in(ReadFile(e.path().string()));
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
  }
  return lines;
}

TEST(MllpClusterTest, EveryAckedMessageIsScoredOnceAcrossATaskManagerKill) {
  constexpr int kMessages = 10'000, kSenders = 4;
  const int port = TwoFreePorts();
  ASSERT_NE(port, 0);
  TestCluster cluster(3, 2);
  TempDir data("mllp");
  WriteFile(data.File("job.yaml"),
            absl::StrReplaceAll(kJob, {{"$DIR", data.path()}, {"$PORT", std::to_string(port)}}));
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml")}, seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string job_id = r.out.substr(0, r.out.find('\n'));

  // Senders: thread t sends messages t, t + 4, ... to port + t % 2, each
  // until it is ACKed; every 20th good one is sent again after its ACK.
  std::mutex mu;
  std::map<int, std::string> acks;  // message -> last ACK code
  std::atomic<int> acked{0}, resends{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      std::unique_ptr<MllpClient> client;
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(3);
      auto send = [&](int i) {
        while (std::chrono::steady_clock::now() < give_up) {
          if (!client) {
            // While the job restarts, nothing listens: wait until something does.
            WaitFor(
                [&] {
                  auto c = MllpClient::Connect("127.0.0.1", port + t % 2, seconds(2));
                  if (c.ok()) client = std::move(*c);
                  return client != nullptr;
                },
                std::chrono::duration_cast<milliseconds>(give_up - std::chrono::steady_clock::now()));
            if (!client) continue;
          }
          absl::StatusOr<std::string> ack = client->Send(Message(i), seconds(3));
          if (!ack.ok()) {
            client.reset();  // the receiver died or hung: send again
            ++resends;
            continue;
          }
          std::lock_guard<std::mutex> lock(mu);
          acks[i] = AckCode(*ack);
          return;
        }
      };
      for (int i = t; i < kMessages; i += kSenders) {
        send(i);
        ++acked;
        if (KindOf(i) == Kind::kGood && i % 20 == 0) send(i);  // a duplicate
      }
    });
  }

  // Kill a TaskManager that runs an MLLP subtask once a third is ACKed.
  ASSERT_TRUE(WaitFor([&] { return acked >= kMessages / 3; }, std::chrono::minutes(2)));
  int victim = -1;
  for (int i = 0; i < cluster.num_taskmanagers() && victim < 0; ++i) {
    if (cluster.taskmanager(i).Stderr().find("listening for MLLP") != std::string::npos) victim = i;
  }
  ASSERT_GE(victim, 0) << "no TaskManager says it listens for MLLP";
  const int acked_at_kill = acked;
  cluster.taskmanager(victim).Kill(SIGKILL);
  ASSERT_TRUE(cluster.RestartTaskManager(victim));
  for (auto& s : senders) s.join();
  std::printf("killed TaskManager %d after %d ACKs; %d sends were repeated after a lost connection or ACK\n", victim,
              acked_at_kill, resends.load());
  ASSERT_EQ(static_cast<int>(acks.size()), kMessages);
  EXPECT_LT(acked_at_kill, kMessages) << "the kill came after the last message: send more";

  std::set<std::string> want, want_dead;
  for (const auto& [i, code] : acks) {
    if (KindOf(i) == Kind::kGood) {
      EXPECT_EQ(code, "AA") << "message " << i;
      want.insert(absl::StrCat("M", i));
    } else {
      EXPECT_EQ(code, KindOf(i) == Kind::kBadValue ? "AE" : "AR") << "message " << i;
      want_dead.insert(absl::StrCat("M", i));
    }
  }

  // Every ACKed good message scored once; the dead letters hold the rest.
  const std::regex id_re("\"message_id\":\"(M[0-9]+)\"");
  const std::regex raw_id_re("[|](M[0-9]+)([|]|\\\\r)");  // MSH-10 or NTE-3
  std::multiset<std::string> scored;
  std::set<std::string> dead;
  auto collect = [&] {
    scored.clear();
    for (const std::string& line : CommittedLines(data.File("scores"))) {
      std::smatch m;
      if (std::regex_search(line, m, id_re)) scored.insert(m[1]);
    }
    dead.clear();
    for (const std::string& line : CommittedLines(data.File("bad"))) {
      std::smatch m;
      if (std::regex_search(line, m, raw_id_re)) dead.insert(m[1]);
    }
    return std::set<std::string>(scored.begin(), scored.end()) == want && dead == want_dead;
  };
  EXPECT_TRUE(WaitFor(collect, std::chrono::minutes(2)))
      << "scored " << std::set<std::string>(scored.begin(), scored.end()).size() << " of " << want.size()
      << " messages; " << dead.size() << " of " << want_dead.size() << " dead letters";
  EXPECT_EQ(scored.size(), std::set<std::string>(scored.begin(), scored.end()).size())
      << "some message was scored twice";
  ClusterClient client(cluster.jobmanager_address());
  absl::StatusOr<proto::JobStatus> st = client.Get(job_id);
  ASSERT_TRUE(st.ok());
  EXPECT_GE(st->restarts(), 1) << "the kill should have restarted the job";
}

}  // namespace
}  // namespace vstream::testing
