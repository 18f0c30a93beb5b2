#include "runtime/operators/process_operator.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/dead_letter.h"
#include "runtime/row_codec.h"
#include "spdlog/spdlog.h"
#include "state/key_groups.h"

namespace vstream {

namespace {

// Timer payload: [key group: 2 bytes big-endian][key].
void EncodePayload(int key_group, std::string_view key, std::string* out) {
  out->clear();
  out->push_back(static_cast<char>((key_group >> 8) & 0xff));
  out->push_back(static_cast<char>(key_group & 0xff));
  out->append(key.data(), key.size());
}

bool SameSchema(const Schema& a, const Schema& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a.field(i).name != b.field(i).name || a.field(i).type != b.field(i).type) return false;
  }
  return true;
}

}  // namespace

// ---- ProcessContext ---------------------------------------------------------

const Row& ProcessContext::key_row() {
  if (key_row_valid_) return key_row_;
  const std::vector<int>& fields = op_.process_input_.key_fields;
  if (element_ != nullptr) {
    key_row_.resize(fields.size());
    for (size_t i = 0; i < fields.size(); ++i) key_row_[i] = (*element_)[fields[i]];
  } else {
    size_t pos = 0;
    if (!DecodeRow(op_.key_schema_, key_, &pos, &key_row_)) {
      op_.Fail(absl::DataLossError("corrupt key in a process function timer"));
      key_row_.assign(fields.size(), Datum());
    }
  }
  key_row_valid_ = true;
  return key_row_;
}

const std::string& ProcessContext::Payload() {
  EncodePayload(key_group_, key_, &payload_);
  return payload_;
}

absl::Status ProcessContext::RegisterEventTimeTimer(int64_t time) {
  return op_.RegisterTimer(TimeDomain::kEventTime, time, Payload());
}

absl::Status ProcessContext::DeleteEventTimeTimer(int64_t time) {
  return op_.DeleteTimer(TimeDomain::kEventTime, time, Payload());
}

absl::Status ProcessContext::RegisterProcessingTimeTimer(int64_t time) {
  return op_.RegisterTimer(TimeDomain::kProcessingTime, time, Payload());
}

absl::Status ProcessContext::DeleteProcessingTimeTimer(int64_t time) {
  return op_.DeleteTimer(TimeDomain::kProcessingTime, time, Payload());
}

Row& ProcessContext::Emit() {
  Row& row = op_.out_.Append();
  for (Datum& d : row) d.is_null = true;
  return row;
}

void ProcessContext::EmitDeadLetter(const Row& record, std::string_view reason) { op_.DeadLetter(record, reason); }

// ---- ProcessOperator --------------------------------------------------------

int64_t ProcessOperator::Firing::Pending(int64_t time, const std::string& payload) const {
  const auto end = due.begin() + static_cast<std::ptrdiff_t>(count);
  auto it = std::lower_bound(due.begin() + static_cast<std::ptrdiff_t>(next), end, time,
                             [&](const std::pair<int64_t, std::string>& t, int64_t) {
                               return t.first < time || (t.first == time && t.second < payload);
                             });
  if (it == end || it->first != time || it->second != payload) return -1;
  return it - due.begin();
}

ProcessOperator::ProcessOperator(OperatorCounters& counters, Schema input, Schema output,
                                 const proto::ProcessSpec& spec, std::unique_ptr<KeyedProcessFunction> function)
    : StreamOperator(counters),
      input_(std::move(input)),
      output_schema_(std::move(output)),
      spec_(spec),
      function_(std::move(function)),
      ctx_(*this),
      out_(output_schema_.size()),
      dead_letters_(counters, "process") {}

ProcessOperator::~ProcessOperator() = default;

absl::Status ProcessOperator::Open(const OperatorContext& ctx) {
  op_ctx_ = ctx;
  dead_letters_.Open(ctx);
  dead_letters_.set_output(dead_letter_output_);
  const std::string who = absl::StrCat("process function '", spec_.function(), "'");
  if (function_ == nullptr) return absl::InvalidArgumentError(absl::StrCat(who, " is missing"));
  process_input_.schema = input_;
  process_input_.key_fields.clear();
  for (const std::string& k : spec_.key_by()) {
    const int idx = input_.IndexOf(k);
    if (idx < 0) return absl::InvalidArgumentError(absl::StrCat("unknown key field ", k));
    process_input_.key_fields.push_back(idx);
    key_schema_.Add(k, input_.field(idx).type);
  }
  if (process_input_.key_fields.empty()) {
    return absl::InvalidArgumentError("a process function needs key_by fields");
  }
  const int tf = spec_.time_field_index();
  if (tf >= static_cast<int>(input_.size()) || (tf >= 0 && input_.field(tf).type != FieldType::kTimestamp)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid event-time field index ", tf));
  }
  process_input_.time_index = tf >= 0 ? tf : -1;

  // The client computed (or the job declared) the output schema; the
  // function in this TaskManager must agree, or downstream would misread.
  absl::StatusOr<ProcessOutputSchema> produced = function_->OutputSchema(process_input_);
  if (!produced.ok()) {
    return absl::Status(produced.status().code(), absl::StrCat(who, ": ", produced.status().message()));
  }
  if (!SameSchema(produced->schema, output_schema_)) {
    return absl::FailedPreconditionError(
        absl::StrCat(who, " produces ", produced->schema.DebugString(), " but the job ",
                     spec_.declared_output_schema() ? "declares output_schema " : "was compiled for ",
                     output_schema_.DebugString()));
  }

  RETURN_IF_ERROR(owned_key_groups_.Init(ctx, "process operator", process_input_.key_fields));
  clock_ = ctx.clock != nullptr ? ctx.clock : &StateClock::System();
  ASSIGN_OR_RETURN(backend_, OpenKeyedStateBackend(ctx));
  ASSIGN_OR_RETURN(event_timers_, TimerQueue::Create(*backend_, "__event_timers"));
  ASSIGN_OR_RETURN(processing_timers_, TimerQueue::Create(*backend_, "__processing_timers"));
  ProcessSetup setup(*backend_, process_input_, output_schema_, ctx.state_ttl_ms, ctx.subtask_index);
  if (absl::Status s = function_->Open(setup); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(who, ": ", s.message()));
  }
  ASSIGN_OR_RETURN(raw_writer_, CreateRecordWriter("jsonl", input_));
  return absl::OkStatus();
}

void ProcessOperator::Push(RowBatch& batch) {
  const size_t n = batch.size();
  CountIn(n);
  const int tf = process_input_.time_index;
  ctx_.processing_time_ = clock_->NowMillis();
  ctx_.watermark_ = watermark_;
  for (size_t i = 0; i < n && status_.ok(); ++i) {
    const Row& row = batch[i];
    key_.clear();
    EncodeKey(input_, row, process_input_.key_fields, &key_);
    const int key_group = owned_key_groups_.KeyGroupOf(input_, row, key_);
    if (!owned_key_groups_.Owns(key_group)) {
      Fail(owned_key_groups_.Foreign(key_group));
      break;
    }
    backend_->SetCurrentKey(key_group, key_);
    ctx_.key_ = key_;
    ctx_.key_group_ = key_group;
    ctx_.element_ = &row;
    ctx_.key_row_valid_ = false;
    ctx_.has_timestamp_ = tf >= 0 && !row[tf].is_null;
    ctx_.timestamp_ = ctx_.has_timestamp_ ? row[tf].i : 0;
    absl::Status s = function_->ProcessElement(row, ctx_);
    if (!s.ok()) Fail(s);
    if (out_.full()) FlushOut();
  }
  ctx_.element_ = nullptr;
  if (status_.ok()) {
    absl::Status s = function_->FinishBatch(ctx_);
    if (!s.ok()) Fail(s);
  }
  FlushOut();
}

absl::Status ProcessOperator::RegisterTimer(TimeDomain domain, int64_t time, const std::string& payload) {
  Firing& f = firing(domain);
  if (f.active) {
    // Already popped and still to fire in this round: it fires once, now
    // again wanted if it had been deleted.
    const int64_t i = f.Pending(time, payload);
    if (i >= 0) {
      f.cancelled[i] = false;
      return absl::OkStatus();
    }
  }
  return timers(domain).Add(time, payload);
}

absl::Status ProcessOperator::DeleteTimer(TimeDomain domain, int64_t time, const std::string& payload) {
  Firing& f = firing(domain);
  if (f.active) {
    const int64_t i = f.Pending(time, payload);
    if (i >= 0) f.cancelled[i] = true;
  }
  return timers(domain).Remove(time, payload);
}

void ProcessOperator::FireTimers(TimeDomain domain, int64_t up_to) {
  Firing& f = firing(domain);
  TimerQueue& queue = timers(domain);
  // Firing may register timers that are due too: pop until none is.
  while (status_.ok()) {
    // Refills due in place: a timer's payload reuses the string of the one
    // at its index in an earlier round, no allocation once they have grown.
    f.count = 0;
    auto popped = queue.PopUpTo(up_to, [&](int64_t time, std::string_view payload) {
      if (f.count == f.due.size()) f.due.emplace_back();
      auto& [due_time, due_payload] = f.due[f.count++];
      due_time = time;
      due_payload.assign(payload.data(), payload.size());
    });
    if (!popped.ok()) return Fail(popped.status());
    if (f.count == 0) return;
    f.cancelled.assign(f.count, false);
    f.active = true;
    // next is the first timer not fired: a Register of the one firing
    // (from its OnTimer) queues a new timer.
    f.next = 0;
    while (f.next < f.count && status_.ok()) {
      const size_t i = f.next++;
      if (f.cancelled[i]) continue;
      const auto& [time, payload] = f.due[i];
      if (payload.size() < 2) {
        Fail(absl::DataLossError("corrupt process function timer"));
        break;
      }
      const int key_group = (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
      timer_key_.assign(payload, 2);
      backend_->SetCurrentKey(key_group, timer_key_);
      ctx_.key_ = timer_key_;
      ctx_.key_group_ = key_group;
      ctx_.element_ = nullptr;
      ctx_.key_row_valid_ = false;
      ctx_.has_timestamp_ = domain == TimeDomain::kEventTime;
      ctx_.timestamp_ = domain == TimeDomain::kEventTime ? time : 0;
      absl::Status s = function_->OnTimer(time, domain, ctx_);
      if (!s.ok()) Fail(s);
      if (out_.full()) FlushOut();
    }
    f.active = false;
  }
}

void ProcessOperator::PushWatermark(int64_t watermark) {
  if (watermark <= watermark_) return;
  watermark_ = watermark;
  ctx_.watermark_ = watermark;
  ctx_.processing_time_ = clock_->NowMillis();
  FireTimers(TimeDomain::kEventTime, watermark);
  FlushOut();
  output_->PushWatermark(watermark);
  if (dead_letter_output_ != nullptr) dead_letter_output_->PushWatermark(watermark);
}

void ProcessOperator::OnProcessingTime(int64_t now_ms) {
  ctx_.processing_time_ = now_ms;
  ctx_.watermark_ = watermark_;
  FireTimers(TimeDomain::kProcessingTime, now_ms);
  FlushOut();
}

void ProcessOperator::Finish() {
  FlushOut();
  output_->Finish();
}

void ProcessOperator::DeadLetter(const Row& record, std::string_view reason) {
  scratch_.clear();
  if (raw_writer_ != nullptr) raw_writer_->Write(record, &scratch_);
  while (!scratch_.empty() && scratch_.back() == '\n') scratch_.pop_back();
  // Flushed when full, not with FlushOut: the function may be filling a row
  // it got from Emit.
  dead_letters_.Add(spec_.function(), reason, scratch_);
}

void ProcessOperator::FlushOut() {
  Emit(out_);
  out_.Clear();
  FlushDeadLetters();
}

void ProcessOperator::FlushDeadLetters() { dead_letters_.Flush(); }

}  // namespace vstream
