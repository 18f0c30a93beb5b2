#include "runtime/operators/patient_source.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"
#include "state/state_clock.h"

namespace vstream {

namespace {

// ---------------------------------------------------------------- random

// SplitMix64's finalizer: a bijection that scatters every input bit.
inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// What a hash is for: keeps the pseudo-random streams apart.
enum Salt : uint64_t {
  kSaltBaseline = 1,
  kSaltDrift,
  kSaltWhite,
  kSaltEpisode,
  kSaltMissing,
  kSaltDuplicate,
  kSaltLate,
  kSaltLatePhase,
  kSaltDelay,
};

inline uint64_t Hash(uint64_t seed, Salt salt, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  uint64_t h = Mix(seed ^ (static_cast<uint64_t>(salt) * 0xd1b54a32d192ed03ull));
  h = Mix(h ^ a);
  h = Mix(h ^ (b * 0x632be59bd9b4e019ull));
  return Mix(h ^ (c * 0x8cb92ba72f3d8dd7ull));
}

// Uniform in [0, 1).
inline double Unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// Standard normal (Box-Muller).
inline double Normal(uint64_t h) {
  const double u1 = static_cast<double>((h >> 11) + 1) * 0x1.0p-53;  // (0, 1]
  const double u2 = Unit(Mix(h));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// ---------------------------------------------------------------- physiology

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kHourMs = 60 * kMinuteMs;
constexpr int64_t kDayMs = 24 * kHourMs;
// One episode may begin per patient per window; episodes last at most
// kMaxEpisodeMs, so a set looks back over that many windows.
constexpr int64_t kEpisodeWindowMs = 2 * kHourMs;
constexpr int64_t kMinEpisodeMs = 3 * kHourMs;
constexpr int64_t kMaxEpisodeMs = 12 * kHourMs;
constexpr int64_t kLookbackWindows = kMaxEpisodeMs / kEpisodeWindowMs;
// 9999-12-31T00:00:00Z: HL7 and FHIR timestamps have four-digit years.
constexpr int64_t kMaxTimeMs = 253402214400000;

// The vital signs of a set, in row order.
enum Vital : int {
  kHeartRate,
  kRespiratoryRate,
  kSpo2,
  kSystolic,
  kDiastolic,
  kTemperature,  // in tenths of a degree Celsius
  kOxygenFlow,   // L/min, 0 on room air
  kConsciousness,  // an index into kConsciousnessCodes
  kVitalCount,
};

// Channels of the drift and white noise.
enum Channel : uint64_t { kChanHr, kChanRr, kChanSpo2, kChanSbp, kChanDbp, kChanTemp, kChanStress };

struct VitalDef {
  std::string_view code;  // LOINC
  std::string_view text;
  std::string_view unit;  // UCUM; empty for a coded value
};

constexpr VitalDef kVitals[kVitalCount] = {
    {"8867-4", "Heart rate", "/min"},
    {"9279-1", "Respiratory rate", "/min"},
    {"59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"},
    {"8480-6", "Systolic blood pressure", "mm[Hg]"},
    {"8462-4", "Diastolic blood pressure", "mm[Hg]"},
    {"8310-5", "Body temperature", "Cel"},
    {"3151-8", "Inhaled oxygen flow rate", "L/min"},
    {"80288-4", "Level of consciousness", ""},
};

struct Coded {
  std::string_view code;  // SNOMED CT
  std::string_view text;
};

// ACVPU levels in order (Acvpu's numbering), as SNOMED CT findings.
constexpr Coded kConsciousnessCodes[] = {
    {"248234008", "Mentally alert"},
    {"130987000", "Acute confusion"},
    {"300202002", "Responds to voice"},
    {"450847001", "Responds to pain"},
    {"422768004", "Unresponsive"},
};

// A patient's resting values, drawn once from (seed, patient).
struct Baseline {
  double hr, rr, spo2, sbp, dbp, temp;
};

Baseline BaselineOf(uint64_t seed, uint64_t patient) {
  auto normal = [&](uint64_t what) { return Normal(Hash(seed, kSaltBaseline, patient, what)); };
  Baseline b;
  b.hr = std::clamp(74 + 7 * normal(0), 58.0, 90.0);
  b.rr = std::clamp(16 + 1.2 * normal(1), 13.0, 18.0);
  b.spo2 = std::clamp(97.4 + 0.9 * normal(2), 95.5, 99.5);
  b.sbp = std::clamp(128 + 10 * normal(3), 114.0, 165.0);
  b.dbp = b.sbp * std::clamp(0.62 + 0.04 * normal(4), 0.55, 0.70);
  b.temp = std::clamp(36.8 + 0.2 * normal(5), 36.4, 37.2);
  return b;
}

// Smooth noise of unit variance in simulated time: normal knots every
// `period_ms`, joined by a smoothstep.
double Drift(uint64_t seed, uint64_t patient, Channel channel, int64_t t_ms, int64_t period_ms) {
  const int64_t k = t_ms / period_ms;
  const double f = static_cast<double>(t_ms - k * period_ms) / static_cast<double>(period_ms);
  const double w = f * f * (3 - 2 * f);
  const double a = Normal(Hash(seed, kSaltDrift, patient, channel, static_cast<uint64_t>(k)));
  const double b = Normal(Hash(seed, kSaltDrift, patient, channel, static_cast<uint64_t>(k + 1)));
  return ((1 - w) * a + w * b) / std::sqrt((1 - w) * (1 - w) + w * w);
}

// The state of a patient's deterioration at one time.
struct Severity {
  double sepsis = 0;       // 0..1
  double respiratory = 0;  // 0..1
  int consciousness = 0;   // ACVPU index
};

// The severity profile of an episode at progress x in [0, 1): a smooth ramp
// over the first 45%, a plateau, and recovery over the last 30%.
double Profile(double x) {
  auto smooth = [](double u) { return u * u * (3 - 2 * u); };
  if (x < 0.45) return smooth(x / 0.45);
  if (x < 0.70) return 1;
  return 1 - smooth((x - 0.70) / 0.30);
}

Severity SeverityAt(const PatientOptions& o, uint64_t patient, int64_t t_ms) {
  Severity s;
  if (o.deterioration_rate <= 0) return s;
  const double p_start = o.deterioration_rate * static_cast<double>(kEpisodeWindowMs) / kDayMs;
  const int64_t window = t_ms / kEpisodeWindowMs;
  for (int64_t w = std::max<int64_t>(0, window - kLookbackWindows); w <= window; ++w) {
    const uint64_t h = Hash(o.seed, kSaltEpisode, patient, static_cast<uint64_t>(w));
    if (Unit(h) >= p_start) continue;
    const int64_t begin = w * kEpisodeWindowMs + static_cast<int64_t>(Unit(Mix(h ^ 1)) * kEpisodeWindowMs);
    const int64_t length =
        kMinEpisodeMs + static_cast<int64_t>(Unit(Mix(h ^ 2)) * static_cast<double>(kMaxEpisodeMs - kMinEpisodeMs));
    if (t_ms < begin || t_ms >= begin + length) continue;
    const bool sepsis = Unit(Mix(h ^ 3)) < o.sepsis_fraction;
    const double peak = 0.45 + 0.55 * std::sqrt(Unit(Mix(h ^ 4)));  // deep episodes are common
    const double severity = peak * Profile(static_cast<double>(t_ms - begin) / static_cast<double>(length));
    // New confusion once the episode is deep enough for this patient;
    // hypoxia confuses later than sepsis.
    const double confused_at = (sepsis ? 0.70 : 0.85) + 0.20 * Unit(Mix(h ^ 5));
    int level = 0;
    if (severity >= confused_at + 0.15) {
      level = 2;  // responds to voice
    } else if (severity >= confused_at) {
      level = 1;  // new confusion
    }
    s.consciousness = std::max(s.consciousness, level);
    if (sepsis) {
      s.sepsis = std::max(s.sepsis, severity);
    } else {
      s.respiratory = std::max(s.respiratory, severity);
    }
  }
  return s;
}

int Round(double v, int lo, int hi) { return static_cast<int>(std::clamp<double>(std::lround(v), lo, hi)); }

// The vital signs of `patient` at tick `tick`, simulated time t_ms (the
// set's exact time, before rounding).
void SimulateVitals(const PatientOptions& o, uint64_t patient, uint64_t tick, int64_t t_ms, int* out) {
  const uint64_t seed = o.seed;
  const Baseline b = BaselineOf(seed, patient);
  auto white = [&](Channel c) { return Normal(Hash(seed, kSaltWhite, patient, tick, c)); };
  auto drift = [&](Channel c, int64_t period) { return Drift(seed, patient, c, t_ms, period); };
  // The day-night rhythm: +1 at 17:00, -1 at 05:00 simulated UTC.
  const double day_hours = static_cast<double>(t_ms % kDayMs) / kHourMs;
  const double circadian = std::cos(6.283185307179586 * (day_hours - 17) / 24);
  // Agitation, pain, movement: heart rate and respiratory rate together.
  const double stress = 0.8 * drift(kChanStress, 20 * kMinuteMs) + 0.6 * white(kChanStress);

  double hr = b.hr + 4 * circadian + 4 * drift(kChanHr, 45 * kMinuteMs) + 2.5 * white(kChanHr) + 5 * stress;
  double rr = b.rr + 0.8 * drift(kChanRr, 45 * kMinuteMs) + 0.6 * white(kChanRr) + 1.2 * stress;
  double spo2 = b.spo2 + 0.5 * drift(kChanSpo2, 30 * kMinuteMs) + 0.6 * white(kChanSpo2);
  double sbp = b.sbp + 4 * circadian + 6 * drift(kChanSbp, 60 * kMinuteMs) + 4 * white(kChanSbp) + 2 * stress;
  double dbp = b.dbp + 0.5 * (sbp - b.sbp) + 3 * white(kChanDbp);
  double temp = b.temp + 0.25 * circadian + 0.15 * drift(kChanTemp, 60 * kMinuteMs) + 0.05 * white(kChanTemp);
  int oxygen = 0;

  const Severity s = SeverityAt(o, patient, t_ms);
  if (s.sepsis > 0) {  // tachycardia, tachypnoea, fever, hypotension
    hr += 48 * s.sepsis;
    rr += 11 * s.sepsis;
    temp += 2.4 * s.sepsis;
    sbp -= 42 * s.sepsis;
    dbp -= 22 * s.sepsis;
    spo2 -= 3 * s.sepsis;
  }
  if (s.respiratory > 0) {  // hypoxaemia, tachypnoea; oxygen from 0.3 on
    double drop = 15 * s.respiratory;
    if (s.respiratory >= 0.3) {
      oxygen = Round(2 + 13 * (s.respiratory - 0.3) / 0.7, 2, 15);
      drop *= 0.55;
    }
    spo2 -= drop;
    rr += 14 * s.respiratory;
    hr += 26 * s.respiratory;
    sbp += 6 * s.respiratory;
    temp += 0.4 * s.respiratory;
  }
  out[kHeartRate] = Round(hr, 30, 220);
  out[kRespiratoryRate] = Round(rr, 4, 60);
  out[kSpo2] = Round(spo2, 60, 100);
  out[kSystolic] = Round(sbp, 50, 250);
  out[kDiastolic] = Round(dbp, 20, std::max(20, out[kSystolic] - 10));
  out[kTemperature] = Round(temp * 10, 330, 425);
  out[kOxygenFlow] = oxygen;
  out[kConsciousness] = s.consciousness;
}

// ---------------------------------------------------------------- text

// Appends a non-negative number, zero-padded to `width` digits.
void AppendNumber(int64_t v, int width, std::string* out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  for (int pad = width - static_cast<int>(r.ptr - buf); pad > 0; --pad) out->push_back('0');
  out->append(buf, r.ptr);
}

// The value as a monitor reports it: whole, or tenths for the temperature.
void AppendValue(Vital vital, int value, std::string* out) {
  if (vital == kTemperature) {
    AppendNumber(value / 10, 1, out);
    out->push_back('.');
    AppendNumber(value % 10, 1, out);
  } else {
    AppendNumber(value, 1, out);
  }
}

double NumericValue(Vital vital, int value) { return vital == kTemperature ? value / 10.0 : value; }

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

// An HL7 TS to the second in UTC: "20240301150000+0000". ms >= 0.
void AppendHl7Time(int64_t ms, std::string* out) {
  const int64_t secs = ms / 1000;
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(secs / 86400, &y, &m, &d);
  const int64_t rem = secs % 86400;
  AppendNumber(y, 4, out);
  AppendNumber(m, 2, out);
  AppendNumber(d, 2, out);
  AppendNumber(rem / 3600, 2, out);
  AppendNumber(rem % 3600 / 60, 2, out);
  AppendNumber(rem % 60, 2, out);
  out->append("+0000");
}

constexpr std::string_view kAuthority = "VSTREAM-SIM";
constexpr std::string_view kFacility = "SIM";

template <typename Number>
absl::Status OutOfRange(std::string_view name, std::string_view range, Number got) {
  return absl::InvalidArgumentError(absl::StrCat(AV(name), " must lie in ", AV(range), ", got ", got));
}

}  // namespace

// ---------------------------------------------------------------- options

absl::StatusOr<PatientFormat> ParsePatientFormat(std::string_view name) {
  if (name == "rows") return PatientFormat::kRows;
  if (name == "hl7v2") return PatientFormat::kHl7v2;
  if (name == "fhir") return PatientFormat::kFhir;
  return absl::InvalidArgumentError(
      absl::StrCat("format must be rows, hl7v2 or fhir, got '", AV(name), "'"));
}

std::string_view PatientFormatName(PatientFormat format) {
  switch (format) {
    case PatientFormat::kRows: return "rows";
    case PatientFormat::kHl7v2: return "hl7v2";
    case PatientFormat::kFhir: return "fhir";
  }
  return "rows";
}

absl::Status PatientOptions::Validate() const {
  auto fraction = [](double v, double max) { return v >= 0 && v <= max; };  // false for NaN
  if (patients < 1 || patients > kMaxPatients) {
    return OutOfRange("patients", "1..100000000", patients);
  }
  if (interval_ms < 1000 || interval_ms > kDayMs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interval must lie in 1s..1d (monitors report at most once a second), got ", interval_ms,
        " ms"));
  }
  if (count < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("count must be >= 0, or -1 for an unbounded source, got ", count));
  }
  if (!fraction(speed, kMaxSpeed)) {
    return OutOfRange("speed", "0..1000000 (0: as fast as possible, 1: real time)", speed);
  }
  if (start_ms < 0 || start_ms >= kMaxTimeMs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "start must lie in 1970-01-01 .. 9999-12-31 (0: the wall clock when the job starts), got ",
        start_ms, " ms"));
  }
  if (!fraction(deterioration_rate, kMaxDeteriorationRate)) {
    return OutOfRange("deterioration_rate", "0..12 episodes per patient per simulated day", deterioration_rate);
  }
  if (!fraction(sepsis_fraction, 1)) return OutOfRange("sepsis_fraction", "0..1", sepsis_fraction);
  if (!fraction(missing, 1)) return OutOfRange("missing", "0..1", missing);
  if (!fraction(duplicates, 1)) return OutOfRange("duplicates", "0..1", duplicates);
  if (!fraction(late, 0.5)) {
    return OutOfRange("late", "0..0.5 (a late set is delivered after its patient's next, which is on time)", late);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- source

struct PatientSource::Vitals {
  int64_t n = 0;
  int64_t patient = 0;
  int64_t observed_at = 0;
  int value[kVitalCount] = {};
  bool present[kVitalCount] = {};
};

PatientSource::PatientSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& /*spec*/,
                             const PatientOptions& options)
    : SourceOperator(counters),
      schema_(std::move(schema)),
      options_(options),
      id_prefix_(absl::StrCat("SIM", options.seed, "-")),
      hl7_extractor_(Hl7Rows::kObservations, Hl7RowsOptions{}),
      batch_(schema_.size()) {}

int64_t PatientSource::ClockNanos() const {
  return ctx_.clock != nullptr ? ctx_.clock->NowMillis() * 1'000'000 : MonotonicNanos();
}

int64_t PatientSource::ClockMillis() const {
  return ctx_.clock != nullptr ? ctx_.clock->NowMillis() : vstream::NowMillis();
}

absl::Status PatientSource::Open(const OperatorContext& ctx) {
  ctx_ = ctx;
  if (absl::Status s = options_.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "' (patients): ", s.message()));
  }
  const Schema rows = Hl7ObservationSchema();
  if (schema_.DebugString() != rows.DebugString()) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name,
                                                   "': a patients source has the schema ", rows.DebugString(),
                                                   ", not ", schema_.DebugString()));
  }
  next_ = ctx.subtask_index;
  step_ = ctx.parallelism;
  start_ = options_.start_ms;
  if (start_ == 0) start_ = ClockMillis() / 1000 * 1000;
  max_tick_ = (kMaxTimeMs - start_) / options_.interval_ms - 1;
  anchored_ = false;
  behind_ = false;
  return absl::OkStatus();
}

std::string PatientSource::SnapshotOperatorState(int64_t) {
  return absl::StrCat("patients next=", next_, " start=", start_);
}

absl::Status PatientSource::RestoreOperatorState(std::string_view state) {
  auto bad = [&] {
    return absl::DataLossError(
        absl::StrCat("source position '", AV(state), "' is not 'patients next=N start=MS'"));
  };
  constexpr std::string_view kNext = "patients next=", kStart = " start=";
  if (state.substr(0, kNext.size()) != kNext) return bad();
  const size_t start_at = state.find(kStart);
  if (start_at == std::string_view::npos) return bad();
  auto number = [](std::string_view text, int64_t* out) {
    const auto r = std::from_chars(text.data(), text.data() + text.size(), *out);
    return r.ec == std::errc() && r.ptr == text.data() + text.size() && *out >= 0;
  };
  int64_t next = 0, start = 0;
  if (!number(state.substr(kNext.size(), start_at - kNext.size()), &next) ||
      !number(state.substr(start_at + kStart.size()), &start) || start >= kMaxTimeMs) {
    return bad();
  }
  if (next % step_ != ctx_.subtask_index) {
    return absl::DataLossError(absl::StrCat("patients position ", next, " is not one of subtask ",
                                            ctx_.subtask_index, " of ", step_,
                                            " (restoring at another parallelism?)"));
  }
  if (options_.start_ms != 0 && start != options_.start_ms) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint's patients were simulated from start ", FormatTimestamp(start), ", and the job now says ",
        FormatTimestamp(options_.start_ms), ": a restore must keep the start (or leave it out)"));
  }
  next_ = next;
  start_ = start;
  max_tick_ = (kMaxTimeMs - start_) / options_.interval_ms - 1;
  anchored_ = false;
  behind_ = false;
  return absl::OkStatus();
}

int64_t PatientSource::SlotTime(int64_t n) const {
  const int64_t patients = options_.patients;
  return start_ + (n / patients) * options_.interval_ms + (n % patients) * options_.interval_ms / patients;
}

bool PatientSource::Done() const {
  return (options_.count >= 0 && next_ >= options_.count) || next_ / options_.patients > max_tick_;
}

bool PatientSource::IsLate(int64_t n) const {
  if (options_.late <= 0) return false;
  const int64_t patients = options_.patients;
  // Its patient's next set must exist to be overtaken by.
  if (options_.count >= 0 && n + patients >= options_.count) return false;
  if ((n + patients) / patients > max_tick_) return false;
  const uint64_t patient = static_cast<uint64_t>(n % patients);
  const uint64_t tick = static_cast<uint64_t>(n / patients);
  // Only the first tick of each of the patient's pairs may be late, with
  // twice the probability: never both of two consecutive sets.
  const uint64_t phase = Hash(options_.seed, kSaltLatePhase, patient) & 1;
  if (((tick + phase) & 1) != 0) return false;
  return Unit(Hash(options_.seed, kSaltLate, static_cast<uint64_t>(n))) < 2 * options_.late;
}

void PatientSource::Simulate(int64_t n, Vitals* v) const {
  const int64_t patients = options_.patients;
  v->n = n;
  v->patient = n % patients;
  const int64_t t = SlotTime(n);
  v->observed_at = t / 1000 * 1000;
  SimulateVitals(options_, static_cast<uint64_t>(v->patient), static_cast<uint64_t>(n / patients), t, v->value);
  bool any = false;
  for (int i = 0; i < kVitalCount; ++i) {
    v->present[i] = options_.missing <= 0 ||
                    Unit(Hash(options_.seed, kSaltMissing, static_cast<uint64_t>(n), static_cast<uint64_t>(i))) >=
                        options_.missing;
    any |= v->present[i];
  }
  if (!any) v->present[kHeartRate] = true;  // a set is never empty
}

void PatientSource::FormatIds(int64_t n, int64_t patient) {
  id_.assign(id_prefix_);
  AppendNumber(n, 1, &id_);
  patient_.assign("SIMPT-");
  AppendNumber(patient, 6, &patient_);
  device_.assign("MON-");
  AppendNumber(patient, 6, &device_);
}

void PatientSource::EmitSlot(int64_t n) {
  if (!IsLate(n)) EmitSet(n, false);
  const int64_t patients = options_.patients;
  if (n >= patients && IsLate(n - patients)) EmitSet(n - patients, true);
}

void PatientSource::EmitSet(int64_t n, bool late) {
  Vitals v;
  Simulate(n, &v);
  FormatIds(n, v.patient);
  const int64_t delay =
      300 + static_cast<int64_t>(Unit(Hash(options_.seed, kSaltDelay, static_cast<uint64_t>(n))) * 1700);
  const int64_t received_at = v.observed_at + delay + (late ? options_.interval_ms : 0);
  const size_t first = batch_.size();
  absl::Status s;
  switch (options_.format) {
    case PatientFormat::kRows: AppendRows(v, received_at); break;
    case PatientFormat::kHl7v2: s = AppendHl7(v, received_at); break;
    case PatientFormat::kFhir: s = AppendFhir(v, received_at); break;
  }
  if (!s.ok()) {
    // The simulator wrote a message its own parser rejects: a bug, not data.
    status_ = absl::InternalError(absl::StrCat("patients source: the ", AV(PatientFormatName(options_.format)),
                                               " document of simulated set ", n, " does not parse: ", s.message()));
    batch_.Truncate(first);
    return;
  }
  ++sets_;
  late_sets_ += late;
  for (int i = 0; i < kVitalCount; ++i) missing_values_ += !v.present[i];
  const size_t end = batch_.size();
  if (options_.duplicates > 0 &&
      Unit(Hash(options_.seed, kSaltDuplicate, static_cast<uint64_t>(n))) < options_.duplicates) {
    ++duplicate_sets_;
    for (size_t r = first; r < end; ++r) {
      Row& copy = batch_.Append();
      copy = batch_[r];  // element-wise: the strings keep their capacity
      copy[kObsReceivedAt].i += kResendDelayMs;
    }
  }
  rows_ += static_cast<int64_t>(batch_.size() - first);
}

void PatientSource::AppendRows(const Vitals& v, int64_t received_at) {
  const size_t first = batch_.size();
  int64_t set_id = 0;
  for (int i = 0; i < kVitalCount; ++i) {
    if (!v.present[i]) continue;
    const Vital vital = static_cast<Vital>(i);
    const VitalDef& def = kVitals[i];
    Row& row = batch_.Append();
    row[kObsMessageId].SetString(id_);
    row[kObsSetId].SetInt(++set_id);
    row[kObsSubId].SetNull();
    row[kObsMessageType].SetString("ORU^R01");
    row[kObsSendingFacility].SetString(kFacility);
    row[kObsPatientId].SetString(patient_);
    row[kObsPatientAuthority].SetString(kAuthority);
    row[kObsCode].SetString(def.code);
    row[kObsCodeSystem].SetString("LN");
    row[kObsCodeText].SetString(def.text);
    Datum& text = row[kObsValueText];
    if (vital == kConsciousness) {
      row[kObsValueType].SetString("CWE");
      row[kObsValue].SetNull();
      text.SetString(kConsciousnessCodes[v.value[i]].code);
      row[kObsUnit].SetNull();
    } else {
      row[kObsValueType].SetString("NM");
      row[kObsValue].SetDouble(NumericValue(vital, v.value[i]));
      text.is_null = false;
      text.s.clear();
      AppendValue(vital, v.value[i], &text.s);
      row[kObsUnit].SetString(def.unit);
    }
    row[kObsStatus].SetString("F");
    row[kObsObservedAt].SetInt(v.observed_at);
    row[kObsDevice].SetString(device_);
    row[kObsReceivedAt].SetInt(received_at);
    row[kObsLastInMessage].SetBool(false);
  }
  if (batch_.size() > first) batch_[batch_.size() - 1][kObsLastInMessage].SetBool(true);
}

absl::Status PatientSource::AppendHl7(const Vitals& v, int64_t received_at) {
  std::string& m = text_;
  m.clear();
  m.append("MSH|^~\\&|VSTREAM-SIM|");
  m.append(kFacility);
  m.append("|VSTREAM|HOSP|");
  AppendHl7Time(v.observed_at, &m);
  m.append("||ORU^R01^ORU_R01|");
  m.append(id_);
  m.append("|P|2.6\rPID|1||");
  m.append(patient_);
  m.append("^^^");
  m.append(kAuthority);
  m.append("^MR\rOBR|1|||85353-1^Vital signs panel^LN|||");
  AppendHl7Time(v.observed_at, &m);
  m.push_back('\r');
  int set_id = 0;
  for (int i = 0; i < kVitalCount; ++i) {
    if (!v.present[i]) continue;
    const Vital vital = static_cast<Vital>(i);
    const VitalDef& def = kVitals[i];
    m.append("OBX|");
    AppendNumber(++set_id, 1, &m);
    m.append(vital == kConsciousness ? "|CWE|" : "|NM|");
    m.append(def.code);
    m.push_back('^');
    m.append(def.text);
    m.append("^LN||");
    if (vital == kConsciousness) {
      const Coded& level = kConsciousnessCodes[v.value[i]];
      m.append(level.code);
      m.push_back('^');
      m.append(level.text);
      m.append("^SCT|");
    } else {
      AppendValue(vital, v.value[i], &m);
      m.push_back('|');
      m.append(def.unit);
      m.push_back('^');
      m.append(def.unit);
      m.append("^UCUM");
    }
    // OBX-11 status, OBX-14 observation time, OBX-18 device.
    m.append("|||||F|||");
    AppendHl7Time(v.observed_at, &m);
    m.append("||||");
    m.append(device_);
    m.push_back('\r');
  }
  RETURN_IF_ERROR(message_.Parse(m));
  bool skipped = false;
  RETURN_IF_ERROR(hl7_extractor_.Append(message_, received_at, &batch_, &skipped));
  if (skipped) return absl::InternalError("the extractor skipped the ORU^R01 message");
  return absl::OkStatus();
}

absl::Status PatientSource::AppendFhir(const Vitals& v, int64_t received_at) {
  std::string& j = text_;
  j.clear();
  j.append(R"({"resourceType":"Bundle","id":")");
  j.append(id_);
  j.append(R"(","type":"collection","timestamp":")");
  AppendTimestamp(received_at, &j);
  j.append(R"(","entry":[{"resource":{"resourceType":"Patient","id":")");
  j.append(patient_);
  j.append(R"(","identifier":[{"system":")");
  j.append(kAuthority);
  j.append(R"(","value":")");
  j.append(patient_);
  j.append(R"("}]}})");
  int set_id = 0;
  for (int i = 0; i < kVitalCount; ++i) {
    if (!v.present[i]) continue;
    const Vital vital = static_cast<Vital>(i);
    const VitalDef& def = kVitals[i];
    // The set's first Observation is named by the message id, which the
    // extractor makes the rows' message_id; the others by id.k.
    j.append(R"(,{"resource":{"resourceType":"Observation","id":")");
    j.append(id_);
    if (++set_id > 1) {
      j.push_back('.');
      AppendNumber(set_id, 1, &j);
    }
    j.append(R"(","status":"final","category":[{"coding":[{"system":)"
             R"("http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],)"
             R"("code":{"coding":[{"system":"http://loinc.org","code":")");
    j.append(def.code);
    j.append(R"(","display":")");
    j.append(def.text);
    j.append(R"("}]},"subject":{"reference":"Patient/)");
    j.append(patient_);
    j.append(R"("},"effectiveDateTime":")");
    AppendTimestamp(v.observed_at, &j);
    j.append(R"(","device":{"display":")");
    j.append(device_);
    if (vital == kConsciousness) {
      const Coded& level = kConsciousnessCodes[v.value[i]];
      j.append(R"("},"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":")");
      j.append(level.code);
      j.append(R"(","display":")");
      j.append(level.text);
      j.append(R"("}]}}})");
    } else {
      j.append(R"("},"valueQuantity":{"value":)");
      AppendValue(vital, v.value[i], &j);
      j.append(R"(,"unit":")");
      j.append(def.unit);
      j.append(R"(","system":"http://unitsofmeasure.org","code":")");
      j.append(def.unit);
      j.append(R"("}}})");
    }
  }
  j.append("]}");
  RETURN_IF_ERROR(ParseJson(j, &document_));
  int skipped = 0;
  return fhir_extractor_.Append(document_, received_at, &batch_, &skipped);
}

SourceStatus PatientSource::Produce() {
  batch_.Clear();
  if (!status_.ok()) return SourceStatus::kEnd;
  if (!announced_) {
    announced_ = true;
    LogStart();
  }
  if (Done()) {
    LogSummary();
    return SourceStatus::kEnd;
  }
  const bool paced = options_.speed > 0;
  if (paced && !anchored_) {
    anchored_ = true;
    anchor_ns_ = ClockNanos();
    anchor_sim_ms_ = SlotTime(next_);
    // Numbers only: bench/alert_latency.sh computes when each set was due
    // from them (set n is due at wall + (SlotTime(n) - simulated) / speed).
    spdlog::info("source '{}' subtask {}: paced: start_ms={} simulated_ms={} wall_ms={} speed={}", ctx_.vertex_name,
                 ctx_.subtask_index, start_, anchor_sim_ms_, ClockMillis(), options_.speed);
  }
  // The flush deadline is on the steady clock: not for a test's clock.
  const int64_t deadline_ns = ctx_.clock == nullptr ? flush_deadline_ns() : 0;
  // Wall ns at which slot n is due.
  const auto due_ns = [this](int64_t n) {
    return anchor_ns_ + static_cast<int64_t>(static_cast<double>(SlotTime(n) - anchor_sim_ms_) / options_.speed * 1e6);
  };
  // Sets made before the flush deadline would only wait in the output
  // buffer for it: with the deadline ahead, sets are made once
  // kPaceStepSlots are due; past it (or without one), any that are due.
  // Behind (the last call's batch filled with sets still due), any that are
  // due at once, as RateLimiter grants what is due once a step (at most a
  // batch) is.
  const auto ready = [&](int64_t t) {
    if (due_ns(next_) > t) return false;
    if (behind_ || deadline_ns == 0 || t >= deadline_ns) return true;
    return due_ns(next_ + step_ * (kPaceStepSlots - 1)) <= t;
  };
  const int64_t called = paced ? ClockNanos() : 0;
  int64_t now = called;
  if (paced && !ready(now) && !(deadline_ns != 0 && now >= deadline_ns)) {
    // Wait for the step or the deadline, whichever comes first (without a
    // deadline for the next set, but at least kMinPaceWaitUs, so that a
    // wakeup makes a few sets rather than one: at 4,700 sets a second a
    // subtask woke every 213 us), at most 5 ms, so that the task stays
    // responsive to checkpoints; then make what may be made. Past the
    // deadline with nothing due it returns at once: the task flushes.
    const int64_t wake = deadline_ns != 0 ? std::min(due_ns(next_ + step_ * (kPaceStepSlots - 1)), deadline_ns)
                                          : std::max(due_ns(next_), now + kMinPaceWaitUs * 1000);
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::clamp<int64_t>(wake - now, 50'000, 5'000'000)));
    now = ClockNanos();
  }
  size_t slots = 0;
  // How long the first set this call makes has been due, and the last: a
  // latency marker sent with the batch is dated by them, as a rate-limited
  // source's is (SourceOperator::DateLatencyMarker).
  const int64_t first = next_;
  if (!paced || ready(now)) {
    while (slots < kSetsPerBatch && !batch_.full() && !Done()) {
      if (paced && due_ns(next_) > now) break;
      EmitSlot(next_);
      if (!status_.ok()) return SourceStatus::kEnd;
      next_ += step_;
      ++slots;
    }
  }
  behind_ = paced && slots > 0 && !Done() && due_ns(next_) <= now;
  if (paced && slots > 0) DateLatencyMarker(called - due_ns(first), called - due_ns(next_ - step_));
  EmitBatch(batch_);
  if (Done()) {
    LogSummary();
    return SourceStatus::kEnd;
  }
  return SourceStatus::kMoreAvailable;
}

void PatientSource::LogStart() {
  // Counts only: never a patient identifier. Logged at the first Produce,
  // so that a restored source says which start it restored.
  spdlog::info("source '{}' subtask {}: simulating {} patients (seed {}, a set each every {} ms from {}, speed {}, "
               "{} deterioration episodes per patient per day, format {}), from set {}",
               ctx_.vertex_name, ctx_.subtask_index, options_.patients, options_.seed, options_.interval_ms,
               FormatTimestamp(start_), options_.speed, options_.deterioration_rate,
               std::string(PatientFormatName(options_.format)), next_);
}

void PatientSource::LogSummary() {
  if (summarized_) return;
  summarized_ = true;
  // Counts only: never a patient identifier.
  spdlog::info("source '{}' subtask {}: simulated {} observation sets of {} patients: {} rows, {} values left "
               "out, {} sets sent twice, {} delivered late",
               ctx_.vertex_name, ctx_.subtask_index, sets_, options_.patients, rows_, missing_values_,
               duplicate_sets_, late_sets_);
}

}  // namespace vstream
