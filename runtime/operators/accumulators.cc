#include "runtime/operators/accumulators.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <cassert>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "runtime/operators/accumulators_codec.h"
#include "runtime/operators/accumulators_sketch.h"
#include "runtime/row_codec.h"

// State format (all calls of the set, in call order, in one string):
//
//   state   := "" (fresh: no record yet)
//            | version (1 byte, kFormatVersion) section*
//   section, by function (T = argument type; u64 = 8 bytes little-endian):
//     count, count(*)   n (u64)
//     sum, avg          n (u64: non-null values), sum (int: int64, wraps;
//                         double: 8-byte double)
//     min, max          present (u64 0|1), value(T)
//     first, last       present (u64 0|1), event time (int64), value(T)
//     stddev            n (u64), 8-byte mean, 8-byte M2
//     percentile        a QuantileSketch (accumulators_sketch.h)
//   value(T) := int, timestamp, bool: int64 | double: 8 bytes |
//               string: varint length, bytes, and nothing while absent
//
// Every part but string values and sketches has a fixed width, written even
// while empty (zeros), so a set without strings and percentiles has one
// layout whatever it holds: Add then updates each section in place at an
// offset known up front, with no parsing. Other sets parse section by
// section and patch. Merge writes the merged state to a scratch string and
// copies it back.

namespace vstream {

using accumulators_internal::BufferSink;
using accumulators_internal::GetDouble;
using accumulators_internal::GetVarint;
using accumulators_internal::Patch;
using accumulators_internal::StringSink;
using accumulators_internal::UnZigZag;
using accumulators_internal::ZigZag;

namespace {

constexpr char kFormatVersion = 2;

inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void Store64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline double LoadDouble(const char* p) {
  double v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void StoreDouble(char* p, double v) { std::memcpy(p, &v, 8); }

bool GetFixed64(std::string_view data, size_t* pos, uint64_t* v) {
  if (data.size() - *pos < 8) return false;  // *pos <= size() always
  *v = Load64(data.data() + *pos);
  *pos += 8;
  return true;
}

bool GetInt64(std::string_view data, size_t* pos, int64_t* v) {
  uint64_t u;
  if (!GetFixed64(data, pos, &u)) return false;
  *v = static_cast<int64_t>(u);
  return true;
}

enum class Func : uint8_t {
  kCount,  // also count(*)
  kSum,
  kMin,
  kMax,
  kAvg,
  kFirst,
  kLast,
  kStddev,
  kPercentile,
};

struct Call {
  Func func;
  std::optional<Expression> arg;  // none for count(*)
  FieldType arg_type = FieldType::kInt;
  double quantile = 0;  // percentile
};

// One decoded section. Which fields are meaningful depends on the function;
// `s` and `sketch` point into the state it was parsed from.
struct Section {
  size_t begin = 0;
  size_t end = 0;
  uint64_t n = 0;  // count, values, or presence (0|1)
  int64_t i = 0;   // int sum; int, bool or timestamp value
  double d = 0;    // double sum or value; stddev mean
  double m2 = 0;   // stddev
  int64_t time = 0;
  std::string_view s;
  QuantileSketch::View sketch;
};

bool IsNumericType(FieldType t) { return t == FieldType::kInt || t == FieldType::kDouble; }

double AsDouble(const Datum& v, FieldType t) {
  return t == FieldType::kDouble ? v.d : static_cast<double>(v.i);
}

bool GetValue(FieldType type, std::string_view data, size_t* pos, Section* sec) {
  switch (type) {
    case FieldType::kInt:
    case FieldType::kTimestamp:
    case FieldType::kBool:
      return GetInt64(data, pos, &sec->i);
    case FieldType::kDouble:
      return GetDouble(data, pos, &sec->d);
    case FieldType::kString: {
      uint64_t len;
      if (!GetVarint(data, pos, &len) || len > data.size() - *pos) return false;
      sec->s = data.substr(*pos, len);
      *pos += len;
      return true;
    }
  }
  return false;
}

template <typename Sink>
void PutValue(FieldType type, const Section& sec, Sink& out) {
  switch (type) {
    case FieldType::kInt:
    case FieldType::kTimestamp:
      out.Fixed64(static_cast<uint64_t>(sec.i));
      break;
    case FieldType::kDouble:
      out.Double(sec.d);
      break;
    case FieldType::kBool:
      out.Fixed64(sec.i != 0 ? 1 : 0);
      break;
    case FieldType::kString:
      out.Varint(sec.s.size());
      out.Bytes(sec.s);
      break;
  }
}

// Copies a (non-null) argument value into a section.
void SetValue(FieldType type, const Datum& v, Section* sec) {
  switch (type) {
    case FieldType::kDouble:
      sec->d = v.d;
      break;
    case FieldType::kString:
      sec->s = v.s;
      break;
    default:
      sec->i = v.i;
      break;
  }
}

// True if value `a` sorts before `b` (min/max arguments: not bool).
bool Less(FieldType type, const Section& a, const Section& b) {
  switch (type) {
    case FieldType::kDouble:
      return a.d < b.d;
    case FieldType::kString:
      return a.s < b.s;
    default:
      return a.i < b.i;
  }
}

// Parses the section of `call` at data[*pos] and advances *pos past it.
// `check` applies to percentile sketches (see accumulators_sketch.h).
bool ParseSection(const Call& call, std::string_view data, size_t* pos, Section* sec,
                  QuantileSketch::Check check = QuantileSketch::Check::kFull) {
  // Reset what an empty section leaves unset (a stale `s` would dangle).
  sec->n = 0;
  sec->i = 0;
  sec->d = sec->m2 = 0;
  sec->time = 0;
  sec->s = std::string_view();
  sec->begin = *pos;
  bool ok = true;
  if (call.func == Func::kPercentile) {
    ok = QuantileSketch::Parse(data, pos, &sec->sketch, check);
    sec->n = sec->sketch.count;
  } else if (!GetFixed64(data, pos, &sec->n)) {
    ok = false;
  } else {
    // A string value is there only while present; everything else always.
    const bool has_value = call.arg_type != FieldType::kString || sec->n != 0;
    switch (call.func) {
      case Func::kCount:
        break;
      case Func::kSum:
      case Func::kAvg:
        ok = call.arg_type == FieldType::kDouble ? GetDouble(data, pos, &sec->d) : GetInt64(data, pos, &sec->i);
        break;
      case Func::kMin:
      case Func::kMax:
        ok = sec->n <= 1 && (!has_value || GetValue(call.arg_type, data, pos, sec));
        break;
      case Func::kFirst:
      case Func::kLast:
        ok = sec->n <= 1 && GetInt64(data, pos, &sec->time) &&
             (!has_value || GetValue(call.arg_type, data, pos, sec));
        break;
      case Func::kStddev:
        ok = GetDouble(data, pos, &sec->d) && GetDouble(data, pos, &sec->m2);
        break;
      case Func::kPercentile:
        break;
    }
  }
  sec->end = *pos;
  return ok;
}

// Writes the encoding of a (non-percentile) section. Only min, max, first
// and last of strings need a StringSink.
template <typename Sink>
void WriteSection(const Call& call, const Section& sec, Sink& out) {
  out.Fixed64(sec.n);
  const bool has_value = call.arg_type != FieldType::kString || sec.n != 0;
  switch (call.func) {
    case Func::kCount:
    case Func::kPercentile:
      break;
    case Func::kSum:
    case Func::kAvg:
      if (call.arg_type == FieldType::kDouble) {
        out.Double(sec.d);
      } else {
        out.Fixed64(static_cast<uint64_t>(sec.i));
      }
      break;
    case Func::kMin:
    case Func::kMax:
      if (has_value) PutValue(call.arg_type, sec, out);
      break;
    case Func::kFirst:
    case Func::kLast:
      out.Fixed64(static_cast<uint64_t>(sec.time));
      if (has_value) PutValue(call.arg_type, sec, out);
      break;
    case Func::kStddev:
      out.Double(sec.d);
      out.Double(sec.m2);
      break;
  }
}

// Folds section b (later records) into a. Not for percentile.
void MergeSection(const Call& call, const Section& b, Section* a) {
  if (b.n == 0) return;
  if (a->n == 0) {
    *a = b;
    return;
  }
  switch (call.func) {
    case Func::kCount:
      a->n += b.n;
      break;
    case Func::kSum:
    case Func::kAvg:
      a->n += b.n;
      // Unsigned: int64 overflow wraps instead of being undefined.
      a->i = static_cast<int64_t>(static_cast<uint64_t>(a->i) + static_cast<uint64_t>(b.i));
      a->d += b.d;
      break;
    case Func::kMin:
      if (Less(call.arg_type, b, *a)) *a = b;
      break;
    case Func::kMax:
      if (Less(call.arg_type, *a, b)) *a = b;
      break;
    case Func::kFirst:
      if (b.time < a->time) *a = b;
      break;
    case Func::kLast:
      if (b.time >= a->time) *a = b;
      break;
    case Func::kStddev: {
      // Chan et al.'s parallel combination of (n, mean, M2).
      const double na = static_cast<double>(a->n);
      const double nb = static_cast<double>(b.n);
      const double n = na + nb;
      const double delta = b.d - a->d;
      a->d += delta * (nb / n);
      a->m2 += b.m2 + delta * delta * (na * nb / n);
      a->n += b.n;
      break;
    }
    case Func::kPercentile:
      break;
  }
}

}  // namespace

// The compiled calls plus per-record scratch; one per operator subtask,
// called from its task thread only.
class AccumulatorSet::Impl {
 public:
  Impl(std::vector<Call> calls, std::vector<FieldType> types)
      : calls_(std::move(calls)), types_(std::move(types)), args_(calls_.size()) {
    // The fresh state: every section empty. Without strings and sketches its
    // layout never changes, so the offsets are known now.
    fresh_.push_back(kFormatVersion);
    bool fixed = true;
    for (const Call& call : calls_) {
      offsets_.push_back(fresh_.size());
      if (call.func == Func::kPercentile) {
        fresh_.push_back('\0');  // an empty sketch
        fixed = false;
        continue;
      }
      if (call.arg_type == FieldType::kString && call.func != Func::kCount) fixed = false;
      StringSink out(&fresh_);
      WriteSection(call, Section(), out);
    }
    fixed_size_ = fixed ? fresh_.size() : 0;
  }

  const std::vector<FieldType>& result_types() const { return types_; }

  bool ExactUnderRegrouping() const {
    for (const Call& call : calls_) {
      switch (call.func) {
        case Func::kCount:
        case Func::kFirst:
        case Func::kLast:
          break;
        case Func::kSum:
        case Func::kAvg:
        case Func::kMin:
        case Func::kMax:
          if (call.arg_type == FieldType::kDouble) return false;
          break;
        case Func::kStddev:
        case Func::kPercentile:
          return false;
      }
    }
    return true;
  }

  void Add(const Row& row, int64_t event_time_ms, std::string* state) {
    EvalArgs(row);
    if (!AddTo(event_time_ms, state)) {
      // Corrupt state: start afresh, which cannot fail.
      state->clear();
      [[maybe_unused]] const bool ok = AddTo(event_time_ms, state);
      assert(ok && "adding to a fresh accumulator state failed");
    }
  }

  bool Retract(const Row& row, std::string* state) {
    if (state->empty() || (*state)[0] != kFormatVersion || state->size() != fixed_size_) return false;
    EvalArgs(row);
    char* base = state->data();
    for (size_t c = 0; c < calls_.size(); ++c) {
      const Call& call = calls_[c];
      const Datum& v = args_[c];
      if (call.arg && v.is_null) continue;
      char* p = base + offsets_[c];
      const uint64_t n = Load64(p);
      if (n == 0) continue;  // nothing of it was added: nothing to take back
      Store64(p, n - 1);
      if (call.func != Func::kSum && call.func != Func::kAvg) continue;  // count
      if (call.arg_type == FieldType::kDouble) {
        StoreDouble(p + 8, n == 1 ? 0.0 : LoadDouble(p + 8) - v.d);
      } else {
        // Unsigned: wraps as Add does.
        Store64(p + 8, n == 1 ? 0 : Load64(p + 8) - static_cast<uint64_t>(v.i));
      }
    }
    return true;
  }

  bool retractable() const {
    for (const Call& call : calls_) {
      if (call.func != Func::kCount && call.func != Func::kSum && call.func != Func::kAvg) return false;
    }
    return fixed_size_ != 0;
  }

  void Merge(std::string_view other, std::string* state) {
    const bool other_valid = ParseState(other, &other_sections_) && !other.empty();
    const bool state_valid = ParseState(*state, &state_sections_) && !state->empty();
    if (!other_valid) {
      if (!state_valid) state->clear();
      return;
    }
    if (!state_valid) {
      state->assign(other.data(), other.size());
      return;
    }
    merged_.clear();
    merged_.push_back(kFormatVersion);
    for (size_t c = 0; c < calls_.size(); ++c) {
      const Call& call = calls_[c];
      if (call.func == Func::kPercentile) {
        sketch_.Merge(*state, state_sections_[c].sketch, other, other_sections_[c].sketch,
                      &merged_);
      } else {
        MergeSection(call, other_sections_[c], &state_sections_[c]);
        StringSink out(&merged_);
        WriteSection(call, state_sections_[c], out);
      }
    }
    state->assign(merged_);
  }

  void Result(std::string_view state, Row* row, size_t first_field) const {
    // A caller bug; widening beats writing out of bounds.
    assert(first_field + calls_.size() <= row->size());
    if (row->size() < first_field + calls_.size()) row->resize(first_field + calls_.size());
    bool ok = state.empty() || state[0] == kFormatVersion;
    size_t pos = 1;
    Section sec;
    for (size_t c = 0; ok && c < calls_.size(); ++c) {
      sec = Section();
      if (!state.empty() && !ParseSection(calls_[c], state, &pos, &sec)) {
        ok = false;
        break;
      }
      WriteResult(c, state, sec, &(*row)[first_field + c]);
    }
    if (ok && !state.empty() && pos != state.size()) ok = false;
    if (!ok) {
      // Corrupt state: every call as if no record had been added.
      for (size_t c = 0; c < calls_.size(); ++c) {
        WriteResult(c, std::string_view(), Section(), &(*row)[first_field + c]);
      }
    }
  }

 private:
  // Evaluates each call's argument on `row` into args_.
  void EvalArgs(const Row& row) {
    for (size_t c = 0; c < calls_.size(); ++c) {
      if (calls_[c].arg) calls_[c].arg->Eval(row, &args_[c]);
    }
  }

  // Splits a state into its sections. False if corrupt; "" parses as fresh
  // sections (all n = 0).
  bool ParseState(std::string_view state, std::vector<Section>* sections) const {
    sections->resize(calls_.size());
    if (state.empty()) {
      for (Section& sec : *sections) sec = Section();
      return true;
    }
    if (state[0] != kFormatVersion) return false;
    size_t pos = 1;
    for (size_t c = 0; c < calls_.size(); ++c) {
      if (!ParseSection(calls_[c], state, &pos, &(*sections)[c])) return false;
    }
    return pos == state.size();
  }

  // Folds the evaluated args_ into *state in place. Returns false (with
  // *state partly updated) if the state is corrupt.
  bool AddTo(int64_t time, std::string* state) {
    if (state->empty()) {
      state->assign(fresh_);
    } else if ((*state)[0] != kFormatVersion) {
      return false;
    }
    if (state->size() == fixed_size_) {
      AddFixed(time, state->data());
      return true;
    }
    size_t pos = 1;
    for (size_t c = 0; c < calls_.size(); ++c) {
      const Call& call = calls_[c];
      // Only the layout of sketches: validating every bucket per record
      // would cost O(buckets); Merge and Result validate them fully.
      if (!ParseSection(call, *state, &pos, &section_, QuantileSketch::Check::kLayout)) {
        return false;
      }
      const size_t size_before = state->size();
      const Datum& v = args_[c];
      if (!call.arg || !v.is_null) Update(call, v, time, state);
      // Sections after this one moved by the change in length.
      pos = section_.end + state->size() - size_before;
    }
    return pos == state->size();
  }

  // AddTo of a set with a fixed layout: each section updated in place.
  void AddFixed(int64_t time, char* base) {
    for (size_t c = 0; c < calls_.size(); ++c) {
      const Call& call = calls_[c];
      const Datum& v = args_[c];
      if (call.arg && v.is_null) continue;
      char* p = base + offsets_[c];
      const uint64_t n = Load64(p);
      const bool is_double = call.arg_type == FieldType::kDouble;
      switch (call.func) {
        case Func::kCount:
          Store64(p, n + 1);
          break;
        case Func::kSum:
        case Func::kAvg:
          Store64(p, n + 1);
          if (is_double) {
            StoreDouble(p + 8, n == 0 ? v.d : LoadDouble(p + 8) + v.d);
          } else {
            // Unsigned: int64 overflow wraps instead of being undefined.
            Store64(p + 8, (n == 0 ? 0 : Load64(p + 8)) + static_cast<uint64_t>(v.i));
          }
          break;
        case Func::kMin:
        case Func::kMax: {
          bool better = n == 0;
          if (!better) {
            const bool min = call.func == Func::kMin;
            if (is_double) {
              const double cur = LoadDouble(p + 8);
              better = min ? v.d < cur : cur < v.d;
            } else {
              const auto cur = static_cast<int64_t>(Load64(p + 8));
              better = min ? v.i < cur : cur < v.i;
            }
          }
          if (better) {
            Store64(p, 1);
            Store64(p + 8, is_double ? std::bit_cast<uint64_t>(v.d) : static_cast<uint64_t>(v.i));
          }
          break;
        }
        case Func::kFirst:
        case Func::kLast: {
          const auto cur = static_cast<int64_t>(Load64(p + 8));
          const bool later = call.func == Func::kFirst ? time < cur : time >= cur;
          if (n == 0 || later) {
            Store64(p, 1);
            Store64(p + 8, static_cast<uint64_t>(time));
            Store64(p + 16, is_double ? std::bit_cast<uint64_t>(v.d) : static_cast<uint64_t>(v.i));
          }
          break;
        }
        case Func::kStddev: {
          // Welford's update of (n, mean, M2).
          const double x = AsDouble(v, call.arg_type);
          double mean = n == 0 ? 0 : LoadDouble(p + 8);
          double m2 = n == 0 ? 0 : LoadDouble(p + 16);
          Store64(p, n + 1);
          const double delta = x - mean;
          mean += delta / static_cast<double>(n + 1);
          m2 += delta * (x - mean);
          StoreDouble(p + 8, mean);
          StoreDouble(p + 16, m2);
          break;
        }
        case Func::kPercentile:
          break;  // never in a fixed layout
      }
    }
  }

  // Folds one non-null value (any value for count(*)) into section_, which
  // was parsed from *state, and writes the section back.
  void Update(const Call& call, const Datum& v, int64_t time, std::string* state) {
    Section& sec = section_;
    const bool fresh = sec.n == 0;
    switch (call.func) {
      case Func::kCount:
        ++sec.n;
        break;
      case Func::kSum:
      case Func::kAvg:
        ++sec.n;
        if (call.arg_type == FieldType::kDouble) {
          sec.d = fresh ? v.d : sec.d + v.d;
        } else {
          sec.i =
              fresh
                  ? v.i
                  : static_cast<int64_t>(static_cast<uint64_t>(sec.i) + static_cast<uint64_t>(v.i));
        }
        break;
      case Func::kMin:
      case Func::kMax: {
        if (!fresh) {
          Section candidate;
          SetValue(call.arg_type, v, &candidate);
          const bool better = call.func == Func::kMin ? Less(call.arg_type, candidate, sec)
                                                      : Less(call.arg_type, sec, candidate);
          if (!better) return;
        }
        sec.n = 1;
        SetValue(call.arg_type, v, &sec);
        break;
      }
      case Func::kFirst:
      case Func::kLast: {
        const bool later = call.func == Func::kFirst ? time < sec.time : time >= sec.time;
        if (!fresh && !later) return;
        sec.n = 1;
        sec.time = time;
        SetValue(call.arg_type, v, &sec);
        break;
      }
      case Func::kStddev: {
        // Welford's update of (n, mean, M2).
        const double x = AsDouble(v, call.arg_type);
        if (fresh) {
          sec.d = 0;
          sec.m2 = 0;
        }
        ++sec.n;
        const double delta = x - sec.d;
        sec.d += delta / static_cast<double>(sec.n);
        sec.m2 += delta * (x - sec.d);
        break;
      }
      case Func::kPercentile: {
        const double x = AsDouble(v, call.arg_type);
        if (!std::isnan(x)) sketch_.Add(x, sec.sketch, state);
        return;
      }
    }
    if (call.arg_type == FieldType::kString && call.func != Func::kCount) {
      scratch_.clear();
      StringSink out(&scratch_);
      WriteSection(call, sec, out);
      Patch(state, sec.begin, sec.end - sec.begin, scratch_);
    } else {
      BufferSink out;
      WriteSection(call, sec, out);
      Patch(state, sec.begin, sec.end - sec.begin, out.view());
    }
  }

  void WriteResult(size_t c, std::string_view state, const Section& sec, Datum* out) const {
    const Call& call = calls_[c];
    if (call.func == Func::kCount) {
      out->SetInt(static_cast<int64_t>(sec.n));
      return;
    }
    if (sec.n == 0) {
      out->SetNull();
      return;
    }
    switch (call.func) {
      case Func::kCount:
        break;
      case Func::kSum:
      case Func::kMin:
      case Func::kMax:
      case Func::kFirst:
      case Func::kLast:
        switch (call.arg_type) {
          case FieldType::kDouble:
            out->SetDouble(sec.d);
            break;
          case FieldType::kString:
            out->SetString(sec.s);
            break;
          default:
            out->SetInt(sec.i);
            break;
        }
        break;
      case Func::kAvg: {
        const double sum = call.arg_type == FieldType::kDouble ? sec.d : static_cast<double>(sec.i);
        out->SetDouble(sum / static_cast<double>(sec.n));
        break;
      }
      case Func::kStddev:
        out->SetDouble(std::sqrt(std::max(sec.m2, 0.0) / static_cast<double>(sec.n)));
        break;
      case Func::kPercentile:
        out->SetDouble(QuantileSketch::Quantile(state, sec.sketch, call.quantile));
        break;
    }
  }

  const std::vector<Call> calls_;
  const std::vector<FieldType> types_;
  // Scratch, reused from record to record.
  std::vector<Datum> args_;  // the evaluated argument of each call
  std::string fresh_;            // the state of no records
  std::vector<size_t> offsets_;  // of each section in fresh_
  size_t fixed_size_ = 0;        // fresh_.size() if the layout is fixed, else 0
  Section section_;
  std::string scratch_;
  std::string merged_;
  std::vector<Section> state_sections_;
  std::vector<Section> other_sections_;
  QuantileSketch sketch_;
};

absl::StatusOr<std::unique_ptr<AccumulatorSet>> AccumulatorSet::Create(
    const std::vector<proto::AggregateCall>& calls, const Schema& input) {
  std::vector<Call> compiled;
  std::vector<FieldType> types;
  compiled.reserve(calls.size());
  for (size_t k = 0; k < calls.size(); ++k) {
    const proto::AggregateCall& pc = calls[k];
    const std::string where = pc.name().empty() ? absl::StrCat("aggregate ", k + 1, ": ")
                                                : absl::StrCat("aggregate '", pc.name(), "': ");
    const std::string func = absl::AsciiStrToLower(pc.func());
    Call call;
    if (func == "count") {
      call.func = Func::kCount;
    } else if (func == "sum") {
      call.func = Func::kSum;
    } else if (func == "min") {
      call.func = Func::kMin;
    } else if (func == "max") {
      call.func = Func::kMax;
    } else if (func == "avg") {
      call.func = Func::kAvg;
    } else if (func == "first") {
      call.func = Func::kFirst;
    } else if (func == "last") {
      call.func = Func::kLast;
    } else if (func == "stddev") {
      call.func = Func::kStddev;
    } else if (func == "percentile") {
      call.func = Func::kPercentile;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "unknown aggregate function '", pc.func(),
                       "', expected one of count, sum, min, max, avg, first, last, stddev, "
                       "percentile"));
    }
    std::string_view arg = pc.arg();
    while (!arg.empty() && absl::ascii_isspace(static_cast<unsigned char>(arg.front()))) {
      arg.remove_prefix(1);
    }
    while (!arg.empty() && absl::ascii_isspace(static_cast<unsigned char>(arg.back()))) {
      arg.remove_suffix(1);
    }
    if (arg.empty() || arg == "*") {
      if (call.func != Func::kCount) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, func, " needs an argument, only count takes *"));
      }
      types.push_back(FieldType::kInt);
      compiled.push_back(std::move(call));
      continue;
    }
    absl::StatusOr<Expression> expr = Expression::Compile(arg, input);
    if (!expr.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, expr.status().message()));
    }
    const FieldType t = expr->type();
    call.arg_type = t;
    call.arg.emplace(*std::move(expr));
    const char* wrong = nullptr;  // set: the argument type is not allowed
    FieldType result = t;
    switch (call.func) {
      case Func::kCount:
        result = FieldType::kInt;
        break;
      case Func::kSum:
        if (!IsNumericType(t)) wrong = "a numeric";
        break;
      case Func::kAvg:
      case Func::kStddev:
      case Func::kPercentile:
        if (!IsNumericType(t)) wrong = "a numeric";
        result = FieldType::kDouble;
        break;
      case Func::kMin:
      case Func::kMax:
        if (t == FieldType::kBool) wrong = "an int, double, string or timestamp";
        break;
      case Func::kFirst:
      case Func::kLast:
        break;
    }
    if (wrong != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, func, " needs ", wrong, " argument, got ", FieldTypeName(t)));
    }
    if (call.func == Func::kPercentile) {
      const double q = pc.param();
      if (!(q > 0 && q <= 1)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "percentile needs a quantile in (0, 1], got ", q));
      }
      call.quantile = q;
    }
    types.push_back(result);
    compiled.push_back(std::move(call));
  }
  return std::unique_ptr<AccumulatorSet>(
      new AccumulatorSet(std::make_unique<Impl>(std::move(compiled), std::move(types))));
}

AccumulatorSet::AccumulatorSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AccumulatorSet::~AccumulatorSet() = default;

const std::vector<FieldType>& AccumulatorSet::result_types() const { return impl_->result_types(); }

void AccumulatorSet::Add(const Row& row, int64_t event_time_ms, std::string* state) {
  impl_->Add(row, event_time_ms, state);
}

bool AccumulatorSet::Retract(const Row& row, std::string* state) {
  assert(impl_->retractable() && "Retract on a set with a call that cannot retract");
  return impl_->retractable() && impl_->Retract(row, state);
}

bool AccumulatorSet::Retractable(std::string_view func) {
  const std::string f = absl::AsciiStrToLower(std::string(func));
  return f == "count" || f == "sum" || f == "avg";
}

bool AccumulatorSet::ExactUnderRegrouping() const { return impl_->ExactUnderRegrouping(); }

void AccumulatorSet::Merge(std::string_view other, std::string* state) {
  impl_->Merge(other, state);
}

void AccumulatorSet::Result(std::string_view state, Row* row, size_t first_field) const {
  impl_->Result(state, row, first_field);
}

}  // namespace vstream
