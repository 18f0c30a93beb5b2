#include "runtime/operators/window_operator.h"

#include <algorithm>
#include <cstdint>
#include <numeric>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/network/buffer.h"
#include "runtime/row_codec.h"
#include "spdlog/spdlog.h"
#include "state/key_groups.h"
#include "state/state_key.h"

namespace vstream {

namespace {

inline int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

inline int64_t AlignDown(int64_t t, int64_t unit) { return FloorDiv(t, unit) * unit; }

}  // namespace

WindowOperator::WindowOperator(OperatorCounters& counters, Schema input, const proto::WindowSpec& spec)
    : StreamOperator(counters), input_(std::move(input)), spec_(spec) {
  kind_ = spec.kind() == "sliding" ? Kind::kSliding : spec.kind() == "session" ? Kind::kSession : Kind::kTumbling;
  if (kind_ == Kind::kSliding) pane_ = std::gcd(spec.size_ms(), spec.slide_ms());
  for (const auto& k : spec.key_by()) {
    const int idx = input_.IndexOf(k);
    key_fields_.push_back(idx);
    if (idx >= 0) key_schema_.Add(k, input_.field(idx).type);
  }
  out_.set_width(key_fields_.size() + 2 + spec.aggregates_size());
  late_.set_width(input_.size());
}

absl::Status WindowOperator::Open(const OperatorContext& ctx) {
  for (size_t i = 0; i < key_fields_.size(); ++i) {
    if (key_fields_[i] < 0) return absl::InvalidArgumentError(absl::StrCat("unknown key field ", spec_.key_by(i)));
  }
  if ((kind_ != Kind::kSession && spec_.size_ms() <= 0) || (kind_ == Kind::kSliding && spec_.slide_ms() <= 0) ||
      (kind_ == Kind::kSession && spec_.gap_ms() <= 0)) {
    return absl::InvalidArgumentError("window sizes, slides and gaps must be positive");
  }
  if (!spec_.processing_time() &&
      (spec_.time_field_index() < 0 || spec_.time_field_index() >= static_cast<int>(input_.size()))) {
    return absl::InvalidArgumentError("an event-time window needs the input's time field");
  }
  std::vector<proto::AggregateCall> calls(spec_.aggregates().begin(), spec_.aggregates().end());
  auto accs = AccumulatorSet::Create(calls, input_);
  if (!accs.ok()) return accs.status();
  accs_ = std::move(*accs);
  combine_ = kind_ != Kind::kSession && !spec_.processing_time() && spec_.allowed_lateness_ms() == 0 &&
             accs_->ExactUnderRegrouping();
  RETURN_IF_ERROR(owned_key_groups_.Init(ctx, "window", key_fields_));
  RETURN_IF_ERROR(
      OpenKeyedValueState(ctx, kind_ == Kind::kSliding ? "window_panes" : "window", &backend_, &acc_state_));
  const bool rebuilt = TimersFollowFromState();
  ASSIGN_OR_RETURN(timers_, TimerQueue::Create(*backend_, "window_timers", TimerQueue::kDefaultMemoryLimit,
                                               rebuilt ? TimerQueue::kRebuiltOnRestore : TimerQueue::kSnapshotted));
  // Whatever the spec's allowed lateness now: the snapshot may be of one
  // that left its timers out.
  if (kind_ == Kind::kTumbling && ctx.restored) RETURN_IF_ERROR(RebuildFireTimers());
  if (kind_ == Kind::kSliding && ctx.restored) {
    RETURN_IF_ERROR(MigratePanes());
    awaiting_restored_watermark_ = true;
  }
  return absl::OkStatus();
}

absl::Status WindowOperator::MigratePanes() {
  if (!backend_->HasState("window")) return absl::OkStatus();
  ValueStateDescriptor descriptor;
  descriptor.name = "window";
  descriptor.write_back_cache = true;
  ASSIGN_OR_RETURN(ValueState * old_state, backend_->GetValueState(descriptor));
  const StateId old = old_state->id();
  // The old key is NamespacedKey's: [key][pane start: 8].
  struct OldPane {
    int key_group;
    std::string key;
  };
  std::vector<OldPane> entries;
  RETURN_IF_ERROR(backend_->ForEachKey(old, {0, kMaxKeyGroups - 1}, [&](const StateKeyView& k) {
    if (k.key.size() < kNamespaceBytes) return Fail(absl::DataLossError("window: corrupt state key"));
    entries.push_back({k.key_group, std::string(k.key)});
  }));
  RETURN_IF_ERROR(status_);
  std::string acc;
  for (const OldPane& e : entries) {
    absl::Status s = backend_->Get(old, e.key_group, e.key, &acc);
    if (absl::IsNotFound(s)) continue;
    RETURN_IF_ERROR(s);
    const std::string_view key(e.key.data(), e.key.size() - kNamespaceBytes);
    const int64_t pane = ReadOrderedTime(e.key.data() + key.size());
    EncodePane(pane, acc, &pane_bytes_);
    bool corrupt = false;
    RETURN_IF_ERROR(backend_->Update(acc_state_, e.key_group, key, [&](bool, std::string* value) {
      if (!ParsePanes(*value, &panes_)) {
        corrupt = true;
        return;
      }
      size_t at = value->size();
      for (const PaneRef& p : panes_) {
        if (p.start > pane) {
          at = p.begin;
          break;
        }
      }
      value->insert(at, pane_bytes_);
    }));
    if (corrupt) return absl::DataLossError("window: corrupt panes");
    RETURN_IF_ERROR(backend_->Delete(old, e.key_group, e.key));
  }
  if (!entries.empty()) {
    spdlog::info("window: {} panes of a snapshot from before per-key panes moved into state 'window_panes'",
                 entries.size());
  }
  return absl::OkStatus();
}

bool WindowOperator::TimersFollowFromState() const {
  return kind_ == Kind::kTumbling && spec_.allowed_lateness_ms() == 0;
}

bool WindowOperator::FiresInSlices() const { return TimersFollowFromState() && !spec_.processing_time(); }

absl::Status WindowOperator::RebuildFireTimers() {
  // A snapshot that left its timers out holds only windows that have not
  // fired: each gets its fire timer again (adding one that a spill kept in
  // the snapshot keeps one). A snapshot that holds its timers (allowed
  // lateness then) may hold windows that fired and are kept for their
  // lateness: those have a cleanup timer in it, and get no fire timer.
  absl::flat_hash_set<std::string> fired;  // timer payloads without the kind
  RETURN_IF_ERROR(timers_->ForEachOnDisk([&](int64_t, std::string_view p) {
    if (!p.empty() && p.back() == static_cast<char>(kCleanup)) fired.emplace(p.substr(0, p.size() - 1));
  }));
  // The state key is NamespacedKey's: [key][window start: 8].
  int64_t windows = 0;
  std::string key;
  RETURN_IF_ERROR(backend_->ForEachKey(acc_state_, {0, kMaxKeyGroups - 1}, [&](const StateKeyView& k) {
    if (!status_.ok()) return;
    if (k.key.size() < kNamespaceBytes) return Fail(absl::DataLossError("window: corrupt state key"));
    key.assign(k.key.data(), k.key.size() - kNamespaceBytes);
    const int64_t start = ReadOrderedTime(k.key.data() + key.size());
    const Timer timer{SatAdd(start, spec_.size_ms() - 1), key, start, kFire, k.key_group};
    if (!fired.empty()) {
      TimerPayload(timer, &timer_payload_);
      timer_payload_.pop_back();  // the kind
      if (fired.contains(timer_payload_)) return;
    }
    AddTimer(timer);
    ++windows;
  }));
  RETURN_IF_ERROR(status_);
  if (windows > 0) spdlog::info("window: timers of {} restored windows added", windows);
  return absl::OkStatus();
}

const std::string& WindowOperator::NamespacedKey(const std::string& key, int64_t ns) {
  ns_key_.assign(key);
  AppendOrderedTime(ns, &ns_key_);
  return ns_key_;
}

void WindowOperator::Push(RowBatch& batch) {
  const size_t n = batch.size();
  CountIn(n);
  if (combine_ && n > 1) {
    PushCombined(batch);
    FlushOut();
    return;
  }
  const int tf = spec_.time_field_index();
  const int64_t now = spec_.processing_time() ? NowMillis() : 0;
  for (size_t i = 0; i < n && status_.ok(); ++i) {
    const Row& row = batch[i];
    if (spec_.processing_time()) {
      ProcessRecord(row, now);
    } else if (row[tf].is_null) {
      Late(row);  // no event time: it cannot belong to any window
    } else {
      ProcessRecord(row, row[tf].i);
    }
  }
  FlushOut();
}

void WindowOperator::PushCombined(const RowBatch& batch) {
  // First each record's key, key group and namespace (late ones go now),
  // then its group, then one state update per group. After a failure
  // nothing more, as a record at a time.
  if (!status_.ok()) return;
  const int tf = spec_.time_field_index();
  combine_keys_.clear();
  combine_records_.clear();
  const Row* prev_keyed = nullptr;  // the last record keyed: key_ is its key
  int prev_key_group = -1;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Row& row = batch[i];
    if (row[tf].is_null) {
      Late(row);  // no event time: it cannot belong to any window
      continue;
    }
    const int64_t t = row[tf].i;
    // A record with the key of the one before it has its key and key group
    // (in q5, half the bids are for the hot auction; max_bids gets a
    // window's 3,000 counts with one key).
    if (prev_keyed == nullptr || !SameKey(input_, row, *prev_keyed, key_fields_)) {
      prev_key_group = KeyRecord(row);
      if (prev_key_group < 0) return;
    }
    prev_keyed = &row;
    const int key_group = prev_key_group;
    int64_t ns = 0;
    if (!PlaceRecord(t, &ns)) {
      Late(row);
      continue;
    }
    combine_records_.push_back({static_cast<uint32_t>(combine_keys_.size()), static_cast<uint32_t>(key_.size()),
                                key_group, ns, t, static_cast<uint32_t>(i)});
    combine_keys_.append(key_);
  }
  // Open addressing over group numbers (+1; 0: empty), at most half full.
  size_t slots = 16;
  while (slots < 2 * combine_records_.size()) slots *= 2;
  combine_slots_.assign(slots, 0);
  num_groups_ = 0;
  for (const CombineRecord& r : combine_records_) {
    const std::string_view key(combine_keys_.data() + r.key_offset, r.key_size);
    size_t at = absl::HashOf(key, r.ns) & (slots - 1);
    uint32_t g = 0;
    while (true) {
      const uint32_t s = combine_slots_[at];
      if (s == 0) {
        if (combine_groups_.size() == num_groups_) combine_groups_.emplace_back();
        CombineGroup& fresh = combine_groups_[num_groups_];
        fresh.first = &r;
        fresh.records = 0;
        fresh.acc.clear();
        g = static_cast<uint32_t>(num_groups_++);
        combine_slots_[at] = g + 1;
        break;
      }
      const CombineRecord& f = *combine_groups_[s - 1].first;
      if (f.ns == r.ns && std::string_view(combine_keys_.data() + f.key_offset, f.key_size) == key) {
        g = s - 1;
        break;
      }
      at = (at + 1) & (slots - 1);
    }
    // A group of one record folds the record itself into the state (no
    // accumulator and merge): the first one's goes in once a second comes.
    CombineGroup& group = combine_groups_[g];
    if (++group.records == 2) accs_->Add(batch[group.first->row], group.first->t, &group.acc);
    if (group.records >= 2) {
      accs_->Add(batch[r.row], r.t, &group.acc);
      ++records_combined_;
    }
  }
  for (size_t g = 0; g < num_groups_ && status_.ok(); ++g) {
    const CombineGroup& group = combine_groups_[g];
    const CombineRecord& r = *group.first;
    key_.assign(combine_keys_.data() + r.key_offset, r.key_size);
    AddTo(r.key_group, group.records == 1 ? Fold{&batch[r.row], r.t, nullptr} : Fold{nullptr, 0, &group.acc},
          r.ns);
  }
}

void WindowOperator::FoldInto(const Fold& fold, std::string* state) {
  if (fold.acc != nullptr) {
    accs_->Merge(*fold.acc, state);
  } else {
    accs_->Add(*fold.row, fold.t, state);
  }
}

int WindowOperator::KeyRecord(const Row& row) {
  key_.clear();
  EncodeKey(input_, row, key_fields_, &key_);
  const int key_group = owned_key_groups_.KeyGroupOf(input_, row, key_);
  if (!owned_key_groups_.Owns(key_group)) {
    Fail(owned_key_groups_.Foreign(key_group));
    return -1;
  }
  return key_group;
}

bool WindowOperator::PlaceRecord(int64_t t, int64_t* ns) const {
  // Late once the last window it is in is past its allowed lateness.
  int64_t last_max = 0;
  if (kind_ == Kind::kTumbling) {
    *ns = AlignDown(t, spec_.size_ms());
    last_max = SatAdd(*ns, spec_.size_ms() - 1);
  } else {
    *ns = AlignDown(t, pane_);
    last_max = SatAdd(AlignDown(*ns, spec_.slide_ms()), spec_.size_ms() - 1);
  }
  return SatAdd(last_max, spec_.allowed_lateness_ms()) > watermark_;
}

void WindowOperator::AddTo(int key_group, const Fold& fold, int64_t ns) {
  if (kind_ == Kind::kTumbling) {
    AddToWindow(key_group, fold, ns, SatAdd(ns, spec_.size_ms() - 1));
  } else {
    AddToPanes(key_group, fold, ns);
  }
}

void WindowOperator::ProcessRecord(const Row& row, int64_t t) {
  const int key_group = KeyRecord(row);
  if (key_group < 0) return;
  if (kind_ == Kind::kSession) return AddToSession(key_group, row, t);
  int64_t ns = 0;
  if (!PlaceRecord(t, &ns)) return Late(row);
  AddTo(key_group, Fold{&row, t, nullptr}, ns);
}

void WindowOperator::AddToWindow(int key_group, const Fold& fold, int64_t ns, int64_t max_ts) {
  const std::string& nk = NamespacedKey(key_, ns);
  bool fresh = false;
  const bool correction = max_ts <= watermark_;
  absl::Status s = backend_->Update(acc_state_, key_group, nk, [&](bool present, std::string* value) {
    fresh = !present;
    FoldInto(fold, value);
    if (correction) value_.assign(*value);  // emitted below
  });
  if (!s.ok()) return Fail(s);
  const int64_t lateness = spec_.allowed_lateness_ms();

  if (max_ts <= watermark_) {
    // A late record within the allowed lateness: emit the corrected window.
    EmitResult(key_, ns, max_ts + 1, value_);
    AddTimer({SatAdd(max_ts, lateness), key_, ns, kCleanup, key_group});
  } else if (fresh) {
    // One timer per window and key, registered with its first record.
    AddTimer({max_ts, key_, ns, kFire, key_group});
  }
}

void WindowOperator::EncodePane(int64_t start, std::string_view acc, std::string* out) {
  out->clear();
  AppendOrderedTime(start, out);
  AppendVarint32(static_cast<uint32_t>(acc.size()), out);
  out->append(acc);
}

bool WindowOperator::ParsePanes(std::string_view value, std::vector<PaneRef>* panes) {
  panes->clear();
  std::string_view rest = value;
  while (!rest.empty()) {
    PaneRef p;
    p.begin = value.size() - rest.size();
    if (rest.size() < kNamespaceBytes) return false;
    p.start = ReadOrderedTime(rest.data());
    rest.remove_prefix(kNamespaceBytes);
    uint32_t n = 0;
    if (!ReadVarint32(&rest, &n) || n > rest.size()) return false;
    p.acc = value.size() - rest.size();
    p.end = p.acc + n;
    rest.remove_prefix(n);
    panes->push_back(p);
  }
  return true;
}

void WindowOperator::AddToPanes(int key_group, const Fold& fold, int64_t pane) {
  bool fresh = false, corrupt = false;
  // The key's nearest other panes before and after the record's.
  int64_t prev = INT64_MIN, next = INT64_MAX;
  absl::Status s = backend_->Update(acc_state_, key_group, key_, [&](bool, std::string* value) {
    if (!ParsePanes(*value, &panes_)) {
      corrupt = true;
      return;
    }
    size_t at = value->size();  // where a new pane goes
    for (const PaneRef& p : panes_) {
      if (p.start < pane) {
        prev = p.start;
        continue;
      }
      if (p.start > pane) {
        next = p.start;
        at = p.begin;
        break;
      }
      const size_t n = p.end - p.acc;
      acc_.assign(*value, p.acc, n);
      FoldInto(fold, &acc_);
      if (acc_.size() == n) {
        value->replace(p.acc, n, acc_);
      } else {
        EncodePane(pane, acc_, &pane_bytes_);
        value->replace(p.begin, p.end - p.begin, pane_bytes_);
      }
      return;
    }
    fresh = true;
    acc_.clear();
    FoldInto(fold, &acc_);
    EncodePane(pane, acc_, &pane_bytes_);
    value->insert(at, pane_bytes_);
  });
  if (!s.ok()) return Fail(s);
  if (corrupt) return Fail(absl::DataLossError("window: corrupt panes"));
  // The pane belongs to the windows starting in [pane + pane_size - size,
  // pane], on multiples of the slide. A window that holds another of the
  // key's panes got its timers with the first record of that pane, so a new
  // pane adds timers only for the windows no other pane is in: with the
  // panes in order, those the nearest ones before and after are not in.
  // Processing-time windows add them all (their timers fire before the
  // millisecond is over for every record of it), and so does a window
  // restored from a snapshot until its first watermark: the watermark is
  // not in the snapshot, so windows that are due or fired still look open.
  const bool all_timed = spec_.processing_time() || awaiting_restored_watermark_;
  const int64_t size = spec_.size_ms(), slide = spec_.slide_ms();
  const int64_t lateness = spec_.allowed_lateness_ms();
  const int64_t first_start = -AlignDown(-(pane + pane_ - size), slide);  // ceil to slide
  const int64_t last_start = AlignDown(pane, slide);
  for (int64_t start = first_start; start <= last_start; start += slide) {
    const int64_t window_max = SatAdd(start, size - 1);
    const bool timed = fresh && (all_timed || (prev < start && next > window_max));
    if (window_max > watermark_) {
      if (timed) AddTimer({window_max, key_, start, kFire, key_group});
    } else if (SatAdd(window_max, lateness) > watermark_) {
      // Fired, within its allowed lateness: emit the corrected window. A
      // window that only now has a pane of this key gets the cleanup a
      // fire would have added.
      FirePanes(key_, key_group, start, true, INT64_MIN);
      if (timed) AddTimer({SatAdd(window_max, lateness), key_, start, kCleanup, key_group});
    }
  }
}

bool WindowOperator::LoadSessions(int key_group, const std::string& key, std::vector<Session>* sessions) {
  sessions->clear();
  absl::Status s = backend_->Get(acc_state_, key_group, key, &value_);
  if (absl::IsNotFound(s)) return true;
  if (!s.ok()) {
    Fail(s);
    return false;
  }
  size_t pos = 0;
  uint64_t n = 0, a = 0, b = 0, len = 0;
  if (!GetVarint64(value_, &pos, &n)) return true;
  for (uint64_t i = 0; i < n; ++i) {
    if (!GetVarint64(value_, &pos, &a) || !GetVarint64(value_, &pos, &b) || !GetVarint64(value_, &pos, &len) ||
        len > value_.size() - pos) {
      return true;
    }
    sessions->push_back({static_cast<int64_t>(a ^ (1ull << 63)), static_cast<int64_t>(b ^ (1ull << 63)),
                         value_.substr(pos, len)});
    pos += len;
  }
  return true;
}

void WindowOperator::StoreSessions(int key_group, const std::string& key, const std::vector<Session>& sessions) {
  absl::Status s;
  if (sessions.empty()) {
    s = backend_->Delete(acc_state_, key_group, key);
  } else {
    value_.clear();
    PutVarint64(sessions.size(), &value_);
    for (const Session& x : sessions) {
      PutVarint64(static_cast<uint64_t>(x.start) ^ (1ull << 63), &value_);
      PutVarint64(static_cast<uint64_t>(x.end) ^ (1ull << 63), &value_);
      PutVarint64(x.acc.size(), &value_);
      value_.append(x.acc);
    }
    s = backend_->Put(acc_state_, key_group, key, value_);
  }
  if (!s.ok()) Fail(s);
}

void WindowOperator::AddToSession(int key_group, const Row& row, int64_t t) {
  std::vector<Session> sessions;
  if (!LoadSessions(key_group, key_, &sessions)) return;
  Session merged{t, SatAdd(t, spec_.gap_ms()), std::string()};
  accs_->Add(row, t, &merged.acc);
  std::vector<Session> kept;
  for (Session& s : sessions) {
    // Flink's TimeWindow.intersects: touching sessions merge too.
    if (s.start <= merged.end && s.end >= merged.start) {
      merged.start = std::min(merged.start, s.start);
      merged.end = std::max(merged.end, s.end);
      accs_->Merge(s.acc, &merged.acc);
    } else {
      kept.push_back(std::move(s));
    }
  }
  const int64_t max_ts = merged.end - 1;
  const int64_t lateness = spec_.allowed_lateness_ms();
  if (!spec_.processing_time() && SatAdd(max_ts, lateness) <= watermark_) return Late(row);
  kept.push_back(merged);
  StoreSessions(key_group, key_, kept);
  if (max_ts <= watermark_) {
    EmitResult(key_, merged.start, merged.end, merged.acc);
    AddTimer({SatAdd(max_ts, lateness), key_, merged.end, kCleanup, key_group});
  } else {
    AddTimer({max_ts, key_, merged.end, kFire, key_group});
  }
}

void WindowOperator::FirePanes(const std::string& key, int key_group, int64_t start, bool emit,
                               int64_t drop_before) {
  const int64_t end = SatAdd(start, spec_.size_ms());
  bool any = false, corrupt = false;
  merged_.clear();
  absl::Status s = backend_->Modify(acc_state_, key_group, key, [&](bool present, std::string* value) {
    if (!present) return StateChange::kNone;
    if (!ParsePanes(*value, &panes_)) {
      corrupt = true;
      return StateChange::kNone;
    }
    size_t dropped = 0;  // bytes of the panes before drop_before
    for (const PaneRef& p : panes_) {
      if (p.start < drop_before) dropped = p.end;
      if (!emit || p.start < start || p.start >= end) continue;
      accs_->Merge(std::string_view(*value).substr(p.acc, p.end - p.acc), &merged_);
      any = true;
    }
    if (dropped == 0) return StateChange::kNone;
    if (dropped == value->size()) return StateChange::kCleared;
    value->erase(0, dropped);
    return StateChange::kChanged;
  });
  if (!s.ok()) return Fail(s);
  if (corrupt) return Fail(absl::DataLossError("window: corrupt panes"));
  if (any) EmitResult(key, start, end, merged_);
}

void WindowOperator::TimerPayload(const Timer& t, std::string* out) {
  out->clear();
  AppendKeyGroupBytes(t.key_group, out);
  out->append(t.key);
  AppendOrderedTime(t.ns, out);
  out->push_back(static_cast<char>(t.kind));
}

void WindowOperator::AddTimer(const Timer& t) {
  TimerPayload(t, &timer_payload_);
  absl::Status s = timers_->Add(t.time, timer_payload_);
  if (!s.ok()) Fail(s);
}

bool WindowOperator::DecodeTimer(int64_t time, std::string_view p, Timer* t) const {
  // [key group: 2][key][ns: 8][kind: 1]
  if (p.size() < 11) return false;
  const size_t key_len = p.size() - 11;
  t->time = time;
  t->key_group = (static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]);
  t->key.assign(p.data() + 2, key_len);
  t->ns = ReadOrderedTime(p.data() + 2 + key_len);
  t->kind = static_cast<uint8_t>(p[p.size() - 1]);
  return true;
}

void WindowOperator::DoPendingWork() {
  if (held_watermark_ == INT64_MIN) return;
  // A slice of the due timers at a time: a pop of a watermark's 40,000 took
  // 15-50 ms of the task on its own. Firing a tumbling window adds no timer
  // that is due, and records that come between slices are late for the
  // windows still due: the queue holds what is left to fire.
  auto popped = timers_->PopUpTo(
      held_watermark_,
      [&](int64_t time, std::string_view payload) {
        if (!status_.ok()) return;
        if (!DecodeTimer(time, payload, &fire_timer_)) return Fail(absl::DataLossError("corrupt window timer"));
        OnTimer(fire_timer_);
      },
      kFireSlice);
  if (!popped.ok()) return Fail(popped.status());
  FlushOut();
  // A later watermark that came meanwhile replaced the held one: its
  // windows are due too, and fire in the next slices.
  if (*popped == kFireSlice || !status_.ok()) return;
  const int64_t watermark = held_watermark_;
  held_watermark_ = INT64_MIN;
  ForwardWatermark(watermark);
}

void WindowOperator::FireHeld() {
  if (held_watermark_ == INT64_MIN) return;
  const int64_t watermark = held_watermark_;
  held_watermark_ = INT64_MIN;
  FireTimers(watermark);
  FlushOut();
  ForwardWatermark(watermark);
}

void WindowOperator::PushIdle() {
  FireHeld();  // its results and its watermark go before the idle marker
  output_->PushIdle();
}

void WindowOperator::FireTimers(int64_t up_to) {
  // Firing may add timers (cleanups) that are due too: pop until none is.
  while (status_.ok()) {
    Timer timer;
    auto popped = timers_->PopUpTo(up_to, [&](int64_t time, std::string_view payload) {
      if (!status_.ok()) return;
      if (!DecodeTimer(time, payload, &timer)) return Fail(absl::DataLossError("corrupt window timer"));
      OnTimer(timer);
    });
    if (!popped.ok()) return Fail(popped.status());
    if (*popped == 0) return;
  }
}

void WindowOperator::OnTimer(const Timer& timer) {
  const int64_t lateness = spec_.allowed_lateness_ms();
  switch (kind_) {
    case Kind::kTumbling: {
      const std::string& nk = NamespacedKey(timer.key, timer.ns);
      if (timer.kind == kFire) {
        absl::Status s = backend_->Get(acc_state_, timer.key_group, nk, &value_);
        if (absl::IsNotFound(s)) break;
        if (!s.ok()) return Fail(s);
        EmitResult(timer.key, timer.ns, timer.ns + spec_.size_ms(), value_);
        if (lateness > 0 && !spec_.processing_time()) {
          AddTimer({SatAdd(timer.time, lateness), timer.key, timer.ns, kCleanup, timer.key_group});
          break;
        }
      }
      absl::Status s = backend_->Delete(acc_state_, timer.key_group, NamespacedKey(timer.key, timer.ns));
      if (!s.ok()) return Fail(s);
      break;
    }
    case Kind::kSliding: {
      // Fired and kept for its allowed lateness, or done with: then the
      // panes whose last window this is are no longer needed.
      const bool fire = timer.kind == kFire;
      const bool keep = fire && lateness > 0 && !spec_.processing_time();
      FirePanes(timer.key, timer.key_group, timer.ns, fire, keep ? INT64_MIN : SatAdd(timer.ns, spec_.slide_ms()));
      if (keep) AddTimer({SatAdd(timer.time, lateness), timer.key, timer.ns, kCleanup, timer.key_group});
      break;
    }
    case Kind::kSession: {
      std::vector<Session> sessions;
      if (!LoadSessions(timer.key_group, timer.key, &sessions)) return;
      auto it = std::find_if(sessions.begin(), sessions.end(), [&](const Session& s) { return s.end == timer.ns; });
      if (it == sessions.end()) break;  // merged into a larger session since
      if (timer.kind == kFire) {
        EmitResult(timer.key, it->start, it->end, it->acc);
        if (lateness > 0 && !spec_.processing_time()) {
          AddTimer({SatAdd(timer.time, lateness), timer.key, timer.ns, kCleanup, timer.key_group});
          break;
        }
      }
      sessions.erase(it);
      StoreSessions(timer.key_group, timer.key, sessions);
      break;
    }
  }
}

void WindowOperator::EmitResult(const std::string& key, int64_t start, int64_t end, std::string_view acc) {
  size_t pos = 0;
  if (!DecodeRow(key_schema_, key, &pos, &key_row_)) return Fail(absl::DataLossError("corrupt window key"));
  Row& r = out_.Append();
  size_t f = 0;
  for (; f < key_row_.size(); ++f) r[f] = key_row_[f];
  r[f++].SetInt(start);
  r[f++].SetInt(end);
  accs_->Result(acc, &r, f);
  if (out_.full()) FlushOut();
}

void WindowOperator::Late(const Row& row) {
  counters_.late_records.fetch_add(1, std::memory_order_relaxed);
  if (!late_output_) return;
  Row& r = late_.Append();
  for (size_t f = 0; f < row.size(); ++f) r[f] = row[f];
  if (late_.full()) FlushOut();
}

void WindowOperator::FlushOut() {
  Emit(out_);
  out_.Clear();
  if (late_output_ && !late_.empty()) {
    late_output_->Push(late_);
    late_.Clear();
  }
}

void WindowOperator::PushWatermark(int64_t watermark) {
  if (watermark <= watermark_) return;
  awaiting_restored_watermark_ = false;
  if (spec_.processing_time()) return ForwardWatermark(watermark);
  watermark_ = watermark;
  const bool firing = held_watermark_ != INT64_MIN;
  held_watermark_ = watermark;  // a later one replaces an earlier one still held
  if (FiresInSlices() && watermark != kMaxWatermark) {
    // The first slice now (a watermark with nothing due passes on at once);
    // while a fire goes on, the task paces its slices (PendingWorkPacer).
    if (!firing) DoPendingWork();
    return;
  }
  FireHeld();
}

void WindowOperator::ForwardWatermark(int64_t watermark) {
  output_->PushWatermark(watermark);
  if (late_output_) late_output_->PushWatermark(watermark);
}

void WindowOperator::OnProcessingTime(int64_t now_ms) {
  FireTimers(now_ms);
  FlushOut();
}

void WindowOperator::Finish() {
  // Processing-time windows still open at the end of a bounded input fire now.
  if (spec_.processing_time()) FireTimers(INT64_MAX);
  FireHeld();  // the end of input's watermark fires at once; this is in case it never came
  FlushOut();
  output_->Finish();
}

}  // namespace vstream
