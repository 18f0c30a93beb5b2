// MLLP framing, ACKs, the message log and the MLLP source in one process,
// over real loopback sockets and real files.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/formats/hl7v2.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/formats/mllp.h"
#include "runtime/network/mllp_client.h"
#include "runtime/operators/message_log.h"
#include "runtime/operators/mllp_source.h"
#include "state/state_clock.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string TempDir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("vstream-mllp-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(p);
  return p.string();
}

std::string Oru(int i) {
  const std::string id = std::to_string(i);
  return "MSH|^~\\&|MON|WARD7|ENGINE|HOSP|20240301150004+0000||ORU^R01^ORU_R01|M" + id + "|P|2.6\r"
         "PID|1||P" + std::to_string(i % 7) + "^^^HOSP^MR\r"
         "OBR|1|||VITALS|||20240301150000+0000\r"
         "OBX|1|NM|8867-4^HR^LN||" + std::to_string(60 + i % 40) + "|/min|||||F\r"
         "OBX|2|NM|9279-1^RR^LN||18|/min|||||F\r";
}

std::string Framed(std::string_view message) {
  return std::string(1, kMllpStart) + std::string(message) + std::string{kMllpEnd, kMllpCarriageReturn};
}

TEST(MllpDecoderTest, CutsFramesAcrossReadsAndSkipsJunk) {
  MllpDecoder d(100);
  const std::string stream = "xx" + Framed("MSH|a") + "\r\n" + Framed("MSH|b") + Framed("");
  std::vector<std::string> got;
  for (char c : stream) {  // one byte at a time
    d.Feed(std::string_view(&c, 1));
    MllpFrame f;
    while (d.Next(&f)) got.emplace_back(f.text);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"MSH|a", "MSH|b", ""}));
  EXPECT_EQ(d.junk_bytes(), 2);  // "xx"; the CR LF after an end block is not junk
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(MllpDecoderTest, AFrameOverTheLimitComesOutMarkedAndCut) {
  MllpDecoder d(10);
  d.Feed("\x0b" "0123456789ABC");
  MllpFrame f;
  EXPECT_FALSE(d.Next(&f));
  d.Feed("DEF\x1c\r" + Framed("ok"));
  ASSERT_TRUE(d.Next(&f));
  EXPECT_TRUE(f.too_long);
  EXPECT_EQ(f.length, 16);
  EXPECT_EQ(f.text, "0123456789ABC");  // what had arrived when it went over
  ASSERT_TRUE(d.Next(&f));
  EXPECT_FALSE(f.too_long);
  EXPECT_EQ(f.text, "ok");
  EXPECT_FALSE(d.Next(&f));
}

TEST(Hl7AckTest, AnswersWithTheMessagesDelimitersIdsAndAnEscapedError) {
  Hl7Message m;
  ASSERT_TRUE(m.Parse("MSH#*~\\&#MON#WARD7#ENGINE#HOSP#20240301150004##ORU*R01#CTRL9#P#2.6\rPID#1\r").ok());
  const std::string aa = BuildHl7Ack(&m, "AA", "", "", 1709305204000, "A1");
  EXPECT_EQ(aa, "MSH#*~\\&#ENGINE#HOSP#MON#WARD7#20240301150004##ACK*R01*ACK#A1#P#2.6\rMSA#AA#CTRL9\r");
  EXPECT_EQ(AckCode(aa), "AA");
  const std::string ae = BuildHl7Ack(&m, "AE", "102^Data type error^HL70357", "bad # and * here", 0, "A2");
  EXPECT_NE(ae.find("\rMSA#AE#CTRL9\rERR###102^Data type error^HL70357#E####bad \\F\\ and \\S\\ here\r"),
            std::string::npos)
      << ae;
  EXPECT_EQ(GuessControlId("MSH|^~\\&|A|B|C|D|2024||ORU^R01|CTRL7|P|2.5\rOBX|bad"), "CTRL7");
  EXPECT_EQ(GuessControlId("MSH|^~\\&|A|B"), "");
  EXPECT_EQ(GuessControlId("PID|1"), "");
  EXPECT_NE(BuildHl7Ack(nullptr, "AR", "100", "x", 0, "A4", "CTRL7").find("\rMSA|AR|CTRL7\r"), std::string::npos);
  const std::string ar = BuildHl7Ack(nullptr, "AR", "100", "no MSH", 0, "A3");
  EXPECT_EQ(ar, "MSH|^~\\&|||||19700101000000||ACK^^ACK|A3|P|2.5.1\rMSA|AR|\rERR|||100|E||||no MSH\r");
  EXPECT_EQ(AckCode(ar), "AR");
  EXPECT_EQ(AckCode("MSH|x"), "");
}

TEST(MessageLogTest, ReadsBackWhatWasCommittedAcrossSegments) {
  const std::string dir = TempDir("log");
  auto log = MessageLog::Open(dir, /*segment_bytes=*/200);
  ASSERT_TRUE(log.ok()) << log.status();
  LoggedMessage m;
  ASSERT_TRUE((*log)->Seek((*log)->start()).ok());
  EXPECT_FALSE(*(*log)->Next(&m));
  for (int i = 0; i < 20; ++i) {
    (*log)->Add(i % 5 == 0 ? LoggedMessage::kRejected : LoggedMessage::kAccepted, 1000 + i,
                i % 5 == 0 ? "bad" : "", "message " + std::to_string(i));
    if (i % 3 == 2) {
      ASSERT_TRUE((*log)->Commit().ok());
    }
  }
  // 18 committed, 2 only buffered: not visible.
  for (int i = 0; i < 18; ++i) {
    absl::StatusOr<bool> next = (*log)->Next(&m);
    ASSERT_TRUE(next.ok() && *next) << i << " " << next.status();
    EXPECT_EQ(m.bytes, "message " + std::to_string(i));
    EXPECT_EQ(m.received_at_ms, 1000 + i);
    EXPECT_EQ(m.kind == LoggedMessage::kRejected, i % 5 == 0);
    EXPECT_EQ(m.reason, i % 5 == 0 ? "bad" : "");
  }
  EXPECT_FALSE(*(*log)->Next(&m));
  const LogPosition end = (*log)->position();
  EXPECT_GE(end.segment, 3) << "200-byte segments: several";
  ASSERT_TRUE((*log)->Commit().ok());
  ASSERT_TRUE(*(*log)->Next(&m));
  EXPECT_EQ(m.bytes, "message 18");

  // Another process may not append to it.
  EXPECT_TRUE(absl::IsUnavailable(MessageLog::Open(dir, 200).status()));

  // Segments before a position go; seeking into them is DataLoss.
  (*log)->DeleteBefore(end.segment);
  EXPECT_EQ((*log)->start().segment, end.segment);
  EXPECT_TRUE(absl::IsDataLoss((*log)->Seek({1, 0})));
  ASSERT_TRUE((*log)->Seek(end).ok());
  ASSERT_TRUE(*(*log)->Next(&m));
  EXPECT_EQ(m.bytes, "message 18");
  fs::remove_all(dir);
}

TEST(MessageLogTest, ATornRecordAtTheEndIsCutOffOnOpen) {
  const std::string dir = TempDir("torn");
  std::string segment;
  {
    auto log = MessageLog::Open(dir);
    ASSERT_TRUE(log.ok());
    (*log)->Add(LoggedMessage::kAccepted, 1, "", "first");
    (*log)->Add(LoggedMessage::kAccepted, 2, "", "second");
    ASSERT_TRUE((*log)->Commit().ok());
    segment = dir + "/00000001.log";
  }
  const auto size = fs::file_size(segment);
  fs::resize_file(segment, size - 3);  // the second record, half written
  {
    auto log = MessageLog::Open(dir);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE((*log)->Seek((*log)->start()).ok());
    LoggedMessage m;
    ASSERT_TRUE(*(*log)->Next(&m));
    EXPECT_EQ(m.bytes, "first");
    EXPECT_FALSE(*(*log)->Next(&m));
    (*log)->Add(LoggedMessage::kAccepted, 3, "", "third");
    ASSERT_TRUE((*log)->Commit().ok());
    ASSERT_TRUE(*(*log)->Next(&m));
    EXPECT_EQ(m.bytes, "third");
  }
  // A flipped byte in the first record...
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('#');
  }
  // ... but "third" is sound after it: acknowledged messages went bad, and
  // the log will not cut them off.
  auto log = MessageLog::Open(dir);
  EXPECT_TRUE(absl::IsDataLoss(log.status())) << log.status();
  EXPECT_NE(std::string(log.status().message()).find("followed by sound ones"), std::string::npos) << log.status();
  fs::remove_all(dir);
}

// Collects rows and dead letters.
class Rows : public Output {
 public:
  explicit Rows(int field) : field_(field) {}
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) values.emplace_back(batch[i][field_].s);
  }
  void Finish() override {}
  void PushWatermark(int64_t) override {}
  std::vector<std::string> values;

 private:
  int field_;
};

struct SourceRun {
  OperatorCounters counters;
  std::unique_ptr<MllpSource> source;
  Rows rows{0};   // message_id
  Rows dead{2};   // reason (DeadLetterSchema: location, ..., see runtime/dead_letter.h)
};

std::unique_ptr<SourceRun> StartSource(const std::string& dir, const ManualStateClock& clock,
                                       const std::string& restore = "") {
  auto run = std::make_unique<SourceRun>();
  proto::SourceSpec spec;
  spec.set_connector("mllp");
  spec.set_max_message_bytes(2000);
  run->source = std::make_unique<MllpSource>(run->counters, Hl7ObservationSchema(), spec);
  run->source->set_output(&run->rows);
  run->source->set_dead_letter_output(&run->dead);
  OperatorContext ctx;
  ctx.job_id = "job";
  ctx.vertex_name = "hl7";
  ctx.data_dir = dir + "/tm";
  ctx.checkpoint_dir = dir + "/checkpoints";
  ctx.checkpointing = true;
  ctx.clock = &clock;
  absl::Status s = run->source->Open(ctx);
  EXPECT_TRUE(s.ok()) << s;
  if (!restore.empty()) {
    s = run->source->RestoreOperatorState(restore);
    EXPECT_TRUE(s.ok()) << s;
  }
  return run;
}

// Produces until `rows` message ids and `dead` dead letters arrived.
void ProduceUntil(SourceRun& run, size_t rows, size_t dead) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while ((run.rows.values.size() < rows || run.dead.values.size() < dead) &&
         std::chrono::steady_clock::now() < deadline) {
    run.source->Produce();
    ASSERT_TRUE(run.source->status().ok()) << run.source->status();
  }
  ASSERT_EQ(run.rows.values.size(), rows);
  ASSERT_EQ(run.dead.values.size(), dead);
}

TEST(MllpSourceTest, AcksOnlyWhatItLoggedAndReplaysFromTheCheckpoint) {
  const std::string dir = TempDir("source");
  const ManualStateClock clock(1709305300000);
  auto run = StartSource(dir, clock);
  auto client = MllpClient::Connect("127.0.0.1", run->source->port(), seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();
  // Two good messages (2 rows each), then a bad OBX value, a frame without
  // MSH, and one over max_message_bytes.
  for (int i = 0; i < 2; ++i) {
    auto ack = (*client)->Send(Oru(i), seconds(5));
    ASSERT_TRUE(ack.ok()) << ack.status();
    EXPECT_EQ(AckCode(*ack), "AA") << *ack;
    EXPECT_NE(ack->find("MSA|AA|M" + std::to_string(i)), std::string::npos) << *ack;
  }
  std::string bad = Oru(2);
  bad.replace(bad.find("20240301150000+0000"), 19, "2024-03-01");
  auto ack = (*client)->Send(bad, seconds(5));
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(AckCode(*ack), "AE") << *ack;
  EXPECT_NE(ack->find("\rERR|||102^Data type error^HL70357|E|"), std::string::npos) << *ack;
  ack = (*client)->Send("PID|1||X\r", seconds(5));
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(AckCode(*ack), "AR") << *ack;
  ack = (*client)->Send(Oru(3) + std::string(3000, 'Z'), seconds(5));
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(AckCode(*ack), "AR") << *ack;
  EXPECT_NE(ack->find("longer than max_message_bytes (2000)"), std::string::npos) << *ack;

  ProduceUntil(*run, 4, 3);
  EXPECT_EQ(run->rows.values, (std::vector<std::string>{"M0", "M0", "M1", "M1"}));
  const std::string checkpoint = run->source->SnapshotOperatorState(1);
  run->source->NotifyCheckpointComplete(1);

  // ACKed after the checkpoint, then the process "dies" before emitting.
  for (int i = 10; i < 13; ++i) {
    auto a = (*client)->Send(Oru(i), seconds(5));
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(AckCode(*a), "AA");
  }
  client->reset();
  run.reset();

  // The restored subtask replays exactly those, from its log.
  auto again = StartSource(dir, clock, checkpoint);
  ProduceUntil(*again, 6, 0);
  EXPECT_EQ(again->rows.values, (std::vector<std::string>{"M10", "M10", "M11", "M11", "M12", "M12"}));
  // And takes new messages on its port.
  auto c2 = MllpClient::Connect("127.0.0.1", again->source->port(), seconds(5));
  ASSERT_TRUE(c2.ok());
  auto a = (*c2)->Send(Oru(20), seconds(5));
  ASSERT_TRUE(a.ok());
  ProduceUntil(*again, 8, 0);
  fs::remove_all(dir);
}

TEST(MllpSourceTest, ASenderThatClosesItsSideStillGetsItsAcks) {
  const std::string dir = TempDir("half-close");
  const ManualStateClock clock(1709305300000);
  auto run = StartSource(dir, clock);
  auto client = MllpClient::Connect("127.0.0.1", run->source->port(), seconds(5));
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->SendRaw(Framed(Oru(1)) + Framed(Oru(2))).ok());
  (*client)->CloseWrite();
  for (int i = 1; i <= 2; ++i) {
    auto ack = (*client)->Receive(seconds(5));
    ASSERT_TRUE(ack.ok()) << ack.status();
    EXPECT_NE(ack->find("MSA|AA|M" + std::to_string(i)), std::string::npos) << *ack;
  }
  ProduceUntil(*run, 4, 0);
  fs::remove_all(dir);
}

TEST(MllpSourceTest, ConcurrentSendersAreAllAckedAndRead) {
  const std::string dir = TempDir("concurrent");
  const ManualStateClock clock(1709305300000);
  auto run = StartSource(dir, clock);
  constexpr int kSenders = 4, kEach = 50;
  std::vector<std::thread> senders;
  std::atomic<int> acked{0};
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      auto c = MllpClient::Connect("127.0.0.1", run->source->port(), seconds(5));
      if (!c.ok()) return;
      for (int i = 0; i < kEach; ++i) {
        auto a = (*c)->Send(Oru(t * 1000 + i), seconds(5));
        if (a.ok() && AckCode(*a) == "AA") ++acked;
      }
    });
  }
  // Read while they send.
  const auto deadline = std::chrono::steady_clock::now() + seconds(30);
  while (run->rows.values.size() < 2u * kSenders * kEach && std::chrono::steady_clock::now() < deadline) {
    run->source->Produce();
  }
  for (auto& s : senders) s.join();
  EXPECT_EQ(acked.load(), kSenders * kEach);
  std::set<std::string> ids(run->rows.values.begin(), run->rows.values.end());
  EXPECT_EQ(ids.size(), static_cast<size_t>(kSenders * kEach));
  EXPECT_EQ(run->rows.values.size(), 2u * kSenders * kEach);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vstream
