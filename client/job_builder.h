#pragma once
// JobBuilder: builds a proto::JobGraph in code, validating and type-checking
// every step. It is the one place that knows the rules of a job graph; the
// YAML job-spec compiler (client/job_spec.h) is a front end over it, and tests
// and benchmarks use it directly:
//
//   JobBuilder b("vitals-running-totals");
//   b.SetParallelism(2);
//   StreamRef vitals = b.FileSource("vitals", "/data/vitals.csv", "csv", schema);
//   StreamRef valid = b.Filter("valid", vitals, "hr > 0");
//   StreamRef totals = b.Aggregate("totals", valid, {"patient_id"}, {{"readings", "count(*)"}});
//   b.Sink("out", totals, SinkOptions::Stdout());
//   absl::StatusOr<proto::JobGraph> graph = b.Build();
//
// Event time: a source declares which field holds it (FileSourceOptions::
// event_time); the builder follows that field through every vertex and sets
// JobVertex.output_time_index (-1: none) on each, so that windows and joins
// know, and check when the job is built, which streams carry event time.
//
// Errors are sticky: the first failing call records a BuildError, later calls
// are ignored, and Build() returns that error. So a caller may chain calls and
// check once, or check error() after each call to learn exactly which argument
// was wrong (what the YAML front end does to report line:column).
//
// Vertex ids follow call order, which is a topological order because a vertex
// can only read streams that already exist. Parallelism and edge partitioning
// are resolved in Build(), so the job-level setters may be called at any time.
//
// Thread-compatible: use one builder from one thread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/jobgraph.pb.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/operators/nexmark_source.h"
#include "runtime/operators/patient_source.h"
#include "runtime/operators/process_params.h"
#include "runtime/types.h"

namespace vstream {

// Names a stream: the output of a source or operator, or the dead-letter
// stream a file source declares. Streams are referred to by name, so a
// StreamRef can be written as a string literal.
struct StreamRef {
  StreamRef() = default;  // names no stream: what a failed call returns
  // Implicit on purpose: a stream's name stands for the stream.
  StreamRef(std::string stream_name) : name(std::move(stream_name)) {}  // NOLINT
  StreamRef(const char* stream_name) : name(stream_name) {}             // NOLINT
  std::string name;
};

// How records of an input reach the subtasks of the consuming vertex. Hash
// partitioning is not listed: it is what VertexOptions::key_by asks for.
enum class Partition {
  kAuto,       // FORWARD when both sides have equal parallelism, else REBALANCE
  kForward,    // subtask i feeds subtask i; needs equal parallelism
  kRebalance,  // round robin
  kBroadcast,  // every record to every subtask
};

// "forward" | "rebalance" | "broadcast" (what a job spec writes).
absl::StatusOr<Partition> ParsePartition(std::string_view name);

// Options every operator and sink takes.
struct VertexOptions {
  // Subtasks of this vertex. Default 0: the job's parallelism.
  int parallelism = 0;
  // How records reach this vertex from its input(s). Default kAuto.
  Partition partition = Partition::kAuto;
  // Non-empty: hash-partition the input(s) on these fields of the input
  // schema (a HASH edge), so that all records of a key meet in one subtask.
  // Excludes `partition`. Default empty.
  std::vector<std::string> key_by;
};

// Event time of a source: which field holds it and how its watermarks follow
// it (see docs/job-spec.md, "Watermarks").
struct EventTime {
  // A timestamp field of the source's schema. Required.
  std::string field;
  // How far behind the largest timestamp seen a record may still arrive: the
  // watermark is max timestamp - this - 1. Default 0: in order.
  int64_t max_out_of_orderness_ms = 0;
  // A source subtask that emits nothing for this long is idle and left out
  // of downstream watermarks until it emits again. Default 0: never idle.
  int64_t idle_timeout_ms = 0;
  // A source subtask emits at most one watermark per this (each one sends
  // every partly filled output buffer on), Flink's
  // pipeline.auto-watermark-interval. 0: after every batch.
  int64_t watermark_interval_ms = kDefaultWatermarkIntervalMs;
  static constexpr int64_t kDefaultWatermarkIntervalMs = 5;
  // Watermark alignment (Flink's withWatermarkAlignment): the subtasks of
  // every source with the same group pause reading while their watermark
  // is more than alignment_max_drift_ms ahead of the group's lowest, as the
  // JobManager last computed it (every alignment_update_interval_ms). Empty
  // group: no alignment (the default). max drift: required with a group.
  std::string alignment_group;
  int64_t alignment_max_drift_ms = 0;
  int64_t alignment_update_interval_ms = kDefaultAlignmentUpdateIntervalMs;
  static constexpr int64_t kDefaultAlignmentUpdateIntervalMs = 100;
};

struct FileSourceOptions {
  // Records/s per subtask. Default 0: unlimited.
  double max_rate = 0;
  // Non-empty: declares a stream of this name, with DeadLetterSchema(), that
  // receives the records that fail to parse. Default empty: they go to the
  // TaskManager's dead-letter directory.
  std::string dead_letter;
  // Subtasks. Default 0: the job's parallelism.
  int parallelism = 0;
  // Set: records carry event time and the source emits watermarks. Default
  // unset: the stream has no event time.
  std::optional<EventTime> event_time;
  // Format hl7v2: the rows the messages become (hl7v2_rows.h). Default
  // observations. The schema given to FileSource must then be empty (it is
  // these rows' schema) or exactly that schema.
  Hl7Rows hl7_rows = Hl7Rows::kObservations;
  // Format hl7v2: the zone of timestamps without an offset, in minutes east
  // of UTC. Default 0 (UTC).
  int hl7_default_offset_minutes = 0;
};

// How the generator produces one column. Unset optionals take the default
// listed with each kind:
//   sequence   min + i for the i-th record (int, double, timestamp), or
//              prefix + i (string). min default 0, prefix default "".
//   uniform    uniform in [min, max] (int, double, timestamp, bool).
//              Defaults: int 0..999, double 0..1000, bool 0..1,
//              timestamp 0..999.
//   key        one of `cardinality` keys: prefix + k (string) or k (int),
//              k uniform in [0, cardinality). Defaults 1000 and "k".
//   constant   always `value`, parsed as the column's type. Required.
// Columns without an entry: int uniform 0..999, double uniform 0..1000,
// string key cardinality 1000 prefix "k", bool uniform 0..1, timestamp
// sequence from 0.
struct GeneratorColumn {
  std::string column;  // a field of the schema
  std::string kind;    // sequence | uniform | key | constant
  std::optional<int64_t> min;
  std::optional<int64_t> max;
  std::optional<int64_t> cardinality;
  std::optional<std::string> prefix;
  std::optional<std::string> value;
};

// An MLLP listener (runtime/operators/mllp_source.h): HL7 v2 messages
// pushed over TCP become the rows hl7_rows names, like a file source in
// format hl7v2.
struct MllpSourceOptions {
  // Subtask i listens on port + i. 0: any free port (tests).
  int port = 0;
  // The IPv4 address to bind. Default empty: all (0.0.0.0).
  std::string host;
  // Frames longer than this are answered AR and dead-lettered. Default 0: 1 MiB.
  int64_t max_message_bytes = 0;
  // As in FileSourceOptions.
  std::string dead_letter;
  int parallelism = 0;
  std::optional<EventTime> event_time;
  Hl7Rows hl7_rows = Hl7Rows::kObservations;
  int hl7_default_offset_minutes = 0;
};

// The synthetic ward (runtime/operators/patient_source.h): observation rows
// of the hl7v2 schema, simulated.
struct PatientsSourceOptions {
  // All simulation parameters, with their defaults (count -1: unbounded).
  PatientOptions simulation;
  // As in GeneratorOptions.
  int parallelism = 0;
  std::optional<EventTime> event_time;
};

struct NexmarkSourceOptions {
  // The generator's parameters, with their defaults (count -1: unbounded).
  NexmarkOptions generator;
  // As in GeneratorOptions.
  int parallelism = 0;
  std::optional<EventTime> event_time;
};

struct GeneratorOptions {
  // Records over all subtasks. Default -1: unbounded.
  int64_t count = -1;
  // Records/s over all subtasks. Default 0: as fast as possible.
  double rate = 0;
  // Seed of the pseudo-random columns. Default 0.
  uint64_t seed = 0;
  // Per-column generation; columns not listed get the defaults above.
  std::vector<GeneratorColumn> fields;
  // Subtasks. Default 0: the job's parallelism.
  int parallelism = 0;
  // Set: records carry event time and the source emits watermarks. Default
  // unset: the stream has no event time.
  std::optional<EventTime> event_time;
};

// Where and how a sink writes. The factories are the short way to write one
// (GCC 12 warns about designated initializers that leave fields out).
struct SinkOptions {
  static SinkOptions File(std::string path, std::string format = "") {
    return SinkOptions{"file", std::move(path), std::move(format), 0};
  }
  static SinkOptions Stdout(std::string format = "") {
    return SinkOptions{"stdout", "", std::move(format), 0};
  }
  static SinkOptions Blackhole() { return SinkOptions{"blackhole", "", "", 0}; }

  // file | stdout | blackhole. Required.
  std::string connector;
  // file only: the directory of part files; need not exist. A relative path
  // is made absolute against the current directory.
  std::string path;
  // file and stdout: jsonl | csv. Default empty: jsonl.
  std::string format;
  // Records/s per subtask the sink accepts, to throttle it on purpose (e.g.
  // to show backpressure). Default 0: unlimited.
  double max_rate = 0;
};

// An output field computed by an expression (map), or an aggregate call
// ("count(*)", "max(hr)", "percentile(hr, 0.95)") with its output name
// (aggregate, window).
struct NamedExpr {
  std::string name;
  std::string expr;
};

// A keyed running aggregate (JobBuilder::Aggregate).
struct AggregateOptions {
  static AggregateOptions On(std::vector<std::string> key_by, std::vector<NamedExpr> aggregates) {
    AggregateOptions a;
    a.key_by = std::move(key_by);
    a.aggregates = std::move(aggregates);
    return a;
  }

  // Fields of the input that identify a key; the input is hash-partitioned
  // on them. Required.
  std::vector<std::string> key_by;
  // Output name -> aggregate call, in output order. Required.
  std::vector<NamedExpr> aggregates;
  // How long a key's accumulator lives after its last update (processing
  // time); a key seen again after that starts over. >= 0. Default 0: kept
  // forever.
  int64_t state_ttl_ms = 0;
  // Emit updates as Flink's retract stream: the output gets a last field
  // `retract: bool`; an update emits the key's previous row with retract =
  // true, then its new row with retract = false; an unchanged row nothing.
  bool changelog = false;
  // An input bool field (another aggregate's `retract`) whose true rows take
  // an earlier row back out. Then only count, sum and avg are allowed.
  std::string retract_field;
};

// A keyed process function (runtime/operators/process_function.h), named
// in the process-function registry.
struct ProcessOptions {
  static ProcessOptions Function(std::string function, std::vector<std::string> key_by,
                                 ProcessParams::Map params = {}) {
    ProcessOptions p;
    p.function = std::move(function);
    p.key_by = std::move(key_by);
    p.params = std::move(params);
    return p;
  }

  // A name in ProcessFunctionRegistry::Global() (e.g. "no_data_alert"), or
  // one only a custom TaskManager knows, if output_schema is set. Required.
  std::string function;
  // Fields of the input that identify a key: the function's state and
  // timers are per key, and the input is hash-partitioned on them. Required.
  std::vector<std::string> key_by;
  // The function's parameters, as text. Default empty.
  ProcessParams::Map params;
  // The function's output. Required for a function this program does not
  // know; for a known one it must match what the function produces. Default
  // unset: the function computes it. A declared schema has no event time
  // unless the known function gives it one.
  std::optional<Schema> output_schema;
  // Default time to live of the function's keyed states (processing time
  // since a value's last write); states that set their own keep it. >= 0.
  // Default 0: kept forever.
  int64_t state_ttl_ms = 0;
  // Non-empty: declares a stream of this name, with DeadLetterSchema(), of
  // the records the function rejects. Default empty: they go to the
  // TaskManager's dead-letter directory.
  std::string dead_letter;
};

enum class WindowKind {
  kTumbling,  // fixed, non-overlapping windows of size_ms
  kSliding,   // windows of size_ms starting every slide_ms
  kSession,   // per key: records at most gap_ms apart share a window
};

// "tumbling" | "sliding" | "session" (what a job spec writes).
absl::StatusOr<WindowKind> ParseWindowKind(std::string_view name);

// Which clock assigns records to windows.
enum class WindowTime {
  kEvent,       // the input's event-time field; results follow watermarks
  kProcessing,  // the wall clock of the window's subtask when a record arrives
};

// "event" | "processing" (what a job spec writes).
absl::StatusOr<WindowTime> ParseWindowTime(std::string_view name);

// A keyed window aggregate. The factories set the fields each kind needs.
struct WindowOptions {
  static WindowOptions Tumbling(std::vector<std::string> key_by, int64_t size_ms,
                                std::vector<NamedExpr> aggregates) {
    WindowOptions w;
    w.key_by = std::move(key_by);
    w.kind = WindowKind::kTumbling;
    w.size_ms = size_ms;
    w.aggregates = std::move(aggregates);
    return w;
  }
  static WindowOptions Sliding(std::vector<std::string> key_by, int64_t size_ms, int64_t slide_ms,
                               std::vector<NamedExpr> aggregates) {
    WindowOptions w = Tumbling(std::move(key_by), size_ms, std::move(aggregates));
    w.kind = WindowKind::kSliding;
    w.slide_ms = slide_ms;
    return w;
  }
  static WindowOptions Session(std::vector<std::string> key_by, int64_t gap_ms,
                               std::vector<NamedExpr> aggregates) {
    WindowOptions w;
    w.key_by = std::move(key_by);
    w.kind = WindowKind::kSession;
    w.gap_ms = gap_ms;
    w.aggregates = std::move(aggregates);
    return w;
  }

  // Fields of the input that identify a key; each key has its own windows,
  // and the input is hash-partitioned on them. Required.
  std::vector<std::string> key_by;
  // Default kTumbling.
  WindowKind kind = WindowKind::kTumbling;
  // tumbling, sliding: the length of a window; > 0. Must be 0 for session.
  int64_t size_ms = 0;
  // sliding: the distance between window starts; in (0, size_ms] (size_ms
  // need not be a multiple). Must be 0 for the other kinds.
  int64_t slide_ms = 0;
  // session: the inactivity that closes a key's window; > 0. Must be 0 for
  // the other kinds.
  int64_t gap_ms = 0;
  // Default kEvent, which needs an input with event time.
  WindowTime time = WindowTime::kEvent;
  // Event time only: how long after a window's results were emitted its
  // late records still update it (each one emits a corrected row). Default
  // 0: a record is late once the watermark has passed its window.
  int64_t allowed_lateness_ms = 0;
  // Event time only. Non-empty: declares a stream of this name, with the
  // window's input schema and event time, of the records too late for every
  // window they belong to. Default empty: such records are dropped and
  // counted.
  std::string late_output;
  // Output name -> aggregate call, in output order ("count(*)", "avg(hr)",
  // "percentile(hr, 0.95)"). Required.
  std::vector<NamedExpr> aggregates;
};

// Joins each left record with the right records of the same key whose event
// time lies in [left time + lower_ms, left time + upper_ms]. Set either
// key_by or both left_key and right_key.
struct IntervalJoinOptions {
  static IntervalJoinOptions On(std::vector<std::string> key_by, int64_t lower_ms,
                                int64_t upper_ms) {
    IntervalJoinOptions j;
    j.key_by = std::move(key_by);
    j.lower_ms = lower_ms;
    j.upper_ms = upper_ms;
    return j;
  }

  // Key fields of the same names (and types) in both inputs. Default empty.
  std::vector<std::string> key_by;
  // Key fields of the left and of the right input, pairwise of the same
  // type; instead of key_by. Default empty.
  std::vector<std::string> left_key;
  std::vector<std::string> right_key;
  // The bounds of the right record's time relative to the left one's; may
  // be negative; lower_ms <= upper_ms. Default 0 and 0: equal times.
  int64_t lower_ms = 0;
  int64_t upper_ms = 0;
};

// Enriches a main stream with the latest broadcast record of its key. Set
// either key_by or both main_key and broadcast_key.
struct BroadcastJoinOptions {
  static BroadcastJoinOptions On(std::vector<std::string> key_by) {
    BroadcastJoinOptions j;
    j.key_by = std::move(key_by);
    return j;
  }

  // Key fields of the same names (and types) in both inputs. Default empty.
  std::vector<std::string> key_by;
  // Key fields of the main and of the broadcast input, pairwise of the same
  // type; instead of key_by. Default empty.
  std::vector<std::string> main_key;
  std::vector<std::string> broadcast_key;
};

// How a checkpoint treats the records that arrive between its barriers.
enum class CheckpointingMode {
  kExactlyOnce,  // barriers aligned: after a restore every record counts once
  kAtLeastOnce,  // barriers not aligned: after a restore some may count twice
};

// "exactly_once" | "at_least_once" (what a job spec writes).
absl::StatusOr<CheckpointingMode> ParseCheckpointingMode(std::string_view name);

// Periodic checkpoints of the job's state (JobGraph.checkpointing; see
// docs/job-spec.md, "Checkpointing"). As Flink's CheckpointConfig.
struct CheckpointingOptions {
  // Time between two checkpoint triggers. Default 0: no checkpoints; else
  // at least 10 ms.
  int64_t interval_ms = 0;
  // Default kExactlyOnce.
  CheckpointingMode mode = CheckpointingMode::kExactlyOnce;
  // A checkpoint not complete this long after its trigger is aborted.
  // Default 10 min.
  int64_t timeout_ms = 10 * 60 * 1000;
  // Checkpoints in flight at once. Default 1.
  int max_concurrent = 1;
  // Least time from one checkpoint's completion to the next trigger; > 0
  // also means one checkpoint in flight at a time. Default 0.
  int64_t min_pause_ms = 0;
  // Completed checkpoints kept; older ones are deleted. Default 3.
  int retained = 3;
  // Unaligned checkpoints (exactly_once only): barriers overtake the
  // buffered records, which become part of the checkpoint, so a
  // backpressured job still checkpoints quickly. Default false.
  bool unaligned = false;
  // > 0 (and not unaligned): checkpoints start aligned and turn unaligned
  // where their barriers are still on the way this long after the trigger.
  // Default 0: never.
  int64_t aligned_timeout_ms = 0;
  // Where checkpoints go: file:///ABSOLUTE/DIR or /ABSOLUTE/DIR, a directory
  // the JobManager and every TaskManager reach (a shared volume); each job
  // writes to <storage>/<job id>. Default empty: the JobManager's data dir.
  std::string storage;
};

// Where a builder call went wrong, in the terms of a job spec, so that a front
// end can point at the offending spot of its own input.
struct BuildError {
  static constexpr size_t kNoOffset = static_cast<size_t>(-1);

  absl::Status status;  // InvalidArgument, with a self-contained message
  // The vertex being defined (for a bad dead_letter or late_output name:
  // the vertex that declares it). Empty: a job-level setting.
  std::string vertex;
  // The job-spec key of the offending argument: "name", "input", "inputs",
  // "where", "select", "key_by", "aggregates", "schema", "fields", "path",
  // "format", "connector", "dead_letter", "event_time", "parallelism",
  // "partition", "count", "rate", "max_rate", "window", "time",
  // "allowed_lateness", "late_output", "left", "right", "left_key",
  // "right_key", "between", "broadcast", "main_key", "broadcast_key",
  // "function", "params", "output_schema", "state_ttl", "max_parallelism",
  // "buffer_timeout", "checkpointing", "sources", "sinks". Empty: the vertex
  // as a whole.
  std::string field;
  // The element of a list or ordered-map argument (inputs, select, key_by,
  // aggregates, schema, fields, left_key, right_key, main_key,
  // broadcast_key, between). -1: the argument as a whole.
  int index = -1;
  // For an error inside an expression: the byte offset in that expression's
  // text (the where clause, or the index-th select/aggregate expression).
  size_t expr_offset = kNoOffset;
  // For a mapping-valued argument (event_time, window, params,
  // checkpointing): the key inside it, e.g. "field", "size", "slide", "gap",
  // a param's name, "interval". Empty: the argument as a whole.
  std::string subfield;
};

class JobBuilder {
 public:
  explicit JobBuilder(std::string job_name);
  ~JobBuilder();
  JobBuilder(const JobBuilder&) = delete;
  JobBuilder& operator=(const JobBuilder&) = delete;

  // Default subtasks of every vertex. Default 1.
  void SetParallelism(int parallelism);
  // Key groups (the upper bound of any parallelism). Default
  // kDefaultMaxParallelism (128).
  void SetMaxParallelism(int max_parallelism);
  // How long a partly filled network buffer may wait before it is flushed.
  // Default 5.
  void SetBufferTimeoutMs(int64_t ms);
  // Every source subtask sends a latency marker this often; sinks report
  // the markers' ages (vstream status). Default 0: no markers.
  void SetLatencyMarkerIntervalMs(int64_t ms);
  // Projection pushdown, as Flink's planner does for a source that
  // SupportsProjectionPushDown: Build() tells each source that supports it
  // (nexmark, generator) which of its fields the job reads
  // (SourceSpec.reads), and the source leaves the others null instead of
  // making them. A field counts as read when a filter's where, a map's
  // select, a key, an aggregate's or window's arguments or event time name
  // it, or when any other vertex (a sink, a union, a join, a process
  // function) reads the stream at all; a filter passes on what its readers
  // read. Default true.
  void SetProjectionPushdown(bool enabled) { projection_pushdown_ = enabled; }
  // Periodic checkpoints. Default: none (CheckpointingOptions{}).
  void SetCheckpointing(const CheckpointingOptions& checkpointing);
  // What the JobManager does when a task fails (restart: in job specs).
  // Default: exponential backoff with checkpointing on, else none.
  void SetRestart(const proto::RestartSpec& restart) { restart_ = restart; }

  // Reads `path` (must exist; a relative path is made absolute against the
  // current directory) in `format` (csv, with a header row, or jsonl).
  StreamRef FileSource(std::string_view name, std::string_view path, std::string_view format,
                       const Schema& schema, const FileSourceOptions& options = {});
  // Listens for HL7 v2 over MLLP; the rows' schema is hl7_rows'.
  StreamRef MllpSource(std::string_view name, const MllpSourceOptions& options);
  // Simulates bedside monitors; the rows' schema is Hl7ObservationSchema().
  StreamRef PatientsSource(std::string_view name, const PatientsSourceOptions& options);
  // The Nexmark benchmark's events (Person, Auction, Bid) in one stream of
  // NexmarkSchema() (runtime/operators/nexmark_source.h).
  StreamRef NexmarkSource(std::string_view name, const NexmarkSourceOptions& options);
  // Synthesizes records of `schema`.
  StreamRef GeneratorSource(std::string_view name, const Schema& schema,
                            const GeneratorOptions& options = {});

  // Keeps the records for which the bool expression `where` is true.
  StreamRef Filter(std::string_view name, const StreamRef& input, std::string_view where,
                   const VertexOptions& options = {});
  // One output record per input record, with the fields `select` computes,
  // in that order.
  StreamRef Map(std::string_view name, const StreamRef& input, const std::vector<NamedExpr>& select,
                const VertexOptions& options = {});
  // Merges streams of identical schema (same field names and types).
  StreamRef Union(std::string_view name, const std::vector<StreamRef>& inputs,
                  const VertexOptions& options = {});
  // Keyed running aggregate: for every input record, the updated row
  // (key fields..., aggregates...) of its key. Always hash-partitioned on
  // `key_by`, so options.partition and options.key_by must be left empty.
  StreamRef Aggregate(std::string_view name, const StreamRef& input,
                      const std::vector<std::string>& key_by,
                      const std::vector<NamedExpr>& aggregates, const VertexOptions& options = {});
  // The same, with every option of the aggregate (state_ttl_ms).
  StreamRef Aggregate(std::string_view name, const StreamRef& input,
                      const AggregateOptions& aggregate, const VertexOptions& options = {});
  // Keyed process function: runs process.function on every record, with
  // the record's key current for its state and timers; its output is what
  // the function emits (its schema from the function, or
  // process.output_schema). Always hash-partitioned on process.key_by, so
  // options.partition and options.key_by must be left empty.
  StreamRef Process(std::string_view name, const StreamRef& input, const ProcessOptions& process,
                    const VertexOptions& options = {});

  // The schema of the stream `name` defined so far; null if there is none.
  const Schema* StreamSchema(std::string_view name) const;
  // Keyed window aggregate: one row (key fields..., window_start,
  // window_end, aggregates...) per key and window, emitted when the window
  // closes (event time: once the watermark passes window_end - 1). Always
  // hash-partitioned on window.key_by, so options.partition and
  // options.key_by must be left empty. The output's event time is
  // window_end.
  StreamRef Window(std::string_view name, const StreamRef& input, const WindowOptions& window,
                   const VertexOptions& options = {});
  // Event-time interval join of two keyed streams (both need event time).
  // Output: every left field, then every right field, a right field whose
  // name is taken renamed "<right stream>_<field>"; its event time is the
  // left one's. Both inputs are hash-partitioned on their keys, so
  // options.partition and options.key_by must be left empty.
  StreamRef IntervalJoin(std::string_view name, const StreamRef& left, const StreamRef& right,
                         const IntervalJoinOptions& join, const VertexOptions& options = {});
  // Every subtask keeps the latest `broadcast` record of each key; each
  // `input` record is emitted with the fields of its key's broadcast record
  // (null until one arrived). Output: the input's fields, then the broadcast
  // fields but its key fields, renamed "<broadcast stream>_<field>" on a
  // clash; its event time is the input's. `options` applies to the main
  // input as for any operator (options.key_by hash-partitions it); the
  // broadcast input is always broadcast.
  StreamRef BroadcastJoin(std::string_view name, const StreamRef& input, const StreamRef& broadcast,
                          const BroadcastJoinOptions& join, const VertexOptions& options = {});
  void Sink(std::string_view name, const StreamRef& input, const SinkOptions& sink,
            const VertexOptions& options = {});

  // Whether a stream of this name exists (sinks have no stream).
  bool HasStream(std::string_view name) const;

  // The first error, or nullptr if there is none so far.
  const BuildError* error() const;
  absl::Status status() const;

  // Resolves parallelism and edges and returns the graph, or the first error.
  absl::StatusOr<proto::JobGraph> Build();

 private:
  struct Stream;
  struct Input;
  struct Vertex;

  // Each check records the first error and returns false (-1) on failure.
  // `kind` and `name` are those of the vertex being defined.
  bool Fail(std::string_view vertex, std::string_view field, int index, std::string_view message,
            size_t expr_offset = BuildError::kNoOffset);
  // Fail for a key inside a mapping-valued argument (BuildError::subfield).
  bool FailKey(std::string_view vertex, std::string_view field, std::string_view subfield,
               std::string_view message);
  // Checks checkpointing_ (and makes its storage a file:// URI); `who`
  // names the job.
  bool CheckCheckpointing(std::string_view who);
  bool CheckNewName(std::string_view kind, std::string_view name, std::string_view field,
                    std::string_view new_name);
  bool CheckSource(std::string_view name, const Schema& schema, int parallelism);
  // A source's dead_letter stream name (empty: none) is usable; AddDeadLetterStream
  // declares it once the source's vertex exists.
  bool CheckDeadLetter(std::string_view name, const std::string& dead_letter);
  void AddDeadLetterStream(std::string_view name, const std::string& dead_letter);
  bool CheckTimezone(std::string_view name, int offset_minutes);
  // Checks a source's event time; *time_index = its field's index, or -1.
  bool CheckEventTime(std::string_view name, const Schema& schema,
                      const std::optional<EventTime>& event_time, int* time_index);
  // Type-checks aggregate calls over `input_schema`, appends their result
  // fields to *output, their protos to *calls and the input fields their
  // arguments read to *fields_read. `clash_note` explains what else the
  // output holds, for a name used twice.
  bool CheckAggregateCalls(std::string_view kind, std::string_view name,
                           const std::vector<NamedExpr>& aggregates, const Schema& input_schema,
                           std::string_view clash_note, Schema* output,
                           google::protobuf::RepeatedPtrField<proto::AggregateCall>* calls,
                           std::vector<int>* fields_read);
  // Resolves the keys of a two-input join: key_by (same names on both
  // sides) or first_key/second_key, named first_field/second_field in the
  // spec. `roles` name the inputs in messages ("left", "right").
  bool ResolveJoinKeys(std::string_view kind, std::string_view name,
                       const std::vector<std::string>& key_by,
                       const std::vector<std::string>& first_key,
                       const std::vector<std::string>& second_key, std::string_view first_field,
                       std::string_view second_field, std::string_view first_role,
                       std::string_view second_role, int first, int second,
                       std::vector<int>* first_fields, std::vector<int>* second_fields);
  // The index in streams_ of the stream `input` names, or -1.
  int ResolveInput(std::string_view kind, std::string_view name, std::string_view field, int index,
                   const StreamRef& input);
  bool CheckVertexOptions(std::string_view kind, std::string_view name,
                          const VertexOptions& options, const Schema& input_schema,
                          std::vector<int>* key_fields);
  // For a vertex always hash-partitioned on its `on` ("key_by", "keys"):
  // that `options` leaves partition and key_by empty. `what` names the
  // vertex in the message ("an aggregate").
  bool CheckNoPartition(std::string_view kind, std::string_view name, std::string_view what,
                        std::string_view on, const VertexOptions& options);
  // The opening checks of a keyed one-input vertex (aggregate, process,
  // window): its name, its input, CheckNoPartition, a non-empty `key_by`
  // and CheckVertexOptions with it. The input's index in streams_ and
  // *key_fields its key fields; -1 on failure or after an earlier error.
  int ResolveKeyedInput(std::string_view kind, std::string_view name, std::string_view what,
                        const StreamRef& input, const std::vector<std::string>& key_by,
                        const VertexOptions& options, std::vector<int>* key_fields);
  // A state_ttl is >= 0.
  bool CheckStateTtl(std::string_view kind, std::string_view name, int64_t state_ttl_ms);
  // Adds a vertex reading `inputs` and, if `output` is set (all but
  // sinks), the stream of its output, whose event-time field is
  // output_time_index (-1: none). input_schema is the schema of the first
  // input; second_input_schema that of the first input with target_input 1.
  StreamRef AddVertex(std::string_view kind, std::string_view name, proto::OperatorSpec op,
                      std::vector<Input> inputs, const Schema* output, int output_time_index,
                      int parallelism);
  // Adds a vertex keyed by `key_fields` of stream `input` (AddVertex), which
  // reads `reads` of it (Input::reads), whose output holds the key in
  // `output_key_fields` (empty: unknown). Partitioned streams: when the input
  // is partitioned (MarkPartitioned) by the key or by its first fields, the
  // vertex groups its records by those (JobVertex.key_group_fields), its
  // edge keys on them, and Build() makes it a FORWARD edge (chained) at the
  // producer's parallelism, as Flink's reinterpretAsKeyedStream does by hand.
  StreamRef AddKeyedVertex(std::string_view kind, std::string_view name, proto::OperatorSpec op, int input,
                           const std::vector<int>& key_fields, std::vector<int> reads, const Schema& output,
                           int output_time_index, int parallelism, const std::vector<int>& output_key_fields);
  // Partitioned streams: the main output just added (streams_.back()) of a
  // vertex whose records reached it by the hash of `key_fields` of its input
  // is partitioned the same way when each row holds those fields in
  // `output_fields` (same order, same types). Keyed operators check every
  // record's key group (OwnedKeyGroups).
  void MarkPartitioned(int input, const std::vector<int>& key_fields, const std::vector<int>& output_fields);
  // Whether `stream` is partitioned as its partitioned_by says, given each
  // vertex's `parallelism` (by id, up to the stream's vertex): a union's
  // output only if each of its inputs is and has the union's parallelism.
  bool Partitioned(int stream, const std::vector<int>& parallelism) const;
  // Projection pushdown: per stream (as streams_), which of its fields some
  // vertex reads (SetProjectionPushdown).
  std::vector<std::vector<bool>> FieldsRead() const;

  std::string job_name_;
  int parallelism_ = 1;
  int max_parallelism_;
  int64_t buffer_timeout_ms_ = 5;
  int64_t latency_marker_interval_ms_ = 0;
  bool projection_pushdown_ = true;
  CheckpointingOptions checkpointing_;
  proto::RestartSpec restart_;
  std::vector<Stream> streams_;   // in definition order
  std::vector<Vertex> vertices_;  // index = vertex id
  // Every name in use (streams and sinks) -> what uses it, e.g. "filter 'valid'".
  absl::flat_hash_map<std::string, std::string> owners_;
  std::optional<BuildError> error_;
};

}  // namespace vstream
