#include "client/cluster_client.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vstream {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

proto::JobStatus RunningJob() {
  proto::JobStatus st;
  st.set_job_id("0123456789abcdef0123456789abcdef");
  st.set_name("vitals");
  st.set_state(proto::RUNNING);
  st.set_submitted_at_ms(1000);
  st.set_ended_at_ms(3500);
  proto::VertexStatus* v = st.add_vertices();
  v->set_name("src");
  v->set_parallelism(2);
  v->set_state(proto::TASK_RUNNING);
  v->set_records_out(12345);
  return st;
}

TEST(FormatJobStatusTest, WithoutCheckpointingTheOutputIsAsBefore) {
  EXPECT_EQ(FormatJobStatus(RunningJob()),
            "Job 0123456789abcdef0123456789abcdef (vitals)\n"
            "State: RUNNING  (2.5 s since submission)\n"
            "\n"
            "VERTEX  PARALLELISM  STATE          RECORDS IN     RECORDS OUT  DEAD LETTERS          LATE\n"
            "src               2  RUNNING                 0          12,345             0             0\n");
}

TEST(FormatJobStatusTest, CheckpointsTableUnderTheVertices) {
  proto::JobStatus st = RunningJob();
  const std::string before = FormatJobStatus(st);
  st.set_checkpoint_storage("file:///ckpt/job");
  EXPECT_EQ(FormatJobStatus(st), before + "\nCHECKPOINTS  latest completed: none  storage: file:///ckpt/job\n"
                                          "(none triggered yet)\n");

  st.set_latest_completed_checkpoint(6);
  proto::CheckpointStatus* c = st.add_checkpoints();
  c->set_checkpoint_id(6);
  c->set_state(proto::CHECKPOINT_COMPLETED);
  c->set_duration_ms(1234);
  c->set_bytes(5 * 1024 * 1024 + 300 * 1024);
  c->set_alignment_ms(15);
  c->set_sync_ms(42);
  c->set_async_ms(1100);
  c = st.add_checkpoints();
  c->set_checkpoint_id(9);
  c->set_state(proto::CHECKPOINT_COMPLETED);
  c->set_duration_ms(140);
  c->set_bytes(3 * 1024 * 1024);
  c->set_unaligned(true);
  c->set_channel_state_bytes(700 * 1024);
  c = st.add_checkpoints();
  c->set_checkpoint_id(7);
  c->set_state(proto::CHECKPOINT_FAILED);
  c->set_duration_ms(60'000);
  c->set_failure("expired after 60000 ms with 3 of 4 tasks done; waiting for j/c1/s0");
  c = st.add_checkpoints();
  c->set_checkpoint_id(8);
  c->set_state(proto::CHECKPOINT_IN_PROGRESS);
  c->set_duration_ms(300);
  c->set_bytes(512);
  c->set_acknowledged(2);
  c->set_tasks(4);
  EXPECT_EQ(FormatJobStatus(st),
            before +
                "\nCHECKPOINTS  latest completed: 6  storage: file:///ckpt/job\n"
                "      ID  STATE         DURATION        SIZE  ALIGNMENT      SYNC     ASYNC   IN-FLIGHT  REASON\n"
                "       6  COMPLETED        1.2 s     5.3 MiB      15 ms     42 ms     1.1 s           -\n"
                "       9  COMPLETED       140 ms     3.0 MiB       0 ms      0 ms      0 ms   700.0 KiB\n"
                "       7  FAILED          60.0 s         0 B       0 ms      0 ms      0 ms           -  expired after "
                "60000 ms with 3 of 4 tasks done; waiting for j/c1/s0\n"
                "       8  IN_PROGRESS     300 ms       512 B       0 ms      0 ms      0 ms           -  2 of 4 tasks "
                "done\n");
}

TEST(FormatJobStatusTest, RestartsAndTheSavepointItStartedFrom) {
  proto::JobStatus st = RunningJob();
  EXPECT_THAT(FormatJobStatus(st), Not(HasSubstr("Restarts")));
  st.set_restarts(2);
  st.set_attempt(2);
  st.set_restored_checkpoint(14);
  st.set_last_failure("TaskManager tm-3 was lost");
  st.set_started_from("file:///sp/savepoint-012345-9");
  const std::string out = FormatJobStatus(st);
  EXPECT_THAT(out, HasSubstr("Restarts: 2 (attempt 2), restored checkpoint 14\n"
                             "Last failure: TaskManager tm-3 was lost\n"
                             "Started from savepoint: file:///sp/savepoint-012345-9\n"));
}

TEST(FormatJobStatusTest, BytesAndMillisForHumans) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3.0 GiB");
  EXPECT_EQ(FormatMillis(999), "999 ms");
  EXPECT_EQ(FormatMillis(1500), "1.5 s");
  EXPECT_THAT(FormatJobStatus(RunningJob()), Not(HasSubstr("CHECKPOINTS")));
}

}  // namespace
}  // namespace vstream
