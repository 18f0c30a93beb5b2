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

struct FileSourceOptions {
  // Records/s per subtask. Default 0: unlimited.
  double max_rate = 0;
  // Non-empty: declares a stream of this name, with DeadLetterSchema(), that
  // receives the records that fail to parse. Default empty: they go to the
  // TaskManager's dead-letter directory.
  std::string dead_letter;
  // Subtasks. Default 0: the job's parallelism.
  int parallelism = 0;
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
// ("count(*)", "max(hr)") with its output name (aggregate).
struct NamedExpr {
  std::string name;
  std::string expr;
};

// Where a builder call went wrong, in the terms of a job spec, so that a front
// end can point at the offending spot of its own input.
struct BuildError {
  static constexpr size_t kNoOffset = static_cast<size_t>(-1);

  absl::Status status;  // InvalidArgument, with a self-contained message
  // The vertex being defined (for a bad dead_letter name: its source).
  // Empty: a job-level setting.
  std::string vertex;
  // The job-spec key of the offending argument: "name", "input", "inputs",
  // "where", "select", "key_by", "aggregates", "schema", "fields", "path",
  // "format", "connector", "dead_letter", "parallelism", "partition", "count",
  // "rate", "max_rate", "max_parallelism", "buffer_timeout", "sources",
  // "sinks". Empty: the vertex as a whole.
  std::string field;
  // The element of a list or ordered-map argument (inputs, select, key_by,
  // aggregates, schema, fields). -1: the argument as a whole.
  int index = -1;
  // For an error inside an expression: the byte offset in that expression's
  // text (the where clause, or the index-th select/aggregate expression).
  size_t expr_offset = kNoOffset;
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

  // Reads `path` (must exist; a relative path is made absolute against the
  // current directory) in `format` (csv, with a header row, or jsonl).
  StreamRef FileSource(std::string_view name, std::string_view path, std::string_view format,
                       const Schema& schema, const FileSourceOptions& options = {});
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
  struct Vertex;

  // Each check records the first error and returns false (-1) on failure.
  // `kind` and `name` are those of the vertex being defined.
  bool Fail(std::string_view vertex, std::string_view field, int index, std::string_view message,
            size_t expr_offset = BuildError::kNoOffset);
  bool CheckNewName(std::string_view kind, std::string_view name, std::string_view field,
                    std::string_view new_name);
  bool CheckSource(std::string_view name, const Schema& schema, int parallelism);
  // The index in streams_ of the stream `input` names, or -1.
  int ResolveInput(std::string_view kind, std::string_view name, std::string_view field, int index,
                   const StreamRef& input);
  bool CheckVertexOptions(std::string_view kind, std::string_view name,
                          const VertexOptions& options, const Schema& input_schema,
                          std::vector<int>* key_fields);
  // Adds a vertex reading the streams `inputs` and, if `output` is set (all
  // but sinks), the stream of its output.
  StreamRef AddVertex(std::string_view kind, std::string_view name, proto::OperatorSpec op,
                      const std::vector<int>& inputs, const Schema& input_schema,
                      const Schema* output, int parallelism, Partition partition,
                      std::vector<int> key_fields);

  std::string job_name_;
  int parallelism_ = 1;
  int max_parallelism_;
  int64_t buffer_timeout_ms_ = 5;
  std::vector<Stream> streams_;   // in definition order
  std::vector<Vertex> vertices_;  // index = vertex id
  // Every name in use (streams and sinks) -> what uses it, e.g. "filter 'valid'".
  absl::flat_hash_map<std::string, std::string> owners_;
  std::optional<BuildError> error_;
};

}  // namespace vstream
