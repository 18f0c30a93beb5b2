#include "runtime/operators/sources.h"

#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/time_util.h"
#include "runtime/dead_letter.h"
#include "spdlog/spdlog.h"

namespace vstream {

// ---------------------------------------------------------------- rate

RateLimiter::RateLimiter(double rate, std::function<int64_t()> clock_ns)
    : rate_(rate),
      step_(static_cast<int64_t>(std::clamp(rate * kStepSeconds, 1.0, static_cast<double>(kMaxStep)))),
      clock_ns_(std::move(clock_ns)) {}

RateLimiter::RateLimiter(double rate, const StateClock* clock)
    : RateLimiter(rate, clock == nullptr ? std::function<int64_t()>()
                                         : [clock] { return clock->NowMillis() * 1'000'000; }) {}

int64_t RateLimiter::Now() const { return clock_ns_ ? clock_ns_() : MonotonicNanos(); }

int64_t RateLimiter::Due(int64_t now_ns) const {
  // Record i (from 0) is due at i / rate seconds (the 1e-6: record i is due
  // at DueAt(i), whatever the rounding of i / rate).
  return static_cast<int64_t>(static_cast<double>(now_ns - start_ns_) / 1e9 * rate_ + 1e-6) + 1 - granted_;
}

int64_t RateLimiter::DueAt(int64_t index) const {
  return start_ns_ + static_cast<int64_t>(static_cast<double>(index) / rate_ * 1e9);
}

size_t RateLimiter::Acquire(size_t max, int64_t deadline_ns) {
  if (rate_ <= 0 || max == 0) return max;
  const int64_t called = Now();
  int64_t now = called;
  if (!started_) {
    started_ = true;
    start_ns_ = now;
  }
  const int64_t step = std::min<int64_t>(step_, static_cast<int64_t>(max));
  const auto past_deadline = [deadline_ns](int64_t t) { return deadline_ns != 0 && t >= deadline_ns; };
  int64_t due = Due(now);
  if (due < step && !(due > 0 && past_deadline(now))) {
    if (past_deadline(now)) return 0;
    int64_t wake = DueAt(granted_ + step - 1);
    if (deadline_ns != 0) wake = std::min(wake, deadline_ns);
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::clamp<int64_t>(wake - now, 50'000, 5'000'000)));
    now = Now();
    due = Due(now);
    if (due < step && !(due > 0 && past_deadline(now))) return 0;
  }
  const int64_t n = std::min<int64_t>(due, static_cast<int64_t>(max));
  lag_ns_ = called - DueAt(granted_);
  last_lag_ns_ = called - DueAt(granted_ + n - 1);
  granted_ += n;
  return static_cast<size_t>(n);
}

// ---------------------------------------------------------------- base

void SourceOperator::PushWatermark(int64_t watermark) {
  if (watermark <= emitted_watermark_) return;
  emitted_watermark_ = watermark;
  output_->PushWatermark(watermark);
  if (dead_letter_output_) dead_letter_output_->PushWatermark(watermark);
}

void SourceOperator::EmitBatch(RowBatch& batch, bool more) {
  if (!has_event_time_) {
    Emit(batch);
    if (!batch.empty() && !more) SendLatencyMarker();
    return;
  }
  const int64_t now = NowMillis();
  if (batch.empty()) {
    if (event_time_.idle_timeout_ms() > 0 && !idle_ && last_record_ms_ > 0 &&
        now - last_record_ms_ >= event_time_.idle_timeout_ms()) {
      idle_ = true;
      // What it promised so far goes out before it is left out.
      EmitPendingWatermark();
      output_->PushIdle();
    }
    return;
  }
  last_record_ms_ = now;
  idle_ = false;
  const int f = event_time_.field_index();
  for (size_t i = 0; i < batch.size(); ++i) {
    const Datum& d = batch[i][f];
    if (!d.is_null && d.i > max_timestamp_) max_timestamp_ = d.i;
  }
  Emit(batch);
  if (more) return;
  // Before the watermark, which sends the records' buffers on.
  SendLatencyMarker();
  if (max_timestamp_ == kMinWatermark) return;
  const int64_t bound = event_time_.max_out_of_orderness_ms();
  // Saturating: max - bound - 1 without overflow.
  pending_watermark_ = max_timestamp_ < kMinWatermark + bound + 1 ? kMinWatermark : max_timestamp_ - bound - 1;
  // Each watermark sends every output buffer on, partly filled or not: at
  // most one per watermark_interval, not one per batch (a paced source's
  // batches are a few records).
  EmitDueWatermark(MonotonicMillis());
}

// ---------------------------------------------------------------- generator

namespace {

inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

GeneratorSource::GeneratorSource(OperatorCounters& counters, Schema schema,
                                 const proto::SourceSpec& spec)
    : SourceOperator(counters), schema_(std::move(schema)), spec_(spec), batch_(schema_.size()) {
  for (const Field& f : schema_.fields()) {
    proto::GeneratorField g;
    g.set_name(f.name);
    bool found = false;
    for (const auto& given : spec_.generator_fields()) {
      if (given.name() == f.name) {
        g = given;
        found = true;
      }
    }
    if (!found) {
      switch (f.type) {
        case FieldType::kString: g.set_kind("key"); g.set_cardinality(1000); g.set_prefix("k"); break;
        case FieldType::kTimestamp: g.set_kind("sequence"); break;
        case FieldType::kBool: g.set_kind("uniform"); g.set_min(0); g.set_max(1); break;
        default: g.set_kind("uniform"); g.set_min(0); g.set_max(f.type == FieldType::kDouble ? 1000 : 999);
      }
    }
    kinds_.push_back(g.kind() == "sequence" ? Kind::kSequence
                     : g.kind() == "key"    ? Kind::kKey
                     : g.kind() == "constant" ? Kind::kConstant
                                              : Kind::kUniform);
    fields_.push_back(g);
  }
}

absl::Status GeneratorSource::Open(const OperatorContext& ctx) {
  reads_.assign(fields_.size(), spec_.reads().empty());
  for (int f : spec_.reads()) {
    if (f < 0 || static_cast<size_t>(f) >= fields_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "': reads field ", f,
                                                     ", but its records have fields 0..", fields_.size() - 1));
    }
    reads_[static_cast<size_t>(f)] = true;
  }
  next_ = ctx.subtask_index;
  step_ = ctx.parallelism;
  limiter_ = std::make_unique<RateLimiter>(spec_.rate() / ctx.parallelism);
  return absl::OkStatus();
}

void GeneratorSource::Fill(int64_t n, Row* row) {
  for (size_t f = 0; f < fields_.size(); ++f) {
    Datum& d = (*row)[f];
    if (!reads_[f]) {  // projection pushdown: no vertex reads it
      d.is_null = true;
      continue;
    }
    const proto::GeneratorField& g = fields_[f];
    const FieldType type = schema_.field(f).type;
    const uint64_t h = Mix(spec_.seed() * 0x100000001b3ull ^ Mix(static_cast<uint64_t>(n) * 131 + f));
    const Kind kind = kinds_[f];
    if (kind == Kind::kSequence) {
      const int64_t v = g.min() + n;
      if (type == FieldType::kDouble) {
        d.SetDouble(static_cast<double>(v));
      } else if (type == FieldType::kString) {
        d.is_null = false;
        d.s.assign(g.prefix());
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof(buf), v);
        d.s.append(buf, r.ptr);
      } else {
        d.SetInt(v);  // int, timestamp
      }
    } else if (kind == Kind::kKey) {
      const int64_t card = std::max<int64_t>(1, g.cardinality());
      const int64_t k = static_cast<int64_t>(h % static_cast<uint64_t>(card));
      if (type == FieldType::kString) {
        d.is_null = false;
        d.s.assign(g.prefix());
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof(buf), k);
        d.s.append(buf, r.ptr);
      } else {
        d.SetInt(k);
      }
    } else if (kind == Kind::kConstant) {
      switch (type) {
        case FieldType::kString: d.SetString(g.value()); break;
        case FieldType::kDouble: d.SetDouble(std::strtod(g.value().c_str(), nullptr)); break;
        case FieldType::kBool: d.SetBool(g.value() == "true" || g.value() == "1"); break;
        default: d.SetInt(std::strtoll(g.value().c_str(), nullptr, 10));
      }
    } else {  // uniform
      const int64_t lo = g.min(), hi = std::max(g.min(), g.max());
      if (type == FieldType::kDouble) {
        d.SetDouble(lo + (h >> 11) * (1.0 / 9007199254740992.0) * static_cast<double>(hi - lo));
      } else if (type == FieldType::kString) {
        d.is_null = false;
        d.s.assign(g.prefix());
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof(buf),
                               lo + static_cast<int64_t>(h % static_cast<uint64_t>(hi - lo + 1)));
        d.s.append(buf, r.ptr);
      } else {
        d.SetInt(lo + static_cast<int64_t>(h % static_cast<uint64_t>(hi - lo + 1)));
      }
    }
  }
}

SourceStatus GeneratorSource::Produce() {
  const int64_t count = spec_.count();
  if (count >= 0 && next_ >= count) return SourceStatus::kEnd;
  size_t want = RowBatch::kDefaultCapacity;
  if (count >= 0) want = std::min<int64_t>(want, (count - next_ + step_ - 1) / step_);
  want = AcquirePaced(*limiter_, want);
  EmitRows(batch_, want, [this](Row& row) {
    Fill(next_, &row);
    next_ += step_;
  });
  return (count >= 0 && next_ >= count) ? SourceStatus::kEnd : SourceStatus::kMoreAvailable;
}

// ---------------------------------------------------------------- file

namespace {
constexpr size_t kReadChunk = 1 << 20;
}

FileSource::FileSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec)
    : SourceOperator(counters),
      schema_(std::move(schema)),
      spec_(spec),
      batch_(schema_.size()),
      dead_letters_(counters, "source") {}

FileSource::~FileSource() {
  if (file_) std::fclose(file_);
}

absl::Status FileSource::Open(const OperatorContext& ctx) {
  ctx_ = ctx;
  dead_letters_.Open(ctx);
  dead_letters_.set_output(dead_letter_output_);
  limiter_ = std::make_unique<RateLimiter>(spec_.max_rate());
  file_ = std::fopen(spec_.path().c_str(), "rb");
  if (!file_) return absl::NotFoundError(absl::StrCat("cannot open input file ", spec_.path()));
  std::error_code ec;
  const int64_t size = static_cast<int64_t>(std::filesystem::file_size(spec_.path(), ec));
  if (ec) return absl::InternalError(absl::StrCat("cannot stat ", spec_.path()));

  int64_t data_start = 0;
  std::string header;
  if (spec_.format() == "csv") {
    // The header is the first line; data starts after it.
    std::string_view line;
    if (NextLine(&line)) header.assign(line.data(), line.size());
    data_start = offset_;
  }
  auto parser = CreateRecordParser(spec_.format(), schema_, header);
  if (!parser.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(spec_.path(), ": ", parser.status().message()));
  }
  parser_ = std::move(*parser);

  const int64_t span = std::max<int64_t>(0, size - data_start);
  int64_t start = data_start + span * ctx.subtask_index / ctx.parallelism;
  end_ = data_start + span * (ctx.subtask_index + 1) / ctx.parallelism;
  // A line belongs to the subtask whose range holds its first byte: unless
  // we start exactly at a line start, skip the partial line.
  int64_t seek = start;
  if (start > data_start) seek = start - 1;
  std::fseek(file_, seek, SEEK_SET);
  offset_ = seek;
  buf_.clear();
  pos_ = 0;
  eof_ = false;
  if (start > data_start) {
    std::string_view skipped;
    NextLine(&skipped);  // ends at or after start-1's newline
  }
  return absl::OkStatus();
}

namespace {

// Parses "<prefix><non-negative integer>", the form of source positions.
absl::StatusOr<int64_t> ParsePosition(std::string_view state, std::string_view prefix) {
  int64_t v = -1;
  if (state.substr(0, prefix.size()) == prefix) {
    const char* begin = state.data() + prefix.size();
    const char* end = state.data() + state.size();
    auto r = std::from_chars(begin, end, v);
    if (r.ec != std::errc() || r.ptr != end) v = -1;
  }
  if (v < 0) {
    return absl::DataLossError(absl::StrCat("source position '", AV(state), "' is not '", AV(prefix), "N'"));
  }
  return v;
}

}  // namespace

absl::Status GeneratorSource::RestoreOperatorState(std::string_view state) {
  absl::StatusOr<int64_t> next = ParsePosition(state, "generator next=");
  if (!next.ok()) return next.status();
  // Each subtask emits the indexes subtask, subtask + parallelism, ...
  if (*next % step_ != next_ % step_) {
    return absl::DataLossError(absl::StrCat("generator position ", *next, " is not one of subtask ", next_ % step_,
                                            " of ", step_, " (restoring at another parallelism?)"));
  }
  next_ = *next;
  return absl::OkStatus();
}

absl::Status FileSource::RestoreOperatorState(std::string_view state) {
  absl::StatusOr<int64_t> offset = ParsePosition(state, "file offset=");
  if (!offset.ok()) return offset.status();
  // The split's first line starts at offset_ now; the last one starts before
  // end_ and may end past it.
  std::error_code ec;
  const auto size = static_cast<int64_t>(std::filesystem::file_size(spec_.path(), ec));
  if (*offset < offset_ || ec || *offset > size) {
    return absl::DataLossError(absl::StrCat("file position ", *offset, " lies outside this subtask's split of ",
                                            spec_.path(), " (restoring at another parallelism?)"));
  }
  std::fseek(file_, *offset, SEEK_SET);
  offset_ = *offset;
  buf_.clear();
  pos_ = 0;
  eof_ = false;
  return absl::OkStatus();
}

bool FileSource::NextLine(std::string_view* line) {
  while (true) {
    const char* base = buf_.data() + pos_;
    const size_t avail = buf_.size() - pos_;
    const void* nl = std::memchr(base, '\n', avail);
    if (nl || (eof_ && avail > 0)) {
      const size_t len = nl ? static_cast<const char*>(nl) - base : avail;
      line_start_ = offset_;
      *line = std::string_view(base, len);
      if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
      const size_t consumed = nl ? len + 1 : len;
      pos_ += consumed;
      offset_ += static_cast<int64_t>(consumed);
      return true;
    }
    if (eof_) return false;
    // Compact and read more.
    buf_.erase(0, pos_);
    pos_ = 0;
    const size_t old = buf_.size();
    buf_.resize(old + kReadChunk);
    const size_t got = std::fread(buf_.data() + old, 1, kReadChunk, file_);
    buf_.resize(old + got);
    if (got == 0) eof_ = true;
  }
}

int64_t FileSource::LineNumberAt(int64_t offset) {
  // Counted only when a dead letter needs it, onward from the last count.
  if (offset < counted_offset_) {
    counted_offset_ = 0;
    counted_lines_ = 1;
  }
  std::FILE* f = std::fopen(spec_.path().c_str(), "rb");
  if (!f) return 0;
  std::fseek(f, counted_offset_, SEEK_SET);
  std::string chunk(kReadChunk, '\0');
  while (counted_offset_ < offset) {
    size_t want = static_cast<size_t>(std::min<int64_t>(kReadChunk, offset - counted_offset_));
    size_t got = std::fread(chunk.data(), 1, want, f);
    if (got == 0) break;
    for (size_t i = 0; i < got; ++i) counted_lines_ += chunk[i] == '\n';
    counted_offset_ += static_cast<int64_t>(got);
  }
  std::fclose(f);
  return counted_lines_;
}

void FileSource::DeadLetter(std::string_view line, const absl::Status& reason) {
  dead_letters_.Add(absl::StrCat(spec_.path(), ":", LineNumberAt(line_start_)),
                    std::string_view(reason.message().data(), reason.message().size()), line);
}

SourceStatus FileSource::Produce() {
  size_t want = AcquirePaced(*limiter_, RowBatch::kDefaultCapacity);
  batch_.Clear();
  bool end = false;
  for (size_t i = 0; i < want; ++i) {
    std::string_view line;
    if (offset_ >= end_ || !NextLine(&line)) {
      end = true;
      break;
    }
    if (line.empty()) continue;
    Row& row = batch_.Append();
    absl::Status s = parser_->ParseLine(line, &row);
    if (!s.ok()) {
      batch_.Truncate(batch_.size() - 1);
      DeadLetter(line, s);
    }
  }
  EmitBatch(batch_);
  dead_letters_.Flush();
  return end ? SourceStatus::kEnd : SourceStatus::kMoreAvailable;
}

}  // namespace vstream
