#pragma once
// Keyed windows over event time (or processing time): tumbling, sliding and
// session windows with mergeable aggregates (runtime/operators/accumulators.h).
//
//   record --assign--> pane or session state of (key, namespace) in RocksDB
//   watermark --> fire every timer <= watermark: emit key, window_start,
//                 window_end, aggregates; then pass the watermark on
//
// - Tumbling: one accumulator per (key, window).
// - Sliding: no per-window copies. A record updates one pane of
//   gcd(size, slide); a window's result merges its size/pane panes when it
//   fires (Flink's "slicing"). A key's live panes are one state entry, so
//   a record reads and writes one entry, and a window's fire reads one and
//   (without allowed lateness) drops the panes no later window needs in
//   the same step; with allowed lateness the window's cleanup drops them.
// - Session: per key a list of sessions [start, end) with accumulators;
//   a record opens [t, t + gap) and merges every session it touches.
// A window fires when the watermark reaches window_end - 1. With
// allowed_lateness, a record for a fired window still updates it and the
// window is emitted again (a correction); its state is kept until
// window_end - 1 + allowed_lateness. Later records go to the late output
// (or are dropped) and are counted.
//
// Window contents live in RocksDB keyed state (through the write-back
// cache); timers (one per key and open window) in a RocksDB timer queue
// (state/timer_queue.h).
//
// Thread-compatible: runs on its task's thread.

#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "proto/jobgraph.pb.h"
#include "runtime/operators/accumulators.h"
#include "runtime/operators/operator.h"
#include "state/keyed_state_backend.h"
#include "state/timer_queue.h"

namespace vstream {

class WindowOperator : public StreamOperator {
 public:
  WindowOperator(OperatorCounters& counters, Schema input, const proto::WindowSpec& spec);
  absl::Status Open(const OperatorContext& ctx) override;
  void Push(RowBatch& batch) override;
  void PushWatermark(int64_t watermark) override;
  void Finish() override;
  KeyedStateBackend* keyed_state() override { return backend_.get(); }
  bool wants_processing_time() const override { return spec_.processing_time(); }
  // Records that went into the state in the update of an earlier record of
  // their batch, same key and window or pane (PushCombined): state updates
  // saved.
  int64_t records_combined() const { return records_combined_; }
  // An event-time window whose timers follow from its state
  // (TimersFollowFromState) fires in slices of kFireSlice windows: each
  // call pops a slice of the watermark's due timers from the queue and
  // fires them, and the watermark goes on after the last. Between
  // slices the task takes input, so a window firing 40,000 results no
  // longer stops taking its input for 140-160 ms and blocks its producer
  // (and every other output of that producer). Records that come meanwhile
  // are late for the windows being fired, as they are after a watermark
  // that fired at once. A snapshot taken between slices needs nothing more:
  // the windows not fired yet still have their state, and a restore adds
  // their timers back. The end of input fires everything at once.
  // An idle marker while a watermark is held fires the rest at once: the
  // results and the watermark go before it.
  bool has_pending_work() const override { return held_watermark_ != INT64_MIN; }
  void DoPendingWork() override;
  void PushIdle() override;
  // 1-3 ms of firing on this machine (docs/benchmarks.md).
  static constexpr size_t kFireSlice = 1024;
  void OnProcessingTime(int64_t now_ms) override;
  // Side output for records beyond the allowed lateness; null: drop them.
  void set_late_output(Output* out) { late_output_ = out; }

 private:
  enum class Kind { kTumbling, kSliding, kSession };
  enum TimerKind : int { kFire = 0, kCleanup = 1 };
  struct Timer {
    int64_t time;
    std::string key;  // serialized key fields
    int64_t ns;       // window start (tumbling, sliding) or session end
    int kind;
    int key_group;
  };
  // Timer payload: [key group: 2 bytes big-endian][key][ns: 8 bytes,
  // order-preserving][kind: 1]. The key group first, as TimerQueue requires.
  void AddTimer(const Timer& t);
  static void TimerPayload(const Timer& t, std::string* out);
  bool DecodeTimer(int64_t time, std::string_view payload, Timer* t) const;
  void OnTimer(const Timer& timer);
  struct Session {
    int64_t start;
    int64_t end;
    std::string acc;
  };

  // What a state update folds in: one record (row at event time t), or the
  // accumulator of several (acc, PushCombined).
  struct Fold {
    const Row* row;
    int64_t t;
    const std::string* acc;
  };
  void FoldInto(const Fold& fold, std::string* state);
  void ProcessRecord(const Row& row, int64_t t);
  // The record's key in key_ and its key group; -1 (and failed) if this
  // subtask does not own it.
  int KeyRecord(const Row& row);
  // Tumbling and sliding: the namespace a record at t adds to (its window's
  // start, its pane's); false if it is late for every window it is in.
  bool PlaceRecord(int64_t t, int64_t* ns) const;
  // Tumbling and sliding: folds into key_'s window or pane ns.
  void AddTo(int key_group, const Fold& fold, int64_t ns);
  // A batch a state update per key and window (tumbling) or pane (sliding):
  // its records of one go into an accumulator of their own first, in
  // order, which is then merged into the state. Only for event-time
  // windows without allowed lateness whose aggregates give the same
  // results in any grouping (combine_), so the results, timers and late
  // records are those of a record at a time. In q5's sliding window a
  // batch of ~450 bids held ~87 auction-panes: a fifth of the updates, and
  // CPU -10 to -15% at half rate (docs/benchmarks.md).
  void PushCombined(const RowBatch& batch);
  // Tumbling windows: adds to (key, window ns).
  void AddToWindow(int key_group, const Fold& fold, int64_t ns, int64_t fire_time);
  void AddToSession(int key_group, const Row& row, int64_t t);
  void FireTimers(int64_t up_to);
  void ForwardWatermark(int64_t watermark);
  // Fires what the held watermark is due, at once, and passes it on.
  void FireHeld();
  // Sliding windows keep a key's live panes in one state entry (state
  // "window_panes"), in ascending order of their start:
  //   [pane start: kNamespaceBytes, AppendOrderedTime][acc size: varint32][acc]
  // A pane's bytes in that value: [begin, acc) its start and size, [acc, end)
  // its accumulator.
  struct PaneRef {
    int64_t start;
    size_t begin;
    size_t acc;
    size_t end;
  };
  static bool ParsePanes(std::string_view value, std::vector<PaneRef>* panes);
  // One pane's bytes, as above, in *out.
  static void EncodePane(int64_t start, std::string_view acc, std::string* out);
  void AddToPanes(int key_group, const Fold& fold, int64_t pane);
  // Merges the key's panes in window [start, start + size) and emits the
  // result if emit and the key has any there; drops the panes that start
  // before drop_before (INT64_MIN: none).
  void FirePanes(const std::string& key, int key_group, int64_t start, bool emit, int64_t drop_before);
  // A restored snapshot of the layout before "window_panes" (an entry per key
  // and pane, in state "window"): its panes move into the key's entry.
  absl::Status MigratePanes();
  void EmitResult(const std::string& key, int64_t start, int64_t end, std::string_view acc);
  void Late(const Row& row);
  bool LoadSessions(int key_group, const std::string& key, std::vector<Session>* sessions);
  void StoreSessions(int key_group, const std::string& key, const std::vector<Session>& sessions);
  // The RocksDB key of (key, namespace) in `ns_key_`: the key, then the
  // namespace as kNamespaceBytes in time order (AppendOrderedTime).
  const std::string& NamespacedKey(const std::string& key, int64_t ns);
  static constexpr size_t kNamespaceBytes = 8;
  // Tumbling windows without allowed lateness: a window's state lives from
  // its first record until its one timer fires, so the timers follow from
  // the state. Snapshots then leave them out (TimerQueue::
  // kRebuiltOnRestore) and a restore adds them back (RebuildFireTimers,
  // for every restored tumbling window, whatever its allowed lateness now):
  // the clinical workload's 5-minute window held 40,000 timers per
  // subtask, and copying them was 20-140 ms of each checkpoint's
  // synchronous part (docs/benchmarks.md). Other windows keep fired
  // windows' state (allowed lateness) or their timers do not map one to
  // one onto state (sliding panes, sessions): their timers are snapshotted.
  bool TimersFollowFromState() const;
  // Event-time windows whose timers follow from their state fire in
  // slices (has_pending_work).
  bool FiresInSlices() const;
  absl::Status RebuildFireTimers();
  void Fail(const absl::Status& s) {
    if (status_.ok()) status_ = s;
  }
  void FlushOut();

  Schema input_;
  proto::WindowSpec spec_;
  Kind kind_;
  int64_t pane_ = 0;  // sliding: gcd(size, slide)
  std::vector<int> key_fields_;
  Schema key_schema_;
  std::unique_ptr<AccumulatorSet> accs_;
  OwnedKeyGroups owned_key_groups_;
  std::unique_ptr<KeyedStateBackend> backend_;
  StateId acc_state_ = 0;
  std::unique_ptr<TimerQueue> timers_;
  std::string timer_payload_;
  int64_t watermark_ = INT64_MIN;
  // The watermark to pass on once its due timers have fired; INT64_MIN:
  // none held.
  int64_t held_watermark_ = INT64_MIN;
  Timer fire_timer_;  // reused by DoPendingWork
  Output* late_output_ = nullptr;
  RowBatch out_;
  RowBatch late_;
  std::string key_;
  std::string ns_key_;
  std::string value_;
  std::string merged_;
  std::vector<PaneRef> panes_;
  std::string acc_;         // AddToPanes: the record's pane's accumulator
  std::string pane_bytes_;  // AddToPanes, MigratePanes: a pane's encoding
  // Sliding: restored, and no watermark since (AddToPanes).
  bool awaiting_restored_watermark_ = false;
  // PushCombined's, kept from batch to batch: the records' keys back to
  // back, each record's place in them, the groups and their hash table.
  bool combine_ = false;
  struct CombineRecord {
    uint32_t key_offset;
    uint32_t key_size;
    int key_group;
    int64_t ns;  // tumbling: the window's start; sliding: the pane's
    int64_t t;
    uint32_t row;
  };
  struct CombineGroup {
    const CombineRecord* first = nullptr;  // its key, key group and ns
    uint32_t records = 0;
    std::string acc;  // its records', once it has two
  };
  std::string combine_keys_;
  std::vector<CombineRecord> combine_records_;
  std::vector<CombineGroup> combine_groups_;  // the first num_groups_ in use
  size_t num_groups_ = 0;
  std::vector<uint32_t> combine_slots_;
  int64_t records_combined_ = 0;  // records_combined()
  Row key_row_;
};

}  // namespace vstream
