#include <atomic>
#include <limits>
#include <thread>

#include "grpcpp/grpcpp.h"
#include "common/wait_for.h"
#include "gtest/gtest.h"
#include "runtime/network/data_exchange_service.h"
#include "runtime/network/input_gate.h"
#include "runtime/network/record_emitter.h"
#include "runtime/network/result_partition.h"
#include "runtime/operators/operator.h"
#include "runtime/row_codec.h"
#include "state/key_groups.h"

namespace vstream {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPoll(2);  // WaitFor's poll interval here


Schema TestSchema() {
  return Schema({{"id", FieldType::kInt},
                 {"name", FieldType::kString},
                 {"x", FieldType::kDouble},
                 {"ok", FieldType::kBool},
                 {"ts", FieldType::kTimestamp}});
}

NetworkBuffer Buffer(int records) {
  NetworkBuffer b;
  b.data.assign(static_cast<size_t>(records), 'x');
  b.num_records = records;
  return b;
}

TEST(RowCodecTest, RoundTripsEveryTypeAndNull) {
  Schema s = TestSchema();
  Row in(5);
  in[0].SetInt(-1234567890123);
  in[1].SetString(std::string("p\0q", 3));
  in[2].SetDouble(-0.125);
  in[3].SetBool(true);
  in[4].SetNull();
  std::string bytes;
  EncodeRow(s, in, &bytes);
  EncodeRow(s, in, &bytes);
  Row out;
  size_t pos = 0;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(DecodeRow(s, bytes, &pos, &out));
    EXPECT_EQ(out[0].i, in[0].i);
    EXPECT_EQ(out[1].s, in[1].s);
    EXPECT_EQ(out[2].d, in[2].d);
    EXPECT_EQ(out[3].i, 1);
    EXPECT_TRUE(out[4].is_null);
    EXPECT_FALSE(out[0].is_null);
  }
  EXPECT_EQ(pos, bytes.size());
  // Every truncation is detected, never read past the end.
  for (size_t cut = 0; cut < bytes.size() / 2; ++cut) {
    size_t p = 0;
    EXPECT_FALSE(DecodeRow(s, std::string_view(bytes.data(), cut), &p, &out)) << cut;
  }
}

// Rows and keys that fit on the stack are encoded in one pass, the rest
// (long strings, over 64 fields) in two: the bytes must be the same format.
TEST(RowCodecTest, SameKeyIsTheSameEncodedKey) {
  // Every pair of rows from values that encode alike or apart: nulls, 0.0
  // and -0.0 (different bytes), NaN, a bool stored as 2 (encoded as 1),
  // strings that are prefixes of each other.
  Schema s = TestSchema();
  std::vector<Datum> ids(4), names(4), xs(5), oks(4), tss(2);
  ids[1].SetInt(0);
  ids[2].SetInt(1);
  ids[3].SetInt(-1);
  names[1].SetString("");
  names[2].SetString("a");
  names[3].SetString("ab");
  xs[1].SetDouble(0.0);
  xs[2].SetDouble(-0.0);
  xs[3].SetDouble(1.5);
  xs[4].SetDouble(std::numeric_limits<double>::quiet_NaN());
  oks[1].SetBool(false);
  oks[2].SetBool(true);
  oks[3].SetInt(2);
  tss[1].SetInt(1764000000123);
  std::vector<Row> rows;
  for (const Datum& a : ids) {
    for (const Datum& b : names) {
      for (const Datum& c : xs) {
        for (const Datum& d : oks) {
          for (const Datum& e : tss) rows.push_back({a, b, c, d, e});
        }
      }
    }
  }
  for (const std::vector<int>& fields : {std::vector<int>{0, 1, 2, 3, 4}, std::vector<int>{4, 1}, {2}, {3}}) {
    std::vector<std::string> keys(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) EncodeKey(s, rows[i], fields, &keys[i]);
    int same = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      for (size_t j = 0; j < rows.size(); ++j) {
        ASSERT_EQ(SameKey(s, rows[i], rows[j], fields), keys[i] == keys[j]) << i << " " << j;
        same += keys[i] == keys[j] ? 1 : 0;
      }
    }
    EXPECT_GT(same, static_cast<int>(rows.size()));  // some pairs of different rows are one key
  }
}

TEST(RowCodecTest, VarintsOfEveryLengthAreTheBytesOfOneAtATime) {
  // Ints of every bit length (2^k - 1, 2^k, negatives), each encoded as
  // PutVarint64 writes it a byte at a time, and decoded back with 0 or 20
  // bytes after it (fewer than 8 left: the byte-at-a-time path).
  Schema s({{"v", FieldType::kInt}, {"name", FieldType::kString}});
  std::vector<int64_t> values = {0, 1, -1, 63, 64, -64, -65, INT64_MAX, INT64_MIN, 1764000000123, -1764000000123};
  for (int k = 1; k < 63; ++k) {
    const int64_t p = int64_t{1} << k;
    for (int64_t v : {p - 1, p, p + 1, -p, -p - 1}) values.push_back(v);
  }
  for (const int64_t v : values) {
    for (const size_t len : {size_t{0}, size_t{1}, size_t{200}, size_t{20000}}) {
      Row in(2);
      in[0].SetInt(v);
      in[1].SetString(std::string(len, 'q'));
      std::string bytes;
      EncodeRow(s, in, &bytes);
      const uint64_t zigzag = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
      std::string expected(1, '\0');  // the null bitmap
      PutVarint64(zigzag, &expected);
      PutVarint64(len, &expected);
      expected.append(len, 'q');
      ASSERT_EQ(bytes, expected) << v << " " << len;
      for (const size_t tail : {size_t{0}, size_t{20}}) {
        const std::string data = bytes + std::string(tail, '\xff');
        Row out;
        size_t pos = 0;
        ASSERT_TRUE(DecodeRow(s, data, &pos, &out)) << v;
        EXPECT_EQ(pos, bytes.size()) << v;
        EXPECT_EQ(out[0].i, v) << len << " " << tail;
        EXPECT_EQ(out[1].s.size(), len) << v;
      }
      // Cut short anywhere: an error, never a read past the end.
      for (size_t cut = 0; cut < std::min<size_t>(bytes.size(), 12); ++cut) {
        Row out;
        size_t pos = 0;
        EXPECT_FALSE(DecodeRow(s, std::string_view(bytes).substr(0, cut), &pos, &out)) << v << " " << cut;
      }
    }
  }
}

TEST(RowCodecTest, ShortAndLongRowsRoundTripAlike) {
  Schema s = TestSchema();
  for (size_t len : {size_t{0}, size_t{10}, size_t{200}, size_t{240}, size_t{300}, size_t{5000}}) {
    Row in(5);
    in[0].SetInt(INT64_MIN);
    in[1].SetString(std::string(len, '\xab'));
    in[2].SetNull();
    in[3].SetBool(false);
    in[4].SetInt(1764000000123);
    std::string bytes = "prefix";
    EncodeRow(s, in, &bytes);
    Row out;
    size_t pos = 6;
    ASSERT_TRUE(DecodeRow(s, bytes, &pos, &out)) << len;
    EXPECT_EQ(pos, bytes.size()) << len;
    EXPECT_EQ(out[0].i, INT64_MIN);
    EXPECT_EQ(out[1].s, in[1].s);
    EXPECT_TRUE(out[2].is_null);
    EXPECT_FALSE(out[3].is_null);
    EXPECT_EQ(out[3].i, 0);
    EXPECT_EQ(out[4].i, 1764000000123);
    // A key of some fields is the same bytes as a row of just them.
    std::string key, row_of_key;
    EncodeKey(s, in, {4, 1}, &key);
    Schema key_schema({{"ts", FieldType::kTimestamp}, {"name", FieldType::kString}});
    Row key_row(2);
    key_row[0] = in[4];
    key_row[1] = in[1];
    EncodeRow(key_schema, key_row, &row_of_key);
    EXPECT_EQ(key, row_of_key) << len;
  }
  // 64 fields, the last null (the bitmap's top bit), in one pass; 70, more
  // than the one-pass bitmap holds, in two; every 3rd null.
  for (int n : {8, 64}) {
    std::vector<Field> f;
    for (int i = 0; i < n; ++i) f.push_back({"f" + std::to_string(i), FieldType::kInt});
    Schema schema(f);
    Row row(n);
    for (int i = 0; i < n; ++i) {
      if (i % 3 == 0 || i == n - 1) {
        row[i].SetNull();
      } else {
        row[i].SetInt(-i);
      }
    }
    std::string encoded;
    EncodeRow(schema, row, &encoded);
    ASSERT_EQ(static_cast<uint8_t>(encoded[n / 8 - 1]) & 0x80, 0x80) << n;
    Row decoded;
    size_t at = 0;
    ASSERT_TRUE(DecodeRow(schema, encoded, &at, &decoded)) << n;
    EXPECT_EQ(at, encoded.size()) << n;
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(decoded[i].is_null, i % 3 == 0 || i == n - 1) << n << " " << i;
    }
  }
  std::vector<Field> fields;
  for (int i = 0; i < 70; ++i) fields.push_back({"f" + std::to_string(i), FieldType::kInt});
  Schema wide(fields);
  Row in(70);
  for (int i = 0; i < 70; ++i) {
    if (i % 3 == 0) {
      in[i].SetNull();
    } else {
      in[i].SetInt(i * 1000003);
    }
  }
  std::string bytes;
  EncodeRow(wide, in, &bytes);
  Row out;
  size_t pos = 0;
  ASSERT_TRUE(DecodeRow(wide, bytes, &pos, &out));
  EXPECT_EQ(pos, bytes.size());
  for (int i = 0; i < 70; ++i) {
    EXPECT_EQ(out[i].is_null, i % 3 == 0) << i;
    if (i % 3 != 0) {
      EXPECT_EQ(out[i].i, i * 1000003) << i;
    }
  }
}

TEST(ResultSubpartitionTest, ProducerBlocksWhenFullUntilTheReaderPolls) {
  ResultSubpartition sub(2);
  std::atomic<int> added{0};
  std::thread producer([&] {
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(sub.Add(Buffer(1)));
      ++added;
    }
  });
  ASSERT_TRUE(WaitFor([&] { return added == 2; }, std::chrono::seconds(5), kPoll));
  EXPECT_FALSE(WaitFor([&] { return added == 3; }, std::chrono::milliseconds(200), kPoll))
      << "the third buffer must wait for room";
  ASSERT_TRUE(sub.Poll().has_value());
  EXPECT_TRUE(WaitFor([&] { return added == 3; }, std::chrono::seconds(5), kPoll));
  producer.join();
}

TEST(ResultSubpartitionTest, ReleaseUnblocksAProducer) {
  ResultSubpartition sub(1);
  ASSERT_TRUE(sub.Add(Buffer(1)));
  std::atomic<int> result{-1};
  std::thread producer([&] { result = sub.Add(Buffer(1)) ? 1 : 0; });
  sub.Release();
  producer.join();
  EXPECT_EQ(result, 0);
}

// A producer can wait for its reader (StreamTask::AwaitConsumers): not
// there until one sets a listener, then for good; a release ends the wait.
TEST(ResultSubpartitionTest, WaitForReaderReturnsOnceAReaderAttached) {
  ResultSubpartition sub(1);
  EXPECT_FALSE(sub.WaitForReader(std::chrono::milliseconds(1)));
  std::atomic<int> result{-1};
  std::thread producer([&] { result = sub.WaitForReader(std::chrono::seconds(30)) ? 1 : 0; });
  sub.SetListener([](bool) {});
  producer.join();
  EXPECT_EQ(result, 1);
  sub.SetListener(nullptr);
  EXPECT_TRUE(sub.WaitForReader(std::chrono::milliseconds(0))) << "attached once is enough";

  ResultSubpartition released(1);
  std::thread waiter([&] { result = released.WaitForReader(std::chrono::seconds(30)) ? 1 : 0; });
  released.Release();
  waiter.join();
  EXPECT_EQ(result, 1);
}

NetworkBuffer Barrier(int64_t id, const BarrierOptions& options) {
  NetworkBuffer b;
  b.kind = BufferKind::kBarrier;
  b.checkpoint_id = id;
  b.unaligned = options.unaligned;
  b.aligned_deadline_ms = options.aligned_deadline_ms;
  return b;
}

// The queue as the reader sees it: R<records> per buffer, B<id> (u when
// unaligned) per barrier.
std::string Drain(ResultSubpartition& sub) {
  std::string seen;
  while (std::optional<NetworkBuffer> b = sub.Poll()) {
    if (b->kind == BufferKind::kBarrier) {
      seen += "B" + std::to_string(b->checkpoint_id) + (b->unaligned ? "u" : "");
    } else {
      seen += "R" + std::to_string(b->num_records);
    }
  }
  return seen;
}

TEST(ResultSubpartitionTest, AnUnalignedBarrierOvertakesTheQueueWhichItCopies) {
  ResultSubpartition sub(4);
  ASSERT_TRUE(sub.Add(Buffer(1)));
  ASSERT_TRUE(sub.Add(Buffer(2)));
  std::vector<NetworkBuffer> overtaken;
  ASSERT_TRUE(sub.AddBarrier(Barrier(1, {.unaligned = true}), &overtaken));
  ASSERT_EQ(overtaken.size(), 2u) << "the output part of the snapshot";
  EXPECT_EQ(overtaken[0].num_records, 1);
  EXPECT_EQ(overtaken[1].num_records, 2);
  ASSERT_TRUE(sub.Add(Buffer(3)));
  EXPECT_EQ(Drain(sub), "B1uR1R2R3") << "the overtaken buffers are still sent, after the barrier";
  // A reader without credit still takes an unaligned barrier, never records.
  ASSERT_TRUE(sub.Add(Buffer(4)));
  EXPECT_FALSE(sub.Poll(/*records_allowed=*/false).has_value());
  EXPECT_FALSE(sub.PollPriority().has_value());
  ASSERT_TRUE(sub.AddBarrier(Barrier(2, {.unaligned = true}), &overtaken));
  EXPECT_EQ(sub.PollPriority()->checkpoint_id, 2);
}

TEST(ResultSubpartitionTest, AnAlignedBarrierTurnsUnalignedAtItsDeadlineOvertakingOnlyWhatPrecedesIt) {
  ResultSubpartition sub(8);
  ASSERT_TRUE(sub.Add(Buffer(1)));
  std::vector<NetworkBuffer> overtaken;
  ASSERT_TRUE(sub.AddBarrier(Barrier(5, {.aligned_deadline_ms = 1000}), &overtaken));
  EXPECT_TRUE(overtaken.empty());
  ASSERT_TRUE(sub.Add(Buffer(2)));  // after the snapshot
  EXPECT_FALSE(sub.SettleBarrier(5, 999, &overtaken)) << "still aligned, still queued";
  EXPECT_TRUE(sub.SettleBarrier(5, 1000, &overtaken));
  ASSERT_EQ(overtaken.size(), 1u) << "not the buffer behind it: that one is the next checkpoint's";
  EXPECT_EQ(overtaken[0].num_records, 1);
  EXPECT_EQ(Drain(sub), "B5uR1R2");

  // Taken by the reader in order before its deadline: settled, nothing kept.
  ASSERT_TRUE(sub.Add(Buffer(3)));
  ASSERT_TRUE(sub.AddBarrier(Barrier(6, {.aligned_deadline_ms = 5000}), &overtaken));
  EXPECT_EQ(Drain(sub), "R3B6");
  overtaken.clear();
  EXPECT_TRUE(sub.SettleBarrier(6, 100, &overtaken));
  EXPECT_TRUE(overtaken.empty());
}

TEST(ResultSubpartitionTest, ABlockedProducerTurnsItsBarrierUnalignedAtTheDeadline) {
  ResultSubpartition sub(3);  // the barrier takes a place too
  ASSERT_TRUE(sub.Add(Buffer(1)));
  std::vector<NetworkBuffer> overtaken;
  const int64_t deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count() + 100;
  ASSERT_TRUE(sub.AddBarrier(Barrier(9, {.aligned_deadline_ms = deadline}), &overtaken));
  ASSERT_TRUE(sub.Add(Buffer(2)));
  // Full: this Add waits for the reader, but the deadline passes meanwhile.
  std::thread producer([&] { EXPECT_TRUE(sub.Add(Buffer(3))); });
  ASSERT_TRUE(WaitFor([&] { return sub.PollPriority().has_value(); }, std::chrono::seconds(5), kPoll))
      << "the barrier did not turn unaligned while its producer was blocked";
  producer.join();  // the barrier's place is free
  EXPECT_TRUE(sub.SettleBarrier(9, deadline, &overtaken));
  ASSERT_EQ(overtaken.size(), 1u);
  EXPECT_EQ(overtaken[0].num_records, 1);
  EXPECT_EQ(Drain(sub), "R1R2R3");
}

// The listener runs outside the subpartition's lock, so it may poll (a
// remote stream takes and sends the buffer at once, on the producer's
// thread): every buffer and event is taken by the listener alone, with the
// priority flag for an unaligned barrier and none lost in between.
TEST(ResultSubpartitionTest, TheListenerMayPollWhatItIsToldOf) {
  ResultSubpartition sub(4);
  std::string seen;
  bool priority_seen = false;
  sub.SetListener([&](bool priority) {
    priority_seen = priority_seen || priority;
    while (std::optional<NetworkBuffer> b = sub.Poll()) {
      seen += b->kind == BufferKind::kBarrier ? "B" + std::to_string(b->checkpoint_id)
              : b->end_of_partition          ? std::string("E")
                                             : "R" + std::to_string(b->num_records);
    }
  });
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(sub.Add(Buffer(i)));
  std::vector<NetworkBuffer> overtaken;
  ASSERT_TRUE(sub.AddBarrier(Barrier(7, {.unaligned = true}), &overtaken));
  EXPECT_TRUE(overtaken.empty()) << "the listener had taken every buffer";
  EXPECT_TRUE(priority_seen);
  ASSERT_TRUE(sub.Add(Buffer(4)));
  sub.Finish();
  EXPECT_EQ(seen, "R1R2R3B7R4E");
  EXPECT_EQ(sub.queued(), 0u);
  // After SetListener(nullptr) it is not called: the reader may go.
  sub.SetListener(nullptr);
}

TEST(InputGateTest, ReadsEveryLocalChannelToItsEnd) {
  PartitionManager pm;
  auto a = std::make_shared<ResultPartition>("job/e0/s0", 1, 4);
  auto b = std::make_shared<ResultPartition>("job/e0/s1", 1, 4);
  pm.Register(a);
  pm.Register(b);
  std::vector<std::unique_ptr<InputChannel>> channels;
  channels.push_back(std::make_unique<LocalInputChannel>(pm, "job/e0/s0", 0));
  channels.push_back(std::make_unique<LocalInputChannel>(pm, "job/e0/s1", 0));
  InputGate gate(std::move(channels));
  gate.Start();
  std::thread pa([&] {
    for (int i = 0; i < 100; ++i) a->subpartition(0).Add(Buffer(1));
    a->subpartition(0).Finish();
  });
  std::thread pb([&] {
    for (int i = 0; i < 50; ++i) b->subpartition(0).Add(Buffer(2));
    b->subpartition(0).Finish();
  });
  int records[2] = {0, 0};
  NetworkBuffer buf;
  int ch;
  GateResult r;
  int ended = 0;
  while (true) {
    r = gate.Next(Clock::now() + std::chrono::seconds(10), &buf, &ch);
    if (r == GateResult::kChannelEnd) {
      ++ended;
      continue;
    }
    if (r != GateResult::kBuffer) break;
    records[ch] += buf.num_records;
  }
  EXPECT_EQ(ended, 2);
  EXPECT_EQ(r, GateResult::kEnd);
  EXPECT_EQ(records[0], 100);
  EXPECT_EQ(records[1], 100);
  pa.join();
  pb.join();
  gate.Close();
}

TEST(InputGateTest, BlockedChannelIsHeldBackUntilUnblocked) {
  PartitionManager pm;
  auto a = std::make_shared<ResultPartition>("job/e1/s0", 1, 8);
  auto b = std::make_shared<ResultPartition>("job/e1/s1", 1, 8);
  pm.Register(a);
  pm.Register(b);
  std::vector<std::unique_ptr<InputChannel>> channels;
  channels.push_back(std::make_unique<LocalInputChannel>(pm, "job/e1/s0", 0));
  channels.push_back(std::make_unique<LocalInputChannel>(pm, "job/e1/s1", 0));
  InputGate gate(std::move(channels));
  gate.Start();
  NetworkBuffer buf;
  int ch = -1;
  // Channel 0 is blocked (it delivered a barrier): its buffers wait.
  gate.Block(0);
  for (int i = 0; i < 3; ++i) a->subpartition(0).Add(Buffer(1));
  b->subpartition(0).Add(Buffer(2));
  ASSERT_EQ(gate.Next(Clock::now() + std::chrono::seconds(10), &buf, &ch), GateResult::kBuffer);
  EXPECT_EQ(ch, 1);
  EXPECT_EQ(gate.Next(Clock::now() + std::chrono::milliseconds(200), &buf, &ch), GateResult::kTimeout)
      << "channel 0 must stay blocked";
  // Released: all three of channel 0's buffers arrive, in order.
  gate.UnblockAll();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(gate.Next(Clock::now() + std::chrono::seconds(10), &buf, &ch), GateResult::kBuffer);
    EXPECT_EQ(ch, 0);
  }
  a->subpartition(0).Finish();
  b->subpartition(0).Finish();
  int ended = 0;
  GateResult r;
  while ((r = gate.Next(Clock::now() + std::chrono::seconds(10), &buf, &ch)) == GateResult::kChannelEnd) ++ended;
  EXPECT_EQ(ended, 2);
  EXPECT_EQ(r, GateResult::kEnd);
  gate.Close();
}

// Calls fn(subtask, row) for every record `partition` holds, in each
// subpartition's order, decoded with `schema`; returns how many there were.
template <typename Fn>
int ForEachSentRecord(ResultPartition& partition, const Schema& schema, Fn fn) {
  int total = 0;
  for (int t = 0; t < partition.num_subpartitions(); ++t) {
    while (auto b = partition.subpartition(t).Poll()) {
      if (b->end_of_partition) break;
      size_t pos = 0;
      Row row;
      for (int i = 0; i < b->num_records; ++i) {
        if (!DecodeRow(schema, b->data, &pos, &row)) {
          ADD_FAILURE() << "subpartition " << t << ": record " << i << " does not decode";
          return total;
        }
        fn(t, row);
        ++total;
      }
    }
  }
  return total;
}

TEST(RecordEmitterTest, HashSendsEachKeyToTheSubtaskOwningItsKeyGroup) {
  Schema s({{"k", FieldType::kString}, {"v", FieldType::kInt}});
  auto partition = std::make_shared<ResultPartition>("p", 3, 1000);
  RecordEmitter emitter(partition, s, PartitionMode::kHash, {0}, 128, 0);
  RowBatch batch(2);
  for (int i = 0; i < 1000; ++i) {
    Row& r = batch.Append();
    r[0].SetString("patient-" + std::to_string(i % 97));
    r[1].SetInt(i);
  }
  ASSERT_TRUE(emitter.Emit(batch));
  ASSERT_TRUE(emitter.Finish());
  const int total = ForEachSentRecord(*partition, s, [&](int t, const Row& row) {
    std::string key;
    EncodeKey(s, row, {0}, &key);
    EXPECT_EQ(SubtaskForKeyGroup(KeyGroupForHash(HashKeyBytes(key), 128), 128, 3), t);
  });
  EXPECT_EQ(total, 1000);
}

// Partitioned streams: an operator keyed by [k, code] whose input is
// partitioned by k alone groups its records by k (key_group_fields 1): a hash
// edge on k, at any parallelism, sends each record to the subtask that owns
// the group the operator takes from it, though the whole key's group is often
// another subtask's.
TEST(RecordEmitterTest, AKeyGroupedByItsFirstFieldReachesTheSubtaskOwningThatGroup) {
  Schema s({{"k", FieldType::kString}, {"code", FieldType::kString}, {"v", FieldType::kInt}});
  auto partition = std::make_shared<ResultPartition>("p", 3, 1000);
  RecordEmitter emitter(partition, s, PartitionMode::kHash, {0}, 128, 0);
  RowBatch batch(3);
  for (int i = 0; i < 1000; ++i) {
    Row& r = batch.Append();
    r[0].SetString("patient-" + std::to_string(i % 97));
    r[1].SetString("code-" + std::to_string(i % 7));
    r[2].SetInt(i);
  }
  ASSERT_TRUE(emitter.Emit(batch));
  ASSERT_TRUE(emitter.Finish());
  OwnedKeyGroups owned[3];
  for (int t = 0; t < 3; ++t) {
    OperatorContext ctx;
    ctx.vertex_name = "per_code";
    ctx.parallelism = 3;
    ctx.subtask_index = t;
    ctx.key_group_fields = 1;
    ASSERT_TRUE(owned[t].Init(ctx, "window", {0, 1}).ok());
  }
  int whole_key_elsewhere = 0;
  const int total = ForEachSentRecord(*partition, s, [&](int t, const Row& row) {
    std::string key;
    EncodeKey(s, row, {0, 1}, &key);
    EXPECT_TRUE(owned[t].Owns(owned[t].KeyGroupOf(s, row, key))) << row[0].s << " at subtask " << t;
    whole_key_elsewhere += !owned[t].Owns(KeyGroupForHash(HashKeyBytes(key), 128));
  });
  EXPECT_EQ(total, 1000);
  EXPECT_GT(whole_key_elsewhere, 300);  // about two thirds

  OperatorContext ctx;
  ctx.key_group_fields = 2;  // not fewer than the key has: a bad graph
  OwnedKeyGroups bad;
  EXPECT_EQ(bad.Init(ctx, "window", {0, 1}).code(), absl::StatusCode::kInvalidArgument);
  ctx.key_group_fields = 0;
  EXPECT_TRUE(bad.Init(ctx, "window", {0, 1}).ok());
}

TEST(RecordEmitterTest, AProjectedEdgeEncodesItsFieldsAloneAndHashesTheWholeRowsKey) {
  Schema s({{"note", FieldType::kString}, {"k", FieldType::kString}, {"skipped", FieldType::kDouble}, {"v", FieldType::kInt}});
  const Schema projected({{"k", FieldType::kString}, {"v", FieldType::kInt}});
  auto partition = std::make_shared<ResultPartition>("p", 2, 1000);
  RecordEmitter emitter(partition, s, PartitionMode::kHash, {1}, 128, 0, /*projection=*/{1, 3});
  RowBatch batch(4);
  for (int i = 0; i < 100; ++i) {
    Row& r = batch.Append();
    r[0].SetString(std::string(200, 'x'));
    r[1].SetString("patient-" + std::to_string(i % 13));
    r[2].SetDouble(0.5);
    if (i % 10 == 0) {
      r[3].is_null = true;
    } else {
      r[3].SetInt(i);
    }
  }
  ASSERT_TRUE(emitter.Emit(batch));
  ASSERT_TRUE(emitter.Finish());
  int total = 0;
  for (int t = 0; t < 2; ++t) {
    while (auto b = partition->subpartition(t).Poll()) {
      if (b->end_of_partition) break;
      EXPECT_LT(b->data.size(), 100u * 30) << "the 200-byte note must not be sent";
      size_t pos = 0;
      Row row;
      for (int i = 0; i < b->num_records; ++i) {
        ASSERT_TRUE(DecodeRow(projected, b->data, &pos, &row));
        const int v = row[1].is_null ? -1 : static_cast<int>(row[1].i);
        if (v >= 0) {
          EXPECT_EQ(row[0].s, "patient-" + std::to_string(v % 13));
        }
        std::string key;
        EncodeKey(projected, row, {0}, &key);
        EXPECT_EQ(SubtaskForKeyGroup(KeyGroupForHash(HashKeyBytes(key), 128), 128, 2), t);
        ++total;
      }
      EXPECT_EQ(pos, b->data.size());
    }
  }
  EXPECT_EQ(total, 100);
}

// A real gRPC server on loopback serves a partition to a RemoteInputChannel.
class RemoteChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_unique<DataExchangeService>(pm_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_->service());
    auto queue = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    ASSERT_GT(port_, 0);
    network_ = std::make_unique<NetworkThread>(std::move(queue));
    service_->Start(network_.get());
  }
  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    service_->AwaitStreamsGone();
    network_->Stop();
  }

  std::unique_ptr<InputGate> Gate(const std::string& partition, int credits, int subpartition = 0) {
    std::vector<std::unique_ptr<InputChannel>> channels;
    channels.push_back(std::make_unique<RemoteInputChannel>(
        network_.get(), grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()),
        partition, subpartition, credits));
    return std::make_unique<InputGate>(std::move(channels));
  }

  PartitionManager pm_;
  std::unique_ptr<DataExchangeService> service_;
  std::unique_ptr<NetworkThread> network_;  // before server_: its queue outlives the server
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(RemoteChannelTest, DeliversEveryBufferInOrder) {
  auto p = std::make_shared<ResultPartition>("job/e0/s0", 1, 4);
  pm_.Register(p);
  auto gate = Gate("job/e0/s0", 4);
  gate->Start();
  std::thread producer([&] {
    for (int i = 1; i <= 500; ++i) p->subpartition(0).Add(Buffer(i % 7 + 1));
    p->subpartition(0).Finish();
  });
  int buffers = 0;
  NetworkBuffer buf;
  int ch;
  GateResult r;
  while ((r = gate->Next(Clock::now() + std::chrono::seconds(10), &buf, &ch)) != GateResult::kEnd) {
    if (r == GateResult::kChannelEnd) continue;
    ASSERT_EQ(r, GateResult::kBuffer);
    ++buffers;
    EXPECT_EQ(buf.num_records, buffers % 7 + 1);
    EXPECT_EQ(buf.data.size(), static_cast<size_t>(buffers % 7 + 1));
  }
  EXPECT_EQ(r, GateResult::kEnd);
  EXPECT_EQ(buffers, 500);
  producer.join();
  gate->Close();
}

// Events cross the wire in order with the records: records, a barrier,
// records, a watermark, a barrier, a watermark, through a RecordEmitter and
// gRPC. A watermark after records rides on their buffer (one message); with
// no records before it, it is an event of its own.
TEST_F(RemoteChannelTest, BarriersAndWatermarksTravelInOrderWithRecords) {
  Schema s({{"k", FieldType::kString}, {"v", FieldType::kInt}});
  auto p = std::make_shared<ResultPartition>("job/e9/s0", 1, 4);
  pm_.Register(p);
  RecordEmitter emitter(p, s, PartitionMode::kForward, {}, 128, 0);
  auto gate = Gate("job/e9/s0", 4);
  gate->Start();
  auto emit = [&](int from, int n) {
    RowBatch batch(2);
    for (int i = from; i < from + n; ++i) {
      Row& r = batch.Append();
      r[0].SetString("k");
      r[1].SetInt(i);
    }
    ASSERT_TRUE(emitter.Emit(batch));
  };
  emit(0, 10);
  ASSERT_TRUE(emitter.EmitBarrier(1));
  emit(10, 5);
  ASSERT_TRUE(emitter.EmitWatermark(42));
  ASSERT_TRUE(emitter.EmitBarrier(2));
  ASSERT_TRUE(emitter.EmitWatermark(43));
  ASSERT_TRUE(emitter.Finish());
  // What the consumer sees, in order: R = records (their count), B =
  // barrier, W = watermark (an event), +W = a watermark on a records buffer.
  std::string seen;
  NetworkBuffer buf;
  int ch;
  GateResult r;
  while ((r = gate->Next(Clock::now() + std::chrono::seconds(10), &buf, &ch)) != GateResult::kEnd) {
    if (r == GateResult::kChannelEnd) continue;
    ASSERT_EQ(r, GateResult::kBuffer);
    switch (buf.kind) {
      case BufferKind::kRecords:
        seen += "R" + std::to_string(buf.num_records);
        if (buf.then_watermark) seen += "+W" + std::to_string(buf.watermark);
        break;
      case BufferKind::kBarrier: seen += "B" + std::to_string(buf.checkpoint_id); break;
      case BufferKind::kWatermark: seen += "W" + std::to_string(buf.watermark); break;
      default: seen += "?"; break;
    }
  }
  EXPECT_EQ(seen, "R10B1R5+W42B2W43");
  gate->Close();
}

// A latency marker rides on the buffer being filled for one subpartition
// (each marker the next one in turn) and crosses gRPC with it; a marker with
// no records to ride on still goes at the next flush.
TEST_F(RemoteChannelTest, LatencyMarkersRideOnBuffersToOneSubpartitionEach) {
  Schema s({{"k", FieldType::kString}, {"v", FieldType::kInt}});
  auto p = std::make_shared<ResultPartition>("job/e8/s0", 2, 4);
  pm_.Register(p);
  RecordEmitter emitter(p, s, PartitionMode::kRebalance, {}, 128, 0);
  auto gate0 = Gate("job/e8/s0", 4, 0);
  auto gate1 = Gate("job/e8/s0", 4, 1);
  gate0->Start();
  gate1->Start();
  RowBatch batch(2);
  for (int i = 0; i < 4; ++i) {
    Row& r = batch.Append();
    r[0].SetString("k");
    r[1].SetInt(i);
  }
  ASSERT_TRUE(emitter.Emit(batch));  // 2 records to each subpartition
  emitter.MarkLatency(1000);         // subpartition 0, with its records
  emitter.MarkLatency(2000);         // subpartition 1, with its records
  emitter.MarkLatency(3000);         // subpartition 0 again: the older marker stays
  ASSERT_TRUE(emitter.Flush());
  emitter.MarkLatency(4000);  // subpartition 1, nothing else to send
  ASSERT_TRUE(emitter.Finish());
  auto seen = [](InputGate& gate) {
    std::string out;
    NetworkBuffer buf;
    int ch;
    GateResult r;
    while ((r = gate.Next(Clock::now() + std::chrono::seconds(10), &buf, &ch)) != GateResult::kEnd) {
      if (r == GateResult::kChannelEnd) continue;
      EXPECT_EQ(r, GateResult::kBuffer);
      if (r != GateResult::kBuffer) break;
      if (buf.kind == BufferKind::kRecords) {
        out += "R" + std::to_string(buf.num_records) + "@" + std::to_string(buf.latency_marker_us) + " ";
      }
    }
    return out;
  };
  EXPECT_EQ(seen(*gate0), "R2@1000 ");
  EXPECT_EQ(seen(*gate1), "R2@2000 R0@4000 ");
  gate0->Close();
  gate1->Close();
}

TEST_F(RemoteChannelTest, ProducerStopsAtQueuePlusCreditWhileTheConsumerIsIdle) {
  auto p = std::make_shared<ResultPartition>("job/e1/s0", 1, 2);
  pm_.Register(p);
  auto gate = Gate("job/e1/s0", 3);
  gate->Start();
  std::atomic<int> added{0};
  std::thread producer([&] {
    for (int i = 0; i < 20; ++i) {
      if (!p->subpartition(0).Add(Buffer(1))) return;
      ++added;
    }
    p->subpartition(0).Finish();
  });
  // 3 credits let 3 buffers cross; 2 more wait in the queue; the 6th blocks.
  ASSERT_TRUE(WaitFor([&] { return added == 5; }, std::chrono::seconds(5), kPoll));
  EXPECT_FALSE(WaitFor([&] { return added > 5; }, std::chrono::milliseconds(300), kPoll));
  // Consuming returns credit and the rest flows.
  int received = 0;
  NetworkBuffer buf;
  int ch;
  GateResult r;
  while ((r = gate->Next(Clock::now() + std::chrono::seconds(10), &buf, &ch)) != GateResult::kEnd) {
    if (r == GateResult::kBuffer) ++received;
    if (r == GateResult::kTimeout || r == GateResult::kFailed) break;
  }
  EXPECT_EQ(received, 20);
  producer.join();
  gate->Close();
}

// Over gRPC, an unaligned barrier needs no credit, and at the consumer it
// overtakes what the channel received but the task has not taken yet,
// counting those buffers (they go into the task's snapshot).
TEST_F(RemoteChannelTest, AnUnalignedBarrierOvertakesWithoutCreditAndCountsWhatItPassed) {
  auto p = std::make_shared<ResultPartition>("job/e7/s0", 1, 2);
  pm_.Register(p);
  auto gate = Gate("job/e7/s0", 2);
  gate->Start();
  ResultSubpartition& sub = p->subpartition(0);
  // 2 credits: two buffers cross and wait at the consumer; two more fill
  // the producer's queue.
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(sub.Add(Buffer(i)));
  ASSERT_TRUE(WaitFor([&] { return sub.queued() == 2; }, std::chrono::seconds(5), kPoll));
  std::vector<NetworkBuffer> overtaken;
  ASSERT_TRUE(sub.AddBarrier(Barrier(3, {.unaligned = true}), &overtaken));
  EXPECT_EQ(overtaken.size(), 2u) << "buffers 3 and 4, at the producer";
  ASSERT_TRUE(WaitFor([&] { return gate->priority_pending(); }, std::chrono::seconds(5), kPoll))
      << "the barrier must cross without credit";
  std::vector<std::pair<int, NetworkBuffer>> events;
  gate->TakePriorityEvents(&events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].second.checkpoint_id, 3);
  EXPECT_EQ(events[0].second.overtaken, 2) << "buffers 1 and 2, at the consumer";
  std::vector<NetworkBuffer> copies;
  gate->CopyQueuedRecords(0, 2, &copies);
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ(copies[0].num_records, 1);
  EXPECT_EQ(copies[1].num_records, 2);
  // Everything still arrives, in order.
  sub.Finish();
  std::string seen;
  NetworkBuffer buf;
  int ch;
  GateResult r;
  while ((r = gate->Next(Clock::now() + std::chrono::seconds(10), &buf, &ch)) != GateResult::kEnd) {
    if (r == GateResult::kBuffer) seen += "R" + std::to_string(buf.num_records);
    if (r == GateResult::kTimeout || r == GateResult::kFailed) break;
  }
  EXPECT_EQ(seen, "R1R2R3R4");
  gate->Close();
}

TEST_F(RemoteChannelTest, MissingProducerFailsTheGateWithAReason) {
  // Nothing registers the partition; the server gives up after its wait, so
  // shorten the test by shutting the server down instead.
  auto gate = Gate("job/absent/s0", 2);
  gate->Start();
  server_->Shutdown(std::chrono::system_clock::now());
  NetworkBuffer buf;
  int ch;
  GateResult r = gate->Next(Clock::now() + std::chrono::seconds(30), &buf, &ch);
  EXPECT_EQ(r, GateResult::kFailed);
  EXPECT_NE(gate->error().find("job/absent/s0"), std::string::npos) << gate->error();
  gate->Close();
}

}  // namespace
}  // namespace vstream
