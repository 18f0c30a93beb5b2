// Backpressure keeps memory bounded: a fast unbounded generator feeds a
// throttled sink across two TaskManagers. Credit-based flow control must
// stop the generator, so the records in flight stay bounded and the
// TaskManagers' RSS stays flat while the sink crawls.

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "client/cluster_client.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

constexpr char kJob[] = R"(name: backpressure
parallelism: 2
sources:
  - name: gen
    connector: generator
    schema: {id: int, patient_id: string, hr: int}
sinks:
  - name: slow
    connector: blackhole
    input: gen
    key_by: [patient_id]
    max_rate: 2000
)";

struct Counts {
  int64_t produced = 0;
  int64_t consumed = 0;
};

Counts Read(ClusterClient& client, const std::string& job_id) {
  Counts c;
  auto st = client.Get(job_id);
  if (!st.ok()) return c;
  for (const auto& v : st->vertices()) {
    if (v.name() == "gen") c.produced = v.records_out();
    if (v.name() == "slow") c.consumed = v.records_in();
  }
  return c;
}

TEST(BackpressureTest, SlowSinkBoundsInFlightRecordsAndMemory) {
  TestCluster cluster(2, 2);
  TempDir data("bp");
  WriteFile(data.File("job.yaml"), kJob);
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml")}, std::chrono::seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string job_id = r.out.substr(0, r.out.find('\n'));
  ClusterClient client(cluster.jobmanager_address());

  // Warm up: buffers and RocksDB-free pipelines reach their steady size.
  ASSERT_TRUE(WaitFor([&] { return Read(client, job_id).consumed >= 4'000; }, std::chrono::seconds(60)));
  const int64_t rss0 = cluster.taskmanager(0).RssBytes() + cluster.taskmanager(1).RssBytes();

  int64_t max_in_flight = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        Counts c = Read(client, job_id);
        max_in_flight = std::max(max_in_flight, c.produced - c.consumed);
        return c.consumed >= 24'000;
      },
      std::chrono::seconds(60)));
  const int64_t rss1 = cluster.taskmanager(0).RssBytes() + cluster.taskmanager(1).RssBytes();
  Counts end = Read(client, job_id);
  std::printf("produced %lld, consumed %lld, max in flight %lld, TaskManager RSS %lld -> %lld KiB\n",
              static_cast<long long>(end.produced), static_cast<long long>(end.consumed),
              static_cast<long long>(max_in_flight), static_cast<long long>(rss0 >> 10),
              static_cast<long long>(rss1 >> 10));

  // Unthrottled, the generator makes millions of records a second; with
  // backpressure it may run ahead of the sink by the network buffers only
  // (4 channels x (8 queued + 8 credited + 1 building) x 32 KiB).
  EXPECT_LT(max_in_flight, 400'000) << "produced " << end.produced << ", consumed " << end.consumed;
  EXPECT_GT(end.produced, end.consumed) << "the generator must run ahead by the buffered records";
  EXPECT_LT(rss1 - rss0, 32ll << 20) << "RSS grew from " << rss0 << " to " << rss1;

  ASSERT_TRUE(client.Cancel(job_id).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = client.Get(job_id);
        return st.ok() && st->state() == proto::CANCELED;
      },
      std::chrono::seconds(30)));
}

// A throttled sink chained into the source's task (forward edges: source ->
// filter -> sink and source -> a second sink, one tree-shaped task) still
// paces it: the source may not run far ahead of max_rate, as it would if
// only tasks with network inputs were throttled.
TEST(BackpressureTest, SlowSinkChainedIntoTheSourceTaskPacesIt) {
  TestCluster cluster(1, 1);
  TempDir data("bp-chained");
  WriteFile(data.File("job.yaml"), R"(name: chained-slow-sink
parallelism: 1
sources:
  - name: gen
    connector: generator
    schema: {id: int, hr: int}
operators:
  - {name: some, type: filter, input: gen, where: "hr >= 0"}
sinks:
  - {name: slow, connector: blackhole, input: some, max_rate: 2000}
  - {name: fast, connector: blackhole, input: gen}
)");
  CommandResult r = cluster.Vstream({"submit", data.File("job.yaml")}, std::chrono::seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string job_id = r.out.substr(0, r.out.find('\n'));
  ClusterClient client(cluster.jobmanager_address());
  auto produced = [&] {
    auto st = client.Get(job_id);
    int64_t n = 0;
    if (st.ok()) {
      for (const auto& v : st->vertices()) {
        if (v.name() == "gen") n = v.records_out();
      }
    }
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return produced() >= 4'000; }, std::chrono::seconds(60)));
  const auto start = std::chrono::steady_clock::now();
  const int64_t from = produced();
  ASSERT_TRUE(WaitFor([&] { return produced() >= from + 6'000; }, std::chrono::seconds(60)));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // 6,000 records at 2,000/s take 3 s; unthrottled, milliseconds. The
  // status lags by up to a heartbeat, so the bound is loose.
  EXPECT_GT(secs, 1.5) << "the source produced 6,000 records in " << secs << " s";
  ASSERT_TRUE(client.Cancel(job_id).ok());
}

}  // namespace
}  // namespace vstream::testing
