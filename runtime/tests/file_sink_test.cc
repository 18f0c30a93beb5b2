// FileSink: publishing at the end of input without checkpointing, and the
// two-phase commit (stage at a checkpoint barrier, publish when the
// checkpoint completes, recover on a restore) with checkpointing.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/operators/sinks.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

Schema TestSchema() { return Schema({{"id", FieldType::kInt}, {"name", FieldType::kString}}); }

// A fresh, empty directory per test.
std::string TempDir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / absl::StrCat("vstream-file-sink-", ::getpid(), "-", name);
  fs::remove_all(p);
  return p.string();
}

OperatorContext Context(int subtask, bool checkpointing, bool at_least_once = false) {
  OperatorContext ctx;
  ctx.at_least_once = at_least_once;
  ctx.job_id = "job";
  ctx.vertex_name = "out";
  ctx.subtask_index = subtask;
  ctx.parallelism = 2;
  ctx.checkpointing = checkpointing;
  return ctx;
}

// A file sink over `dir`, opened; `state` non-null: restored from it.
class TestingFileSink {
 public:
  TestingFileSink(const std::string& dir, bool checkpointing, int subtask = 0, const std::string* state = nullptr,
                  bool at_least_once = false)
      : sink_(std::make_unique<FileSink>(counters_, TestSchema(), dir, "csv")) {
    EXPECT_TRUE(sink_->Open(Context(subtask, checkpointing, at_least_once)).ok());
    if (state != nullptr) {
      absl::Status s = sink_->RestoreOperatorState(*state);
      EXPECT_TRUE(s.ok()) << s;
    }
  }
  FileSink& operator*() { return *sink_; }
  FileSink* operator->() { return sink_.get(); }
  // Pushes rows with ids [from, to).
  void Push(int from, int to) {
    RowBatch batch(2);
    for (int i = from; i < to; ++i) {
      Row& r = batch.Append();
      r[0].SetInt(i);
      r[1].SetString(absl::StrCat("n", i));
    }
    sink_->Push(batch);
    ASSERT_TRUE(sink_->status().ok()) << sink_->status();
  }
  // The process dies: no Finish, no more checkpoints.
  void Crash() { sink_.reset(); }

 private:
  OperatorCounters counters_;
  std::unique_ptr<FileSink> sink_;
};

// File name -> content of every file in dir.
std::map<std::string, std::string> Files(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    files[entry.path().filename().string()] = content.str();
  }
  return files;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& [name, content] : Files(dir)) names.push_back(name);
  return names;
}

// The rows with ids [from, to) as CSV lines, with the header first.
std::string Csv(int from, int to) {
  std::string out = "id,name\n";
  for (int i = from; i < to; ++i) absl::StrAppend(&out, i, ",n", i, "\n");
  return out;
}

TEST(FileSinkTest, WithoutCheckpointingPublishesOneFileAtFinish) {
  const std::string dir = TempDir("no-checkpointing");
  TestingFileSink sink(dir, /*checkpointing=*/false, /*subtask=*/1);
  EXPECT_FALSE(sink->needs_final_checkpoint());
  sink.Push(0, 3);
  EXPECT_EQ(Names(dir), std::vector<std::string>{".part-1.csv.inprogress"});
  sink->Finish();
  ASSERT_TRUE(sink->status().ok()) << sink->status();
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-1.csv", Csv(0, 3)}}));
}

TEST(FileSinkTest, OutputIsVisibleOnlyOnceItsCheckpointCompletes) {
  const std::string dir = TempDir("visible-on-complete");
  TestingFileSink sink(dir, /*checkpointing=*/true);
  EXPECT_TRUE(sink->needs_final_checkpoint());
  EXPECT_TRUE(Names(dir).empty()) << "no file before the first record";
  sink.Push(0, 3);
  EXPECT_EQ(Names(dir), std::vector<std::string>{".part-0-0.csv.inprogress"});
  sink->SnapshotOperatorState(1);
  sink.Push(3, 5);
  sink->SnapshotOperatorState(2);
  EXPECT_EQ(Names(dir), (std::vector<std::string>{".part-0-0.csv.inprogress", ".part-0-1.csv.inprogress"}));

  sink->NotifyCheckpointComplete(1);
  ASSERT_TRUE(sink->status().ok()) << sink->status();
  EXPECT_EQ(Files(dir),
            (std::map<std::string, std::string>{{".part-0-1.csv.inprogress", Csv(3, 5)}, {"part-0-0.csv", Csv(0, 3)}}));
  sink->NotifyCheckpointComplete(2);
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-0-0.csv", Csv(0, 3)}, {"part-0-1.csv", Csv(3, 5)}}));
}

TEST(FileSinkTest, AtLeastOncePublishesAtTheBarrierAndARestoreKeepsEverythingPublished) {
  const std::string dir = TempDir("at-least-once");
  std::string state;
  {
    TestingFileSink sink(dir, /*checkpointing=*/true, 0, nullptr, /*at_least_once=*/true);
    EXPECT_FALSE(sink->needs_final_checkpoint());
    sink.Push(0, 3);
    state = sink->SnapshotOperatorState(1);
    EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-0-0.csv", Csv(0, 3)}}))
        << "visible at the barrier, before the checkpoint completes";
    sink.Push(3, 5);
    sink->SnapshotOperatorState(2);  // published; checkpoint 2 never completes
    sink.Push(5, 6);                 // then the task dies
  }
  TestingFileSink restored(dir, /*checkpointing=*/true, 0, &state, /*at_least_once=*/true);
  restored.Push(3, 6);  // the replay after checkpoint 1
  restored->Finish();
  ASSERT_TRUE(restored->status().ok()) << restored->status();
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{
                            {"part-0-0.csv", Csv(0, 3)}, {"part-0-1.csv", Csv(3, 5)}, {"part-0-2.csv", Csv(3, 6)}}))
      << "rows 3 and 4 twice, none lost, the hidden file of the dead task gone";
}

TEST(FileSinkTest, ALaterNotificationSubsumesALostOne) {
  const std::string dir = TempDir("subsumed");
  TestingFileSink sink(dir, /*checkpointing=*/true);
  sink.Push(0, 2);
  sink->SnapshotOperatorState(1);
  sink->SnapshotOperatorState(2);  // no new data: no new file
  sink.Push(2, 4);
  sink->SnapshotOperatorState(3);
  sink->NotifyCheckpointComplete(3);  // 1's notification was lost
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-0-0.csv", Csv(0, 2)}, {"part-0-1.csv", Csv(2, 4)}}));
}

TEST(FileSinkTest, FinishPublishesNothingTheFinalCheckpointPublishesAll) {
  const std::string dir = TempDir("final-checkpoint");
  TestingFileSink sink(dir, /*checkpointing=*/true);
  sink.Push(0, 2);
  sink->SnapshotOperatorState(1);
  sink.Push(2, 5);
  sink->Finish();
  ASSERT_TRUE(sink->status().ok()) << sink->status();
  EXPECT_EQ(Names(dir), (std::vector<std::string>{".part-0-0.csv.inprogress", ".part-0-1.csv.inprogress"}));

  sink->SnapshotOperatorState(2);  // the final checkpoint
  sink->NotifyCheckpointComplete(2);
  ASSERT_TRUE(sink->status().ok()) << sink->status();
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-0-0.csv", Csv(0, 2)}, {"part-0-1.csv", Csv(2, 5)}}));
}

TEST(FileSinkTest, RestoreCommitsThePendingFilesAndDropsLaterData) {
  const std::string dir = TempDir("restore-latest");
  std::string state;
  {
    TestingFileSink sink(dir, /*checkpointing=*/true);
    sink.Push(0, 3);
    sink->SnapshotOperatorState(1);
    sink.Push(3, 6);
    state = sink->SnapshotOperatorState(2);  // checkpoint 2 completes, its notification is lost
    sink.Push(6, 9);                         // after checkpoint 2: replayed after the restore
    sink.Crash();
  }
  EXPECT_EQ(Names(dir), (std::vector<std::string>{".part-0-0.csv.inprogress", ".part-0-1.csv.inprogress",
                                                  ".part-0-2.csv.inprogress"}));

  TestingFileSink restored(dir, /*checkpointing=*/true, /*subtask=*/0, &state);
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-0-0.csv", Csv(0, 3)}, {"part-0-1.csv", Csv(3, 6)}}));
  // The replay continues the numbering after the restored checkpoint.
  restored.Push(6, 9);
  restored->SnapshotOperatorState(3);
  restored->NotifyCheckpointComplete(3);
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{
                            {"part-0-0.csv", Csv(0, 3)}, {"part-0-1.csv", Csv(3, 6)}, {"part-0-2.csv", Csv(6, 9)}}));
}

TEST(FileSinkTest, RestoreFromAnOlderCheckpointDeletesTheNewerPendingFile) {
  const std::string dir = TempDir("restore-older");
  std::string state1;
  {
    TestingFileSink sink(dir, /*checkpointing=*/true);
    sink.Push(0, 3);
    state1 = sink->SnapshotOperatorState(1);
    sink.Push(3, 6);
    sink->SnapshotOperatorState(2);  // checkpoint 2 never completes
    sink.Crash();
  }
  TestingFileSink restored(dir, /*checkpointing=*/true, /*subtask=*/0, &state1);
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-0-0.csv", Csv(0, 3)}}));
}

TEST(FileSinkTest, RestoreIsIdempotentAndDeletesFilesPublishedAfterTheCheckpoint) {
  const std::string dir = TempDir("restore-idempotent");
  std::string state1;
  {
    TestingFileSink sink(dir, /*checkpointing=*/true);
    sink.Push(0, 3);
    state1 = sink->SnapshotOperatorState(1);
    sink->NotifyCheckpointComplete(1);  // part-0-0 published before the failure
    sink.Push(3, 6);
    sink->SnapshotOperatorState(2);
    sink->NotifyCheckpointComplete(2);  // part-0-1: then restored from 1 anyway
    sink.Crash();
  }
  {
    TestingFileSink restored(dir, /*checkpointing=*/true, /*subtask=*/0, &state1);
    EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-0-0.csv", Csv(0, 3)}}));
  }
  // Restoring the same checkpoint again changes nothing.
  TestingFileSink again(dir, /*checkpointing=*/true, /*subtask=*/0, &state1);
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{"part-0-0.csv", Csv(0, 3)}}));
}

TEST(FileSinkTest, AFreshStartDeletesHiddenLeftoversOfItsSubtaskOnly) {
  const std::string dir = TempDir("fresh-start");
  {
    TestingFileSink old_job(dir, /*checkpointing=*/true);
    old_job.Push(0, 2);
    old_job->SnapshotOperatorState(1);
    old_job->NotifyCheckpointComplete(1);
    old_job.Push(2, 4);
    old_job->SnapshotOperatorState(2);
    old_job.Crash();
  }
  std::ofstream(fs::path(dir) / ".part-1-0.csv.inprogress") << "other subtask";
  std::ofstream(fs::path(dir) / "notes.txt") << "not ours";

  TestingFileSink sink(dir, /*checkpointing=*/true);
  sink.Push(10, 12);
  EXPECT_EQ(Names(dir), (std::vector<std::string>{".part-0-1.csv.inprogress", ".part-1-0.csv.inprogress", "notes.txt",
                                                  "part-0-0.csv"}));
  sink->SnapshotOperatorState(1);
  sink->NotifyCheckpointComplete(1);
  // The old job's visible file stays; the new one is numbered after it.
  EXPECT_EQ(Files(dir), (std::map<std::string, std::string>{{".part-1-0.csv.inprogress", "other subtask"},
                                                            {"notes.txt", "not ours"},
                                                            {"part-0-0.csv", Csv(0, 2)},
                                                            {"part-0-1.csv", Csv(10, 12)}}));
}

TEST(FileSinkTest, GarbageStateIsDataLoss) {
  const std::string dir = TempDir("garbage");
  std::string good;
  {
    TestingFileSink sink(dir, /*checkpointing=*/true);
    sink.Push(0, 1);
    good = sink->SnapshotOperatorState(7);
  }
  const std::vector<std::string> garbage = {
      "garbage",
      std::string("\0\xff\x01", 3),
      good.substr(0, good.size() - 4),                              // truncated
      good + "pending 7 0\n",                                       // data after the end
      "vstream-file-sink 2\nsubtask 0\nformat csv\nnext 1\nend\n",  // unknown version
      "vstream-file-sink 1\nsubtask -1\nformat csv\nnext 1\nend\n",
      "vstream-file-sink 1\nsubtask 0\nformat ../x\nnext 1\nend\n",
      "vstream-file-sink 1\nsubtask 0\nformat csv\nnext 99999999999999999999\nend\n",
      "vstream-file-sink 1\nsubtask 0\nformat csv\nnext 1\npending 1 1\nend\n",  // seq >= next
      "vstream-file-sink 1\nsubtask 0\nformat csv\nnext 3\npending 1 1\npending 2 1\nend\n",
      "vstream-file-sink 1\nsubtask 0\nformat csv\nnext 3\npending 1\nend\n",
  };
  for (const std::string& state : garbage) {
    OperatorCounters counters;
    FileSink sink(counters, TestSchema(), dir, "csv");
    ASSERT_TRUE(sink.Open(Context(0, /*checkpointing=*/true)).ok());
    EXPECT_EQ(sink.RestoreOperatorState(state).code(), absl::StatusCode::kDataLoss) << state;
  }
  // Nothing was published or deleted on the way.
  EXPECT_EQ(Names(dir), std::vector<std::string>{".part-0-0.csv.inprogress"});
}

TEST(FileSinkTest, WriteErrorsNameThePath) {
  const std::string dir = TempDir("errors");
  TestingFileSink sink(dir, /*checkpointing=*/true);
  sink.Push(0, 1);
  sink->SnapshotOperatorState(1);
  fs::remove(fs::path(dir) / ".part-0-0.csv.inprogress");  // someone removed the pending file
  sink->NotifyCheckpointComplete(1);
  EXPECT_FALSE(sink->status().ok());
  EXPECT_NE(sink->status().message().find("part-0-0.csv"), absl::string_view::npos) << sink->status();
}

}  // namespace
}  // namespace vstream
