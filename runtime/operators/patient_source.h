#pragma once
// The synthetic patient source (connector patients): a ward of simulated
// patients whose bedside monitors each send a set of vital signs every
// `interval`, as observation rows (Hl7ObservationSchema(), hl7v2_rows.h),
// so that dedup, news2, qsofa and alerts can be run, demonstrated and
// benchmarked without patient data.
//
// Sets and slots. Set n is the n-th observation set of the whole source:
// patient n % N at tick n / N, simulated at
//   start + (n / N) * interval + (n % N) * interval / N
// (the patients' sets are spread evenly over each interval). Emission goes
// by slot: slot n normally carries set n, and subtask i of p emits slots i,
// i + p, i + 2p, ..., so the union of the subtasks' output does not depend
// on the parallelism (as with the generator). A bounded source (count >= 0)
// emits sets 0 .. count - 1, each exactly once (its duplicate aside).
//
// Determinism. Every value of set n is a pure function of (options, n): no
// state carries from one set to the next, so a restore at any slot replays
// exactly what an uninterrupted run emits there. The pseudo-random numbers
// are SplitMix64 hashes of (seed, patient, tick or time, what) made normal
// with Box-Muller:
//   - each patient's baseline (heart rate, respiratory rate, SpO2, blood
//     pressure, temperature) is drawn once from (seed, patient);
//   - physiological noise: slow drift (normal knots every 20-60 simulated
//     minutes joined smoothly), beat-to-beat white noise per set, a day-night
//     rhythm (heart rate, blood pressure and temperature lowest near 05:00
//     simulated UTC), and a stress factor per (patient, set) that moves
//     heart rate and respiratory rate together;
//   - deterioration episodes: each patient may begin one episode in each
//     2-hour window of simulated time, with probability deterioration_rate
//     / 12, so deterioration_rate is the expected number of episodes per
//     patient per simulated day (at most 12). An episode lasts 3-12 hours:
//     its severity ramps up smoothly over the first 45%, holds, and recovers
//     over the last 30%; its peak is 0.45-1. A set looks back over the
//     windows that may hold an episode still running (no iteration from
//     time 0). A sepsis-like episode (a sepsis_fraction share) raises heart
//     rate, respiratory rate and temperature, lowers blood pressure and,
//     once deep, brings new confusion (then responds to voice only). A
//     respiratory failure lowers SpO2 and raises respiratory and heart rate;
//     from severity 0.3 the patient is on oxygen (2-15 L/min, rising with
//     severity), which recovers part of the SpO2.
// Values are clamped to physiological ranges and rounded as monitors report
// them: whole numbers, and temperature to 0.1 Cel. Healthy patients score
// NEWS2 0-2 almost always; deep episodes reach 7 and more.
//
// Each set is up to 8 rows, one per vital sign, in this order (code_system
// LN, status F, value_type NM, value and value_text the number, except
// consciousness: value_type CWE, value null, value_text a SNOMED CT code
// that ClassifyVitalSign reads as ACVPU):
//   8867-4 heart rate /min, 9279-1 respiratory rate /min, 59408-5 SpO2 %,
//   8480-6 systolic and 8462-4 diastolic blood pressure mm[Hg], 8310-5 body
//   temperature Cel, 3151-8 inhaled oxygen flow L/min (0 on room air),
//   80288-4 level of consciousness (248234008 alert, 130987000 acute
//   confusion, 300202002 responds to voice).
// message_id "SIM<seed>-<n>", set_id 1..k, message_type "ORU^R01",
// sending_facility "SIM", patient_id "SIMPT-" and the patient's number
// zero-padded to 6 digits ("SIMPT-000042"), patient_id_authority
// "VSTREAM-SIM", device "MON-" and the same number, observed_at the set's
// simulated time rounded down to the second, received_at observed_at + a
// transport delay of 0.3-2 s (simulated too, never the wall clock, so that
// replays are identical), last_in_message on the set's last row.
//
// Faults, each decided per set or value by its own hash:
//   - missing: each vital value is left out (no row) with this probability;
//     a set never loses all of them (the heart rate then stays);
//   - duplicates: the set is sent a second time right after the first, with
//     the same message_id and rows, received 10 s later (an interface
//     engine resending after an ACK timeout);
//   - late: the set is held back and delivered after its patient's next set,
//     one interval late (its received_at says so). Late sets come in pairs
//     of ticks (per patient, tick 2k+phase and the one after), so that a
//     set is never both late and overtaken; hence late <= 0.5.
//
// Formats: kRows builds the rows directly (no allocation once warm).
// kHl7v2 writes each set as an ORU^R01 message and reads it back with
// Hl7Message and Hl7RowExtractor; kFhir writes a FHIR R4 Bundle (a Patient
// and one Observation per value) and reads it back with ParseJson and
// FhirRowExtractor; so the HL7 and FHIR paths downstream of a real feed are
// exercised. hl7v2 gives exactly the rows of kRows. fhir gives the same
// rows but for what FHIR says differently: message_type "Bundle",
// sending_facility null, value_type Quantity or CodeableConcept, value_text
// null for numbers.
//
// Time. start 0 means the wall clock (of ctx.clock, when set) when the job
// first starts, rounded down to the second; it is kept in the checkpointed
// position, so a restore replays the same data. Pacing (speed s > 0): from
// the first Produce after Open or a restore, simulated time runs s times as
// fast as the clock (ctx.clock when set, else a monotonic clock), starting
// at the next slot's time, and no slot is emitted before its time is due.
// A restore therefore resumes at the pace, without catching up on the
// downtime. speed 0: as fast as possible.
//
// Position (for checkpoints): "patients next=N start=MS", the next slot of
// this subtask and the simulated start. A restore needs the same
// parallelism (N must be one of this subtask's slots) and, when the options
// give a start, the same start.
//
// Patient identifiers never appear in logs or metrics: the source logs one
// line when it starts producing (after a restore: with the restored start)
// and one at the end of a bounded run, with counts only.
//
// Task thread only.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/jobgraph.pb.h"
#include "runtime/formats/fhir.h"
#include "runtime/formats/hl7v2.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/formats/json_value.h"
#include "runtime/operators/sources.h"

namespace vstream {

// How a PatientSource makes its rows (see above).
enum class PatientFormat : uint8_t {
  kRows,   // directly
  kHl7v2,  // through an HL7 v2 ORU^R01 message per set
  kFhir,   // through a FHIR R4 Bundle per set
};

// "rows", "hl7v2", "fhir"; InvalidArgument names the accepted ones.
absl::StatusOr<PatientFormat> ParsePatientFormat(std::string_view name);
std::string_view PatientFormatName(PatientFormat format);

struct PatientOptions {
  // Simulated patients, 1..kMaxPatients. Default 100.
  int64_t patients = 100;
  // Seed of every pseudo-random choice. Default 0.
  uint64_t seed = 0;
  // Simulated milliseconds between a patient's observation sets,
  // 1 s .. 1 day. Default 60000 (1 min).
  int64_t interval_ms = 60'000;
  // Observation sets over all subtasks (duplicates not counted). Default
  // -1: unbounded.
  int64_t count = -1;
  // 0: as fast as possible. s > 0: simulated time runs s times as fast as
  // the wall clock (1: real time; 60: a simulated minute per second), at
  // most kMaxSpeed. Default 0.
  double speed = 0;
  // Simulated time (epoch ms) of set 0. Default 0: the wall clock when the
  // job first starts (then kept in the checkpointed position).
  int64_t start_ms = 0;
  // Expected deterioration episodes per patient per simulated day,
  // 0..kMaxDeteriorationRate. Default 0.5.
  double deterioration_rate = 0.5;
  // The share of episodes that are sepsis-like; the others are respiratory
  // failure. 0..1, default 0.5.
  double sepsis_fraction = 0.5;
  // Probability that a single vital value is left out. 0..1, default 0.
  double missing = 0;
  // Probability that a set is sent twice. 0..1, default 0.
  double duplicates = 0;
  // Probability that a set is delivered one interval late, after its
  // patient's next set. 0..0.5, default 0.
  double late = 0;
  // Default kRows.
  PatientFormat format = PatientFormat::kRows;

  static constexpr int64_t kMaxPatients = 100'000'000;
  static constexpr double kMaxSpeed = 1e6;
  static constexpr double kMaxDeteriorationRate = 12;

  // OK, or InvalidArgument naming the first parameter out of range (by its
  // job-spec name) with its value and the range it must lie in.
  absl::Status Validate() const;
};

class PatientSource : public SourceOperator {
 public:
  // `schema` must be Hl7ObservationSchema() (Open fails otherwise). Every
  // parameter of the simulation comes from `options`; of `spec` nothing is
  // read (the task applies its event_time through set_event_time).
  PatientSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec,
                const PatientOptions& options);
  // Checks the options and the schema: InvalidArgument says what is wrong.
  absl::Status Open(const OperatorContext& ctx) override;
  SourceStatus Produce() override;
  std::string SnapshotOperatorState(int64_t) override;
  absl::Status RestoreOperatorState(std::string_view state) override;

  // Slots per Produce call, at most (each slot carries up to two sets and
  // their duplicates); a batch also ends once it is full
  // (RowBatch::capacity).
  static constexpr size_t kSetsPerBatch = 256;
  // The shortest wait of a paced source with nothing due and no flush
  // deadline (a test's clock), and the slots it waits for before the flush
  // deadline unless it is behind (Produce).
  static constexpr int64_t kMinPaceWaitUs = 1000;
  static constexpr int64_t kPaceStepSlots = 64;
  // How much later a duplicate is received than the original.
  static constexpr int64_t kResendDelayMs = 10'000;

 private:
  struct Vitals;

  // The exact simulated time of slot (and set) n.
  int64_t SlotTime(int64_t n) const;
  bool Done() const;
  bool IsLate(int64_t n) const;
  // Appends the sets slot n carries to batch_.
  void EmitSlot(int64_t n);
  // Appends set n (and its duplicate) to batch_; `late`: delivered one
  // interval late.
  void EmitSet(int64_t n, bool late);
  void Simulate(int64_t n, Vitals* v) const;
  // Writes the ids of set n into id_, patient_ and device_.
  void FormatIds(int64_t n, int64_t patient);
  void AppendRows(const Vitals& v, int64_t received_at);
  absl::Status AppendHl7(const Vitals& v, int64_t received_at);
  absl::Status AppendFhir(const Vitals& v, int64_t received_at);
  // ctx.clock when set, else a monotonic clock (ns) and the system clock (ms).
  int64_t ClockNanos() const;
  int64_t ClockMillis() const;
  void LogStart();
  void LogSummary();

  const Schema schema_;
  const PatientOptions options_;
  OperatorContext ctx_;
  int64_t next_ = 0;  // this subtask's next slot
  int64_t step_ = 1;
  int64_t start_ = 0;     // simulated time of set 0
  int64_t max_tick_ = 0;  // the last tick before year 10000
  // Pacing: the clock (ns) and the simulated time (ms) it started from.
  bool anchored_ = false;
  int64_t anchor_ns_ = 0;
  int64_t anchor_sim_ms_ = 0;
  // The last call stopped at a full batch (or kSetsPerBatch) with sets still
  // due: the next makes them without waiting for kPaceStepSlots more or the
  // flush deadline. (Waiting, a call made one batch per flush period: a
  // RowBatch holds 23 sets (184 rows), the periods were 2.3 ms apart at a 2 ms
  // buffer_timeout, about 10,000 sets a second per subtask; a faster pace
  // fell behind by up to kPaceStepSlots sets, docs/benchmarks.md.)
  bool behind_ = false;
  std::string id_prefix_;  // "SIM<seed>-"
  std::string id_;         // of the set being emitted
  std::string patient_;
  std::string device_;
  std::string text_;  // the HL7 message or FHIR Bundle being built
  Hl7RowExtractor hl7_extractor_;
  Hl7Message message_;
  FhirRowExtractor fhir_extractor_;
  JsonValue document_;
  RowBatch batch_;
  int64_t sets_ = 0;
  int64_t duplicate_sets_ = 0;
  int64_t late_sets_ = 0;
  int64_t missing_values_ = 0;
  int64_t rows_ = 0;
  bool announced_ = false;
  bool summarized_ = false;
};

}  // namespace vstream
