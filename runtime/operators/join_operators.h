#pragma once
// Two-input operators, their state in the subtask's RocksDB keyed state
// backend (one instance under OperatorContext::state_dir, in the
// TaskManager's state memory).
//
// IntervalJoinOperator (Flink's interval join): both inputs are keyed the
// same way; a left record at time tl joins every right record of its key at
// time tr with tl + lower <= tr <= tl + upper. Each side's records are kept
// until the watermark shows no partner can still arrive (left: tl + upper,
// right: tr - lower); each pair is emitted once, when its second record
// arrives. Records behind the watermark are late: counted and dropped.
//
//   "interval_join_left" / "interval_join_right": a MapState per join key,
//       map key [time: 8 bytes big-endian, sign-flipped][sequence: 8 bytes],
//       value the row (row_codec.h). Time order is byte order, so a record's
//       partners are one range scan of the other side's map (one seek); the
//       sequence number keeps records with equal times apart. Each side's
//       map is held in memory in front of RocksDB (BufferedMapState, up to
//       32 MiB per side and subtask, beyond that spilled to RocksDB): a
//       record that arrives and expires between two checkpoints never
//       touches RocksDB, and a snapshot writes the records in memory into
//       its delta.
//   "interval_join_timers": one cleanup timer per key, side and
//       kCleanupGranularityMs of cleanup time (left: tl + upper, right:
//       tr - lower), due at that cleanup time rounded up to the
//       granularity, payload [key group: 2][side + 2][key] (the key group
//       first, as TimerQueue requires). A due timer removes that key's
//       records of that side whose cleanup time has come: one range scan of
//       the side's map from its start. One timer per record (q4: 680 KB of
//       timers in each snapshot) became one per key and 100 ms. Records
//       stay up to the granularity longer, and meet no more partners for
//       it: any partner that could arrive then is behind the watermark,
//       late. Snapshots leave out the timers held in memory (q7: 63,000
//       timers, 1.1 MB and 4-9 ms of CPU per checkpoint on the task thread):
//       a restore adds every restored record's timer again
//       (TimerQueue::kRebuiltOnRestore). Timers of the older format, one
//       per record with payload [key group: 2][side][map key: 16][key],
//       still restore (savepoints) and delete exactly their entry.
//   A record whose cleanup time the watermark has already reached can meet
//   no later record, so it is joined but not kept.
//
// BroadcastJoinOperator (Flink's broadcast state pattern): every subtask
// sees every record of the broadcast input (a BROADCAST edge) and keeps the
// latest row per broadcast key; each main record is emitted with the fields
// of the matching broadcast row, or nulls while none has arrived.
//
//   "broadcast_state": a MapState broadcast key -> value fields (row_codec),
//       one per subtask. It is not keyed by the main key, so it lives under
//       one fixed current key: the first key group of the subtask's range,
//       key "". RocksDB holds the truth (what a snapshot takes); a mirror of
//       the whole map in memory, loaded from RocksDB on Open, serves the
//       per-record lookups without a RocksDB read. As in Flink (which keeps
//       broadcast state on the heap), the broadcast side is small, slowly
//       changing reference data, so the mirror is small.
//
// Thread-compatible: run on their task's thread.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "proto/jobgraph.pb.h"
#include "runtime/operators/operator.h"
#include "state/buffered_map_state.h"
#include "state/keyed_state_backend.h"
#include "state/timer_queue.h"

namespace vstream {

class IntervalJoinOperator : public StreamOperator {
 public:
  IntervalJoinOperator(OperatorCounters& counters, Schema left, Schema right, const proto::IntervalJoinSpec& spec);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override { PushInput(0, batch); }
  void PushInput(int input, RowBatch& batch) override;
  void PushWatermark(int64_t watermark) override;
  void Finish() override { output_->Finish(); }
  KeyedStateBackend* keyed_state() override { return backend_.get(); }

  // Bytes of each side's records kept in memory before they spill to
  // RocksDB (BufferedMapState); before Open. For tests.
  void set_buffer_memory_limit(size_t bytes) { buffer_memory_limit_ = bytes; }

  // The records of one side (0: left, 1: right) kept, in memory and in
  // RocksDB. One full scan of that side's RocksDB state: for tests and
  // diagnostics.
  absl::StatusOr<int64_t> BufferedRecords(int side);

  // Event time covered by one cleanup timer per key and side (above).
  static constexpr int64_t kCleanupGranularityMs = 100;
  // When a record with this cleanup time is removed: the watermark reaches
  // the cleanup time rounded up to kCleanupGranularityMs.
  static int64_t CleanupDue(int64_t cleanup);

 private:
  // keyed: the record of the batch processed before (key_ and key_group_
  // are its key), or null.
  void ProcessRecord(int side, const Row& row, int64_t t, const Row* keyed);
  void EmitPair(const Row& left, const Row& right);
  void FireCleanupTimers(int64_t up_to);
  // After a restore: the cleanup timers of the restored records.
  absl::Status RebuildCleanupTimers();
  // The cleanup timer of (key group, key) on `side` for a record with this
  // cleanup time (one per key, side and granule).
  absl::Status AddCleanupTimer(int key_group, int side, std::string_view key, int64_t cleanup);
  // Removes the records of (key group, key) on `side` whose cleanup time is
  // <= `time` (a coarse timer fired).
  void RemoveExpired(int key_group, int side, std::string_view key, int64_t time);
  void Fail(const absl::Status& s) {
    if (status_.ok()) status_ = s;
  }

  Schema schemas_[2];
  std::vector<int> keys_[2];
  int time_index_[2];
  int64_t lower_, upper_;
  OwnedKeyGroups owned_key_groups_;
  std::unique_ptr<KeyedStateBackend> backend_;
  std::unique_ptr<BufferedMapState> buffers_[2];
  size_t buffer_memory_limit_ = BufferedMapState::kDefaultMemoryLimit;
  std::unique_ptr<TimerQueue> timers_;
  // Of the next kept record. Starts at 0 with a fresh (wiped) backend; after
  // a restore at (wall-clock ms) << 20, past every restored entry's (an
  // attempt would need a million records per millisecond to catch up).
  uint64_t next_sequence_ = 0;
  int64_t watermark_ = INT64_MIN;
  RowBatch out_;
  // Reused per record: no allocation once they have grown.
  std::string key_;
  int key_group_ = 0;  // of key_
  std::string map_key_;
  std::string range_from_;
  std::string range_to_;
  std::string value_;
  std::string timer_payload_;
  Row partner_;
  // A probe of the other side that found nothing: (key, [lo, hi]). The
  // records after it in the same batch (which only adds to its own side)
  // with that key and a range within it skip the probe, as they skip the
  // cleanup timer added last. A window's results all have its key and
  // time: q5's join gets them 3,000 at once, and the partner (the
  // window's maximum) comes after them (docs/benchmarks.md).
  bool empty_probe_valid_ = false;
  std::string empty_probe_key_;
  int64_t empty_probe_lo_ = 0, empty_probe_hi_ = 0;
  // Valid while that timer is queued: the queue loses timers only to
  // FireCleanupTimers (from PushWatermark, which clears this); anything
  // else that pops or removes timers must clear it too.
  bool last_timer_valid_ = false;
  int last_timer_side_ = 0;
  int64_t last_timer_due_ = 0;
  std::string last_timer_key_;
};

class BroadcastJoinOperator : public StreamOperator {
 public:
  BroadcastJoinOperator(OperatorCounters& counters, Schema main, Schema broadcast,
                        const proto::BroadcastJoinSpec& spec);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override { PushInput(0, batch); }
  void PushInput(int input, RowBatch& batch) override;
  void Finish() override { output_->Finish(); }
  KeyedStateBackend* keyed_state() override { return backend_.get(); }

  // The broadcast rows kept in RocksDB. One scan: for tests and diagnostics.
  absl::StatusOr<int64_t> StoredBroadcastRows();

 private:
  void PutBroadcast(const Row& row);

  Schema main_, broadcast_;
  Schema values_schema_;  // the broadcast fields that are not keys
  std::vector<int> main_keys_, broadcast_keys_, broadcast_values_;
  std::unique_ptr<KeyedStateBackend> backend_;
  MapState* state_ = nullptr;  // owned by backend_
  int state_key_group_ = 0;
  // Mirror of state_ (broadcast key -> value fields).
  absl::flat_hash_map<std::string, Row> table_;
  RowBatch out_;
  std::string key_;
  std::string value_;
};

}  // namespace vstream
