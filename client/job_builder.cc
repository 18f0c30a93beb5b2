#include "client/job_builder.h"

#include "runtime/operators/mllp_source.h"
#include "runtime/formats/record_format.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/absl_compat.h"
#include "common/time_util.h"
#include "runtime/dead_letter.h"
#include "runtime/expr/expression.h"
#include "runtime/operators/accumulators.h"
#include "runtime/operators/process_function_registry.h"
#include "state/key_groups.h"

namespace vstream {

// A named stream: a vertex's main output or one of its side outputs.
struct JobBuilder::Stream {
  std::string name;
  int vertex;
  std::string side_output;  // empty: the main output
  Schema schema;
  int time_index;  // the event-time field in schema, -1: none
  // Each: fields the stream is partitioned by the hash of at its vertex's
  // parallelism (MarkPartitioned); more than one when they hold equal values
  // (the two keys of a join).
  std::vector<std::vector<int>> partitioned_by = {};
};

// One input of a vertex: an edge, once Build() knows the parallelism.
struct JobBuilder::Input {
  int stream;        // index into streams_
  int target_input;  // 0: the only, left or main input; 1: right or broadcast
  Partition partition;
  std::vector<int> key_fields;  // non-empty: a HASH edge on these fields of the stream (FORWARD if partitioned so)
  // Non-empty: the only fields of the stream the vertex reads (ascending),
  // all a HASH edge carries (JobEdge.projection); see ReadsOnly.
  std::vector<int> reads = {};
  // For projection pushdown (FieldsRead), set by filters and maps, whose
  // edges are not projected: the fields their expressions read, and for a
  // filter also what its readers read (its output is the stream's rows).
  // Unset, the vertex reads `reads`, or every field if that is empty.
  std::optional<std::vector<int>> expr_reads = std::nullopt;
  bool passes_rows = false;
};

// A vertex as defined; parallelism and edges are resolved by Build().
struct JobBuilder::Vertex {
  proto::JobVertex proto;  // everything but parallelism and max_parallelism
  std::string kind;        // "source", "filter", ..., for messages
  int parallelism;         // 0: the job's
  std::vector<Input> inputs;
};

namespace {

// Flink's upper bound for max parallelism (2^15).
constexpr int kMaxMaxParallelism = 1 << 15;
// Flink's lower bound for a checkpoint interval.
constexpr int64_t kMinCheckpointIntervalMs = 10;

std::string Describe(std::string_view kind, std::string_view name) {
  return absl::StrCat(AV(kind), " '", AV(name), "'");
}

// Names end up in file names (dead letters, part files) and metrics.
bool IsValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// The fields a keyed vertex reads of its input of `width` fields, for
// Input::reads: ascending, each once; empty if that is every field (nothing
// to leave out).
std::vector<int> ReadsOnly(std::vector<int> fields, size_t width) {
  std::sort(fields.begin(), fields.end());
  fields.erase(std::unique(fields.begin(), fields.end()), fields.end());
  if (fields.size() >= width) fields.clear();
  return fields;
}

// Makes a HASH edge carry only the fields of `schema` (its source's output)
// that its target reads, and compiles the target against them: its input
// schema, and a window's time field index. Its spec names every other field
// it uses (key_by, aggregate arguments, retract_field), which the projected
// schema still has.
void Project(const Schema& schema, const std::vector<int>& reads, proto::JobEdge* edge, proto::JobVertex* target) {
  Schema projected;
  for (int f : reads) {
    edge->add_projection(f);
    projected.Add(schema.field(f).name, schema.field(f).type);
  }
  *target->mutable_input_schema() = projected.ToProto();
  if (target->op().has_window() && target->op().window().time_field_index() >= 0) {
    const auto at = std::find(reads.begin(), reads.end(), target->op().window().time_field_index());
    target->mutable_op()->mutable_window()->set_time_field_index(static_cast<int>(at - reads.begin()));
  }
}

// 0, 1, ..., n - 1.
std::vector<int> LeadingFields(size_t n) {
  std::vector<int> fields(n);
  for (size_t i = 0; i < n; ++i) fields[i] = static_cast<int>(i);
  return fields;
}

bool IsNumeric(FieldType t) { return t == FieldType::kInt || t == FieldType::kDouble; }

// The fields a window adds after its key fields.
constexpr char kWindowStart[] = "window_start";
constexpr char kWindowEnd[] = "window_end";

// "30m", "5s", "-1h", "1500ms": a duration as a job spec would write it.
std::string FormatDuration(int64_t ms) {
  if (ms == 0) return "0s";
  if (ms % (3600 * 1000) == 0) return absl::StrCat(ms / (3600 * 1000), "h");
  if (ms % (60 * 1000) == 0) return absl::StrCat(ms / (60 * 1000), "m");
  if (ms % 1000 == 0) return absl::StrCat(ms / 1000, "s");
  return absl::StrCat(ms, "ms");
}

// The result type of aggregate function `func` over an argument of type
// `arg`, by the rules of AccumulatorSet::result_types(). Returns false and
// sets *expected (what the argument must be) if `arg` is not allowed.
bool AggregateResultType(const std::string& func, FieldType arg, FieldType* result,
                         std::string* expected) {
  if (func == "count") {
    *result = FieldType::kInt;
    return true;
  }
  if (func == "sum") {
    *result = arg;
    *expected = "an int or double";
    return IsNumeric(arg);
  }
  if (func == "avg" || func == "stddev" || func == "percentile") {
    *result = FieldType::kDouble;
    *expected = "an int or double";
    return IsNumeric(arg);
  }
  if (func == "min" || func == "max") {
    *result = arg;
    *expected = "an int, double, string or timestamp";
    return arg != FieldType::kBool;
  }
  if (func == "first" || func == "last") {
    *result = arg;
    return true;
  }
  *expected = "a known aggregate function";
  return false;
}

// A map expression without the spaces and backquotes around it, to
// recognize a bare reference to a field: "ts" and " `ts` " give "ts".
std::string_view BareIdentifier(std::string_view expr) {
  while (!expr.empty() && (expr.front() == ' ' || expr.front() == '\t')) expr.remove_prefix(1);
  while (!expr.empty() && (expr.back() == ' ' || expr.back() == '\t')) expr.remove_suffix(1);
  if (expr.size() >= 2 && expr.front() == '`' && expr.back() == '`') {
    expr = expr.substr(1, expr.size() - 2);
  }
  return expr;
}

std::string AbsolutePath(std::string_view path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(std::filesystem::path(path), ec);
  if (ec) p = std::filesystem::path(path);
  return p.lexically_normal().string();
}

const char* PartitionName(Partition p) {
  switch (p) {
    case Partition::kAuto: return "auto";
    case Partition::kForward: return "forward";
    case Partition::kRebalance: return "rebalance";
    case Partition::kBroadcast: return "broadcast";
  }
  return "auto";
}

// Checks that `text` parses as a value of `type` (a generator constant).
bool ParsesAs(const std::string& text, FieldType type) {
  int64_t i;
  double d;
  switch (type) {
    case FieldType::kInt: return absl::SimpleAtoi(AV(text), &i);
    case FieldType::kDouble: return absl::SimpleAtod(AV(text), &d);
    case FieldType::kString: return true;
    case FieldType::kBool: return text == "true" || text == "false";
    case FieldType::kTimestamp: return ParseTimestamp(text, &i);
  }
  return false;
}

// The kinds a generator column of `type` may use, for messages.
const char* GeneratorKindsFor(FieldType type) {
  switch (type) {
    case FieldType::kInt: return "sequence, uniform, key, constant";
    case FieldType::kDouble: return "sequence, uniform, constant";
    case FieldType::kString: return "sequence, key, constant";
    case FieldType::kBool: return "uniform, constant";
    case FieldType::kTimestamp: return "sequence, uniform, constant";
  }
  return "constant";
}

bool KindApplies(std::string_view kind, FieldType type) {
  if (kind == "constant") return true;
  if (kind == "sequence") return type != FieldType::kBool;
  if (kind == "uniform") return type != FieldType::kString;
  if (kind == "key") return type == FieldType::kString || type == FieldType::kInt;
  return false;
}

// The default upper bound of a uniform column (the lower one is 0).
int64_t DefaultUniformMax(FieldType type) {
  switch (type) {
    case FieldType::kDouble: return 1000;
    case FieldType::kBool: return 1;
    default: return 999;
  }
}

void SetEventTime(const std::optional<EventTime>& event_time, int time_index,
                  proto::SourceSpec* src) {
  if (!event_time) return;
  proto::EventTimeSpec* et = src->mutable_event_time();
  et->set_field(event_time->field);
  et->set_field_index(time_index);
  et->set_max_out_of_orderness_ms(event_time->max_out_of_orderness_ms);
  et->set_idle_timeout_ms(event_time->idle_timeout_ms);
  et->set_watermark_interval_ms(event_time->watermark_interval_ms);
  if (!event_time->alignment_group.empty()) {
    et->set_alignment_group(event_time->alignment_group);
    et->set_alignment_max_drift_ms(event_time->alignment_max_drift_ms);
    et->set_alignment_update_interval_ms(event_time->alignment_update_interval_ms);
  }
}

proto::GeneratorField DefaultGeneratorField(const Field& field) {
  proto::GeneratorField g;
  g.set_name(field.name);
  switch (field.type) {
    case FieldType::kInt:
    case FieldType::kDouble:
    case FieldType::kBool:
      g.set_kind("uniform");
      g.set_max(DefaultUniformMax(field.type));
      break;
    case FieldType::kString:
      g.set_kind("key");
      g.set_cardinality(1000);
      g.set_prefix("k");
      break;
    case FieldType::kTimestamp: g.set_kind("sequence"); break;
  }
  return g;
}

// Appends `from`'s fields but `skip` to *output; a field whose name is taken
// gets `prefix`_ before it. Returns false and sets *clash to the field whose
// new name is taken too.
bool AppendRenamed(const Schema& from, const std::vector<int>& skip, const std::string& prefix,
                   Schema* output, std::string* clash) {
  for (size_t i = 0; i < from.size(); ++i) {
    bool skipped = false;
    for (int k : skip) skipped |= k == static_cast<int>(i);
    if (skipped) continue;
    const Field& f = from.field(i);
    std::string field_name = f.name;
    if (output->IndexOf(field_name) >= 0) {
      field_name = absl::StrCat(prefix, "_", f.name);
      if (output->IndexOf(field_name) >= 0) {
        *clash = f.name;
        return false;
      }
    }
    output->Add(std::move(field_name), f.type);
  }
  return true;
}

}  // namespace

absl::StatusOr<WindowKind> ParseWindowKind(std::string_view name) {
  if (name == "tumbling") return WindowKind::kTumbling;
  if (name == "sliding") return WindowKind::kSliding;
  if (name == "session") return WindowKind::kSession;
  return absl::InvalidArgumentError(absl::StrCat("unknown window kind '", AV(name),
                                                 "', expected one of tumbling, sliding, session"));
}

absl::StatusOr<WindowTime> ParseWindowTime(std::string_view name) {
  if (name == "event") return WindowTime::kEvent;
  if (name == "processing") return WindowTime::kProcessing;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown time '", AV(name), "', expected one of event, processing"));
}

absl::StatusOr<Partition> ParsePartition(std::string_view name) {
  if (name == "forward") return Partition::kForward;
  if (name == "rebalance") return Partition::kRebalance;
  if (name == "broadcast") return Partition::kBroadcast;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown partition '", AV(name),
                   "', expected one of forward, rebalance, broadcast (key_by hash-partitions)"));
}

JobBuilder::JobBuilder(std::string job_name)
    : job_name_(std::move(job_name)), max_parallelism_(kDefaultMaxParallelism) {
  if (!IsValidName(job_name_)) {
    Fail("", "name", -1,
         absl::StrCat("invalid job name '", job_name_, "': use letters, digits, '_', '-' and '.'"));
  }
}

JobBuilder::~JobBuilder() = default;

void JobBuilder::SetParallelism(int parallelism) { parallelism_ = parallelism; }
void JobBuilder::SetMaxParallelism(int max_parallelism) { max_parallelism_ = max_parallelism; }
void JobBuilder::SetBufferTimeoutMs(int64_t ms) { buffer_timeout_ms_ = ms; }
void JobBuilder::SetLatencyMarkerIntervalMs(int64_t ms) { latency_marker_interval_ms_ = ms; }
void JobBuilder::SetCheckpointing(const CheckpointingOptions& checkpointing) {
  checkpointing_ = checkpointing;
}

absl::StatusOr<CheckpointingMode> ParseCheckpointingMode(std::string_view name) {
  if (name == "exactly_once") return CheckpointingMode::kExactlyOnce;
  if (name == "at_least_once") return CheckpointingMode::kAtLeastOnce;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown checkpointing mode '", AV(name), "', expected one of exactly_once, at_least_once"));
}

bool JobBuilder::HasStream(std::string_view name) const {
  for (const Stream& s : streams_) {
    if (s.name == name) return true;
  }
  return false;
}

const BuildError* JobBuilder::error() const { return error_ ? &*error_ : nullptr; }

absl::Status JobBuilder::status() const { return error_ ? error_->status : absl::OkStatus(); }

bool JobBuilder::Fail(std::string_view vertex, std::string_view field, int index,
                      std::string_view message, size_t expr_offset) {
  if (!error_) {
    BuildError e;
    e.status = absl::InvalidArgumentError(AV(message));
    e.vertex = std::string(vertex);
    e.field = std::string(field);
    e.index = index;
    e.expr_offset = expr_offset;
    error_ = std::move(e);
  }
  return false;
}

bool JobBuilder::FailKey(std::string_view vertex, std::string_view field, std::string_view subfield,
                         std::string_view message) {
  const bool first = !error_;
  Fail(vertex, field, -1, message);
  if (first) error_->subfield = std::string(subfield);
  return false;
}

bool JobBuilder::CheckNewName(std::string_view kind, std::string_view name, std::string_view field,
                              std::string_view new_name) {
  if (!IsValidName(new_name)) {
    return Fail(name, field, -1,
                absl::StrCat(Describe(kind, name), ": invalid name '", AV(new_name),
                             "': use letters, digits, '_', '-' and '.'"));
  }
  auto it = owners_.find(AV(new_name));
  if (it != owners_.end()) {
    return Fail(name, field, -1,
                absl::StrCat("duplicate name '", AV(new_name), "': already used by ", it->second));
  }
  return true;
}

int JobBuilder::ResolveInput(std::string_view kind, std::string_view name, std::string_view field,
                             int index, const StreamRef& input) {
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (streams_[i].name == input.name) return static_cast<int>(i);
  }
  std::string message;
  auto owner = owners_.find(input.name);
  if (owner != owners_.end()) {
    message = absl::StrCat(Describe(kind, name), ": input '", input.name, "' is ", owner->second,
                           ", which has no output stream");
  } else {
    std::vector<std::string> known;
    for (const Stream& s : streams_) known.push_back(s.name);
    message =
        absl::StrCat(Describe(kind, name), ": unknown input stream '", input.name,
                     "', known streams: ", known.empty() ? "(none)" : absl::StrJoin(known, ", "));
  }
  Fail(name, field, index, message);
  return -1;
}

bool JobBuilder::CheckVertexOptions(std::string_view kind, std::string_view name,
                                    const VertexOptions& options, const Schema& input_schema,
                                    std::vector<int>* key_fields) {
  const std::string who = Describe(kind, name);
  if (options.parallelism < 0) {
    return Fail(name, "parallelism", -1,
                absl::StrCat(who, ": parallelism must be at least 1, got ", options.parallelism));
  }
  if (!options.key_by.empty() && options.partition != Partition::kAuto) {
    return Fail(name, "partition", -1,
                absl::StrCat(who, ": partition ", PartitionName(options.partition),
                             " conflicts with key_by, which hash-partitions"));
  }
  key_fields->clear();
  for (size_t i = 0; i < options.key_by.size(); ++i) {
    const std::string& key = options.key_by[i];
    int idx = input_schema.IndexOf(key);
    if (idx < 0) {
      return Fail(name, "key_by", static_cast<int>(i),
                  absl::StrCat(who, ": unknown key_by field '", key, "', the input has ",
                               input_schema.DebugString()));
    }
    for (int seen : *key_fields) {
      if (seen == idx) {
        return Fail(name, "key_by", static_cast<int>(i),
                    absl::StrCat(who, ": key_by lists '", key, "' twice"));
      }
    }
    key_fields->push_back(idx);
  }
  return true;
}

bool JobBuilder::CheckNoPartition(std::string_view kind, std::string_view name,
                                  std::string_view what, std::string_view on,
                                  const VertexOptions& options) {
  if (options.partition == Partition::kAuto && options.key_by.empty()) return true;
  return Fail(
      name, "partition", -1,
      absl::StrCat(Describe(kind, name), ": ", AV(what), " is always hash-partitioned on its ",
                   AV(on), ", it takes no partition"));
}

int JobBuilder::ResolveKeyedInput(std::string_view kind, std::string_view name,
                                  std::string_view what, const StreamRef& input,
                                  const std::vector<std::string>& key_by,
                                  const VertexOptions& options, std::vector<int>* key_fields) {
  if (error_) return -1;
  if (!CheckNewName(kind, name, "name", name)) return -1;
  const int in = ResolveInput(kind, name, "input", -1, input);
  if (in < 0) return -1;
  if (!CheckNoPartition(kind, name, what, "key_by", options)) return -1;
  if (key_by.empty()) {
    Fail(name, "key_by", -1,
         absl::StrCat(Describe(kind, name), ": key_by must list the fields that identify a key"));
    return -1;
  }
  VertexOptions keyed = options;
  keyed.key_by = key_by;
  if (!CheckVertexOptions(kind, name, keyed, streams_[in].schema, key_fields)) return -1;
  return in;
}

bool JobBuilder::CheckStateTtl(std::string_view kind, std::string_view name, int64_t state_ttl_ms) {
  if (state_ttl_ms >= 0) return true;
  return Fail(
      name, "state_ttl", -1,
      absl::StrCat(Describe(kind, name), ": state_ttl must be >= 0 (0 = kept forever), got ",
                   FormatDuration(state_ttl_ms)));
}

bool JobBuilder::CheckSource(std::string_view name, const Schema& schema, int parallelism) {
  const std::string who = Describe("source", name);
  if (!CheckNewName("source", name, "name", name)) return false;
  if (schema.size() == 0) {
    return Fail(name, "schema", -1, absl::StrCat(who, ": the schema has no fields"));
  }
  for (size_t i = 0; i < schema.size(); ++i) {
    const std::string& field = schema.field(i).name;
    if (field.empty()) {
      return Fail(name, "schema", static_cast<int>(i),
                  absl::StrCat(who, ": schema field ", i + 1, " has an empty name"));
    }
    if (schema.IndexOf(field) != static_cast<int>(i)) {
      return Fail(name, "schema", static_cast<int>(i),
                  absl::StrCat(who, ": schema lists field '", field, "' twice"));
    }
  }
  if (parallelism < 0) {
    return Fail(name, "parallelism", -1,
                absl::StrCat(who, ": parallelism must be at least 1, got ", parallelism));
  }
  return true;
}

bool JobBuilder::CheckEventTime(std::string_view name, const Schema& schema,
                                const std::optional<EventTime>& event_time, int* time_index) {
  *time_index = -1;
  if (!event_time) return true;
  const std::string who = Describe("source", name);
  const EventTime& et = *event_time;
  if (et.field.empty()) {
    return FailKey(name, "event_time", "field",
                   absl::StrCat(who, ": event_time needs the field that holds the event time"));
  }
  const int index = schema.IndexOf(et.field);
  if (index < 0) {
    return FailKey(name, "event_time", "field",
                   absl::StrCat(who, ": event_time field '", et.field, "' is not in the schema ",
                                schema.DebugString()));
  }
  if (schema.field(index).type != FieldType::kTimestamp) {
    return FailKey(
        name, "event_time", "field",
        absl::StrCat(who, ": event_time field '", et.field, "' must be a timestamp, got ",
                     FieldTypeName(schema.field(index).type)));
  }
  if (et.max_out_of_orderness_ms < 0) {
    return FailKey(name, "event_time", "max_out_of_orderness",
                   absl::StrCat(who, ": max_out_of_orderness must be >= 0, got ",
                                FormatDuration(et.max_out_of_orderness_ms)));
  }
  if (et.idle_timeout_ms < 0) {
    return FailKey(name, "event_time", "idle_timeout",
                   absl::StrCat(who, ": idle_timeout must be >= 0 (0 = never idle), got ",
                                FormatDuration(et.idle_timeout_ms)));
  }
  if (et.watermark_interval_ms < 0) {
    return FailKey(name, "event_time", "watermark_interval",
                   absl::StrCat(who, ": watermark_interval must be >= 0 (0 = after every batch), got ",
                                FormatDuration(et.watermark_interval_ms)));
  }
  if (!et.alignment_group.empty()) {
    if (et.alignment_max_drift_ms <= 0) {
      return FailKey(name, "event_time", "alignment",
                     absl::StrCat(who, ": watermark alignment group '", et.alignment_group,
                                  "' needs a max_drift above 0, got ", FormatDuration(et.alignment_max_drift_ms)));
    }
    if (et.alignment_update_interval_ms <= 0) {
      return FailKey(name, "event_time", "alignment",
                     absl::StrCat(who, ": watermark alignment update_interval must be above 0, got ",
                                  FormatDuration(et.alignment_update_interval_ms)));
    }
  }
  *time_index = index;
  return true;
}

StreamRef JobBuilder::AddVertex(std::string_view kind, std::string_view name,
                                proto::OperatorSpec op, std::vector<Input> inputs,
                                const Schema* output, int output_time_index, int parallelism) {
  Vertex v;
  v.proto.set_id(static_cast<int>(vertices_.size()));
  v.proto.set_name(std::string(name));
  *v.proto.mutable_op() = std::move(op);
  if (!inputs.empty()) {
    *v.proto.mutable_input_schema() = streams_[inputs[0].stream].schema.ToProto();
  }
  for (const Input& in : inputs) {
    if (in.target_input == 1) {
      *v.proto.mutable_second_input_schema() = streams_[in.stream].schema.ToProto();
      break;
    }
  }
  if (output != nullptr) *v.proto.mutable_output_schema() = output->ToProto();
  // Always explicit, -1 included: 0 is a field index.
  v.proto.set_output_time_index(output != nullptr ? output_time_index : -1);
  v.kind = std::string(kind);
  v.parallelism = parallelism;
  v.inputs = std::move(inputs);
  const int id = v.proto.id();
  vertices_.push_back(std::move(v));
  owners_.emplace(std::string(name), Describe(kind, name));
  if (output == nullptr) return StreamRef();
  streams_.push_back(Stream{std::string(name), id, "", *output, output_time_index});
  return StreamRef(std::string(name));
}

StreamRef JobBuilder::AddKeyedVertex(std::string_view kind, std::string_view name, proto::OperatorSpec op,
                                     int input, const std::vector<int>& key_fields, std::vector<int> reads,
                                     const Schema& output, int output_time_index, int parallelism,
                                     const std::vector<int>& output_key_fields) {
  // The key's first fields (the most of them), if the input is partitioned
  // by them and not by the whole key: records of one value of them are all at
  // one subtask already.
  const std::vector<std::vector<int>>& partitionings = streams_[input].partitioned_by;
  size_t grouped = 0;
  if (std::find(partitionings.begin(), partitionings.end(), key_fields) == partitionings.end()) {
    for (const std::vector<int>& by : partitionings) {
      if (by.size() < key_fields.size() && std::equal(by.begin(), by.end(), key_fields.begin())) {
        grouped = std::max(grouped, by.size());
      }
    }
  }
  const std::vector<int> group_fields =
      grouped > 0 ? std::vector<int>(key_fields.begin(), key_fields.begin() + grouped) : key_fields;
  StreamRef out = AddVertex(kind, name, std::move(op),
                            {Input{input, 0, Partition::kAuto, group_fields,
                                   ReadsOnly(std::move(reads), streams_[input].schema.size())}},
                            &output, output_time_index, parallelism);
  if (grouped > 0) vertices_.back().proto.set_key_group_fields(static_cast<int>(grouped));
  if (output_key_fields.size() == key_fields.size()) {
    MarkPartitioned(input, group_fields,
                    std::vector<int>(output_key_fields.begin(), output_key_fields.begin() + group_fields.size()));
  }
  return out;
}

bool JobBuilder::Partitioned(int stream, const std::vector<int>& parallelism) const {
  const Stream& s = streams_[stream];
  if (s.partitioned_by.empty()) return false;
  const Vertex& v = vertices_[s.vertex];
  if (v.kind != "union" && v.kind != "filter") return true;
  // Its inputs are read forward when they have its parallelism (Union and
  // Filter pass partitioned_by on only for kAuto inputs).
  return std::all_of(v.inputs.begin(), v.inputs.end(), [&](const Input& in) {
    return parallelism[streams_[in.stream].vertex] == parallelism[s.vertex] && Partitioned(in.stream, parallelism);
  });
}

void JobBuilder::MarkPartitioned(int input, const std::vector<int>& key_fields, const std::vector<int>& output_fields) {
  if (error_ || streams_.empty() || key_fields.empty() || output_fields.size() != key_fields.size()) return;
  Stream& out = streams_.back();
  const Schema& in = streams_[input].schema;
  for (size_t i = 0; i < key_fields.size(); ++i) {
    const int f = output_fields[i];
    // The hash is of the encoded values: the same only for the same types.
    if (f < 0 || static_cast<size_t>(f) >= out.schema.size() ||
        out.schema.field(f).type != in.field(key_fields[i]).type) {
      return;
    }
  }
  if (std::find(out.partitioned_by.begin(), out.partitioned_by.end(), output_fields) == out.partitioned_by.end()) {
    out.partitioned_by.push_back(output_fields);
  }
}

std::vector<std::vector<bool>> JobBuilder::FieldsRead() const {
  std::vector<std::vector<bool>> read(streams_.size());
  for (size_t s = 0; s < streams_.size(); ++s) read[s].assign(streams_[s].schema.size(), false);
  // Streams are defined before their readers: backwards, a filter's readers
  // come before the filter.
  for (auto v = vertices_.rbegin(); v != vertices_.rend(); ++v) {
    for (const Input& in : v->inputs) {
      std::vector<bool>& fields = read[in.stream];
      for (int f : in.key_fields) fields[f] = true;
      const std::vector<int>& listed = in.expr_reads ? *in.expr_reads : in.reads;
      if (!in.expr_reads && in.reads.empty()) {
        fields.assign(fields.size(), true);
        continue;
      }
      for (int f : listed) fields[f] = true;
      if (!in.passes_rows) continue;
      for (size_t s = 0; s < streams_.size(); ++s) {
        if (streams_[s].vertex != v->proto.id() || !streams_[s].side_output.empty()) continue;
        for (size_t f = 0; f < fields.size(); ++f) fields[f] = fields[f] || read[s][f];
      }
    }
  }
  return read;
}

const Schema* JobBuilder::StreamSchema(std::string_view name) const {
  for (const Stream& s : streams_) {
    if (s.name == name) return &s.schema;
  }
  return nullptr;
}

StreamRef JobBuilder::FileSource(std::string_view name, std::string_view path,
                                 std::string_view format, const Schema& schema,
                                 const FileSourceOptions& options) {
  if (error_) return {};
  const std::string who = Describe("source", name);
  const bool hl7 = format == "hl7v2";
  if (format == "fhir") {
    // FHIR Observations become the observation rows (runtime/formats/fhir.h).
    const Schema rows = Hl7ObservationSchema();
    if (schema.size() != 0 && schema.DebugString() != rows.DebugString()) {
      Fail(name, "schema", -1,
           absl::StrCat(who, ": format fhir makes rows of the schema ", rows.DebugString(), "; leave the schema out"));
      return {};
    }
    if (schema.size() == 0) return FileSource(name, path, format, rows, options);
  }
  if (hl7) {
    // HL7 messages become rows of a fixed schema.
    const Schema rows = options.hl7_rows == Hl7Rows::kAdmissions ? Hl7AdmissionSchema() : Hl7ObservationSchema();
    if (schema.size() != 0 && schema.DebugString() != rows.DebugString()) {
      Fail(name, "schema", -1,
           absl::StrCat(who, ": format hl7v2 makes rows of the schema ", rows.DebugString(),
                        "; leave the schema out"));
      return {};
    }
    if (schema.size() == 0) return FileSource(name, path, format, rows, options);
    if (!CheckTimezone(name, options.hl7_default_offset_minutes)) return {};
  }
  if (!CheckSource(name, schema, options.parallelism)) return {};
  if (path.empty()) {
    Fail(name, "path", -1, absl::StrCat(who, ": path is empty"));
    return {};
  }
  const std::string abs_path = AbsolutePath(path);
  std::error_code ec;
  if (!std::filesystem::exists(abs_path, ec)) {
    Fail(name, "path", -1, absl::StrCat("input file '", abs_path, "' does not exist"));
    return {};
  }
  if (format != "csv" && format != "jsonl" && format != "fhir" && !hl7) {
    Fail(name, "format", -1,
         absl::StrCat(who, ": unknown format '", AV(format), "', expected one of csv, jsonl, hl7v2, fhir"));
    return {};
  }
  if (!(options.max_rate >= 0) || !std::isfinite(options.max_rate)) {
    Fail(name, "max_rate", -1,
         absl::StrCat(who, ": max_rate must be a number >= 0 (0 = unlimited), got ",
                      options.max_rate));
    return {};
  }
  if (!CheckDeadLetter(name, options.dead_letter)) return {};
  int time_index = -1;
  if (!CheckEventTime(name, schema, options.event_time, &time_index)) return {};

  proto::OperatorSpec op;
  proto::SourceSpec* src = op.mutable_source();
  src->set_connector("file");
  src->set_path(abs_path);
  src->set_format(std::string(format));
  src->set_max_rate(options.max_rate);
  src->set_dead_letter(options.dead_letter);
  if (hl7) {
    src->set_hl7_rows(options.hl7_rows == Hl7Rows::kAdmissions ? "admissions" : "observations");
    src->set_hl7_default_offset_minutes(options.hl7_default_offset_minutes);
  }
  SetEventTime(options.event_time, time_index, src);
  StreamRef out =
      AddVertex("source", name, std::move(op), {}, &schema, time_index, options.parallelism);
  AddDeadLetterStream(name, options.dead_letter);
  return out;
}

bool JobBuilder::CheckDeadLetter(std::string_view name, const std::string& dead_letter) {
  if (dead_letter.empty()) return true;
  if (dead_letter == name) {
    return Fail(name, "dead_letter", -1,
                absl::StrCat(Describe("source", name), ": the dead_letter stream needs a name of its own"));
  }
  return CheckNewName("source", name, "dead_letter", dead_letter);
}

void JobBuilder::AddDeadLetterStream(std::string_view name, const std::string& dead_letter) {
  if (dead_letter.empty()) return;
  streams_.push_back(Stream{dead_letter, vertices_.back().proto.id(), kDeadLetterOutput, DeadLetterSchema(), -1});
  owners_.emplace(dead_letter, absl::StrCat("the dead_letter stream of ", Describe("source", name)));
}

bool JobBuilder::CheckTimezone(std::string_view name, int offset_minutes) {
  if (offset_minutes >= -14 * 60 && offset_minutes <= 14 * 60) return true;
  return Fail(name, "timezone", -1,
              absl::StrCat(Describe("source", name), ": the time-zone offset must lie within 14 hours of UTC, got ",
                           offset_minutes, " minutes"));
}

StreamRef JobBuilder::PatientsSource(std::string_view name, const PatientsSourceOptions& options) {
  if (error_) return {};
  const std::string who = Describe("source", name);
  Schema schema = Hl7ObservationSchema();
  if (!CheckSource(name, schema, options.parallelism)) return {};
  const PatientOptions& o = options.simulation;
  if (absl::Status s = o.Validate(); !s.ok()) {
    Fail(name, "patients", -1, absl::StrCat(who, ": ", s.message()));
    return {};
  }
  int time_index = -1;
  if (!CheckEventTime(name, schema, options.event_time, &time_index)) return {};
  proto::OperatorSpec op;
  proto::SourceSpec* src = op.mutable_source();
  src->set_connector("patients");
  src->set_format(std::string(PatientFormatName(o.format)));
  src->set_count(o.count);
  src->set_seed(o.seed);
  proto::PatientsSpec* p = src->mutable_patients();
  p->set_patients(o.patients);
  p->set_interval_ms(o.interval_ms);
  p->set_speed(o.speed);
  p->set_start_ms(o.start_ms);
  p->set_deterioration_rate(o.deterioration_rate);
  p->set_sepsis_fraction(o.sepsis_fraction);
  p->set_missing(o.missing);
  p->set_duplicates(o.duplicates);
  p->set_late(o.late);
  SetEventTime(options.event_time, time_index, src);
  return AddVertex("source", name, std::move(op), {}, &schema, time_index, options.parallelism);
}

StreamRef JobBuilder::NexmarkSource(std::string_view name, const NexmarkSourceOptions& options) {
  if (error_) return {};
  const std::string who = Describe("source", name);
  Schema schema = NexmarkSchema();
  if (!CheckSource(name, schema, options.parallelism)) return {};
  const NexmarkOptions& o = options.generator;
  if (absl::Status s = o.Validate(); !s.ok()) {
    Fail(name, "nexmark", -1, absl::StrCat(who, ": ", s.message()));
    return {};
  }
  int time_index = -1;
  if (!CheckEventTime(name, schema, options.event_time, &time_index)) return {};
  proto::OperatorSpec op;
  proto::SourceSpec* src = op.mutable_source();
  src->set_connector("nexmark");
  src->set_count(o.count);
  src->set_rate(o.rate);
  src->set_seed(o.seed);
  proto::NexmarkSpec* nx = src->mutable_nexmark();
  nx->set_event_rate(o.event_rate);
  nx->set_base_time_ms(o.base_time_ms);
  nx->set_num_active_people(o.num_active_people);
  nx->set_num_in_flight_auctions(o.num_in_flight_auctions);
  nx->set_hot_auction_ratio(o.hot_auction_ratio);
  nx->set_hot_sellers_ratio(o.hot_sellers_ratio);
  nx->set_hot_bidders_ratio(o.hot_bidders_ratio);
  nx->set_avg_person_byte_size(o.avg_person_byte_size);
  nx->set_avg_auction_byte_size(o.avg_auction_byte_size);
  nx->set_avg_bid_byte_size(o.avg_bid_byte_size);
  SetEventTime(options.event_time, time_index, src);
  return AddVertex("source", name, std::move(op), {}, &schema, time_index, options.parallelism);
}

StreamRef JobBuilder::MllpSource(std::string_view name, const MllpSourceOptions& options) {
  if (error_) return {};
  const std::string who = Describe("source", name);
  Schema schema = options.hl7_rows == Hl7Rows::kAdmissions ? Hl7AdmissionSchema() : Hl7ObservationSchema();
  if (!CheckSource(name, schema, options.parallelism)) return {};
  if (!CheckTimezone(name, options.hl7_default_offset_minutes)) return {};
  if (options.port < 0 || options.port > 65535) {
    Fail(name, "port", -1, absl::StrCat(who, ": port must lie in 0..65535, got ", options.port));
    return {};
  }
  if (options.max_message_bytes < 0 || options.max_message_bytes > MllpSource::kMaxMessageBytesLimit) {
    Fail(name, "max_message_bytes", -1,
         absl::StrCat(who, ": max_message_bytes must lie in 1..", MllpSource::kMaxMessageBytesLimit, " (64 MiB), got ",
                      options.max_message_bytes));
    return {};
  }
  if (!CheckDeadLetter(name, options.dead_letter)) return {};
  int time_index = -1;
  if (!CheckEventTime(name, schema, options.event_time, &time_index)) return {};

  proto::OperatorSpec op;
  proto::SourceSpec* src = op.mutable_source();
  src->set_connector("mllp");
  src->set_format("hl7v2");
  src->set_port(options.port);
  src->set_host(options.host);
  src->set_max_message_bytes(options.max_message_bytes);
  src->set_dead_letter(options.dead_letter);
  src->set_hl7_rows(options.hl7_rows == Hl7Rows::kAdmissions ? "admissions" : "observations");
  src->set_hl7_default_offset_minutes(options.hl7_default_offset_minutes);
  SetEventTime(options.event_time, time_index, src);
  StreamRef out = AddVertex("source", name, std::move(op), {}, &schema, time_index, options.parallelism);
  AddDeadLetterStream(name, options.dead_letter);
  return out;
}

StreamRef JobBuilder::GeneratorSource(std::string_view name, const Schema& schema,
                                      const GeneratorOptions& options) {
  if (error_) return {};
  const std::string who = Describe("source", name);
  if (!CheckSource(name, schema, options.parallelism)) return {};
  if (options.count < -1) {
    Fail(name, "count", -1,
         absl::StrCat(who, ": count must be >= 0 (leave it out for an unbounded source), got ",
                      options.count));
    return {};
  }
  if (!(options.rate >= 0) || !std::isfinite(options.rate)) {
    Fail(name, "rate", -1,
         absl::StrCat(who, ": rate must be a number >= 0 (0 = as fast as possible), got ",
                      options.rate));
    return {};
  }

  int time_index = -1;
  if (!CheckEventTime(name, schema, options.event_time, &time_index)) return {};

  // One GeneratorField per schema column, in schema order, defaults filled in.
  std::vector<proto::GeneratorField> columns;
  for (const Field& f : schema.fields()) columns.push_back(DefaultGeneratorField(f));
  std::vector<bool> configured(schema.size(), false);
  for (size_t i = 0; i < options.fields.size(); ++i) {
    const GeneratorColumn& c = options.fields[i];
    const int index = static_cast<int>(i);
    const int col = schema.IndexOf(c.column);
    auto fail = [&](std::string_view what) {
      return Fail(name, "fields", index,
                  absl::StrCat(who, ": fields '", c.column, "': ", AV(what)));
    };
    if (col < 0) {
      fail(absl::StrCat("no such column, the schema has ", schema.DebugString()));
      return {};
    }
    if (configured[col]) {
      fail("listed twice");
      return {};
    }
    configured[col] = true;
    const FieldType type = schema.field(col).type;
    if (c.kind != "sequence" && c.kind != "uniform" && c.kind != "key" && c.kind != "constant") {
      fail(absl::StrCat("unknown kind '", c.kind,
                        "', expected one of sequence, uniform, key, constant"));
      return {};
    }
    if (!KindApplies(c.kind, type)) {
      fail(absl::StrCat("kind ", c.kind, " does not apply to a ", FieldTypeName(type),
                        " column, expected one of ", GeneratorKindsFor(type)));
      return {};
    }
    // Which settings each kind reads.
    const bool numeric_sequence = c.kind == "sequence" && type != FieldType::kString;
    const bool allows_min = numeric_sequence || c.kind == "uniform";
    const bool allows_max = c.kind == "uniform";
    const bool allows_cardinality = c.kind == "key";
    const bool allows_prefix =
        (c.kind == "sequence" || c.kind == "key") && type == FieldType::kString;
    const bool allows_value = c.kind == "constant";
    const char* unused = nullptr;
    if (c.min && !allows_min) unused = "min";
    if (c.max && !allows_max) unused = "max";
    if (c.cardinality && !allows_cardinality) unused = "cardinality";
    if (c.prefix && !allows_prefix) unused = "prefix";
    if (c.value && !allows_value) unused = "value";
    if (unused != nullptr) {
      fail(absl::StrCat("'", unused, "' does not apply to kind ", c.kind, " of a ",
                        FieldTypeName(type), " column"));
      return {};
    }

    proto::GeneratorField g;
    g.set_name(c.column);
    g.set_kind(c.kind);
    if (c.kind == "sequence") {
      g.set_min(c.min.value_or(0));
      g.set_prefix(c.prefix.value_or(""));
    } else if (c.kind == "uniform") {
      g.set_min(c.min.value_or(0));
      g.set_max(c.max.value_or(DefaultUniformMax(type)));
      if (g.min() > g.max()) {
        fail(absl::StrCat("min ", g.min(), " is greater than max ", g.max()));
        return {};
      }
      if (type == FieldType::kBool && (g.min() < 0 || g.max() > 1)) {
        fail("a bool column takes min and max in 0..1");
        return {};
      }
    } else if (c.kind == "key") {
      g.set_cardinality(c.cardinality.value_or(1000));
      g.set_prefix(c.prefix.value_or(type == FieldType::kString ? "k" : ""));
      if (g.cardinality() < 1) {
        fail(absl::StrCat("cardinality must be at least 1, got ", g.cardinality()));
        return {};
      }
    } else {  // constant
      if (!c.value) {
        fail("kind constant needs a value");
        return {};
      }
      if (!ParsesAs(*c.value, type)) {
        fail(absl::StrCat("value '", *c.value, "' is not a valid ", FieldTypeName(type)));
        return {};
      }
      g.set_value(*c.value);
    }
    columns[col] = std::move(g);
  }

  proto::OperatorSpec op;
  proto::SourceSpec* src = op.mutable_source();
  src->set_connector("generator");
  src->set_count(options.count);
  src->set_rate(options.rate);
  src->set_seed(options.seed);
  for (auto& g : columns) *src->add_generator_fields() = std::move(g);
  SetEventTime(options.event_time, time_index, src);
  return AddVertex("source", name, std::move(op), {}, &schema, time_index, options.parallelism);
}

StreamRef JobBuilder::Filter(std::string_view name, const StreamRef& input, std::string_view where,
                             const VertexOptions& options) {
  if (error_) return {};
  const std::string who = Describe("filter", name);
  if (!CheckNewName("filter", name, "name", name)) return {};
  const int in = ResolveInput("filter", name, "input", -1, input);
  if (in < 0) return {};
  const Schema input_schema = streams_[in].schema;
  size_t offset = 0;
  absl::StatusOr<Expression> expr = Expression::Compile(where, input_schema, &offset);
  if (!expr.ok()) {
    Fail(name, "where", -1, absl::StrCat(who, ": in where: ", expr.status().message()), offset);
    return {};
  }
  if (expr->type() != FieldType::kBool) {
    Fail(name, "where", -1,
         absl::StrCat(who, ": where must be a bool expression, got ", FieldTypeName(expr->type())),
         0);
    return {};
  }
  std::vector<int> key_fields;
  if (!CheckVertexOptions("filter", name, options, input_schema, &key_fields)) return {};
  proto::OperatorSpec op;
  op.mutable_filter()->set_where(std::string(where));
  const bool forward = options.partition == Partition::kAuto && key_fields.empty();
  StreamRef out = AddVertex("filter", name, std::move(op),
                            {Input{in, 0, options.partition, std::move(key_fields), {}, expr->fields(), true}},
                            &input_schema, streams_[in].time_index, options.parallelism);
  // Partitioned streams: what it passes on stays where it was, when it reads
  // its input forward (Build() checks the parallelism: Partitioned).
  if (forward) streams_.back().partitioned_by = streams_[in].partitioned_by;
  return out;
}

StreamRef JobBuilder::Map(std::string_view name, const StreamRef& input,
                          const std::vector<NamedExpr>& select, const VertexOptions& options) {
  if (error_) return {};
  const std::string who = Describe("map", name);
  if (!CheckNewName("map", name, "name", name)) return {};
  const int in = ResolveInput("map", name, "input", -1, input);
  if (in < 0) return {};
  const Schema input_schema = streams_[in].schema;
  if (select.empty()) {
    Fail(name, "select", -1, absl::StrCat(who, ": select names no fields"));
    return {};
  }
  Schema output;
  proto::OperatorSpec op;
  std::vector<int> expr_reads;
  // The event time survives a map that copies the field as it is.
  const int input_time = streams_[in].time_index;
  int time_index = -1;
  for (size_t i = 0; i < select.size(); ++i) {
    const NamedExpr& p = select[i];
    const int index = static_cast<int>(i);
    if (p.name.empty()) {
      Fail(name, "select", index, absl::StrCat(who, ": select field ", i + 1, " has no name"));
      return {};
    }
    if (output.IndexOf(p.name) >= 0) {
      Fail(name, "select", index, absl::StrCat(who, ": select lists '", p.name, "' twice"));
      return {};
    }
    size_t offset = 0;
    absl::StatusOr<Expression> expr = Expression::Compile(p.expr, input_schema, &offset);
    if (!expr.ok()) {
      Fail(name, "select", index,
           absl::StrCat(who, ": in select '", p.name, "': ", expr.status().message()), offset);
      return {};
    }
    if (time_index < 0 && input_time >= 0 &&
        BareIdentifier(p.expr) == input_schema.field(input_time).name) {
      time_index = static_cast<int>(output.size());
    }
    output.Add(p.name, expr->type());
    expr_reads.insert(expr_reads.end(), expr->fields().begin(), expr->fields().end());
    proto::Projection* proj = op.mutable_map()->add_select();
    proj->set_name(p.name);
    proj->set_expr(p.expr);
  }
  std::vector<int> key_fields;
  if (!CheckVertexOptions("map", name, options, input_schema, &key_fields)) return {};
  return AddVertex("map", name, std::move(op),
                   {Input{in, 0, options.partition, std::move(key_fields), {}, std::move(expr_reads)}}, &output,
                   time_index, options.parallelism);
}

StreamRef JobBuilder::Union(std::string_view name, const std::vector<StreamRef>& inputs,
                            const VertexOptions& options) {
  if (error_) return {};
  const std::string who = Describe("union", name);
  if (!CheckNewName("union", name, "name", name)) return {};
  if (inputs.size() < 2) {
    Fail(name, "inputs", -1, absl::StrCat(who, ": inputs must list at least two streams"));
    return {};
  }
  std::vector<int> in;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int index = static_cast<int>(i);
    const int s = ResolveInput("union", name, "inputs", index, inputs[i]);
    if (s < 0) return {};
    for (int seen : in) {
      if (seen == s) {
        Fail(name, "inputs", index,
             absl::StrCat(who, ": inputs lists '", inputs[i].name, "' twice"));
        return {};
      }
    }
    in.push_back(s);
    const Stream& first = streams_[in[0]];
    const Stream& cur = streams_[s];
    std::string difference;
    if (cur.schema.size() != first.schema.size()) {
      difference = absl::StrCat("'", cur.name, "' has ", cur.schema.size(), " fields, '",
                                first.name, "' has ", first.schema.size());
    } else {
      for (size_t f = 0; f < cur.schema.size() && difference.empty(); ++f) {
        const Field& a = first.schema.field(f);
        const Field& b = cur.schema.field(f);
        if (a.name != b.name) {
          difference = absl::StrCat("field ", f + 1, " is '", b.name, "' in '", cur.name, "' but '",
                                    a.name, "' in '", first.name, "'");
        } else if (a.type != b.type) {
          difference =
              absl::StrCat("field '", a.name, "' is ", FieldTypeName(b.type), " in '", cur.name,
                           "' but ", FieldTypeName(a.type), " in '", first.name, "'");
        }
      }
    }
    if (!difference.empty()) {
      Fail(name, "inputs", index,
           absl::StrCat(who, ": inputs must have identical schemas, but ", difference, " (",
                        cur.schema.DebugString(), " vs ", first.schema.DebugString(), ")"));
      return {};
    }
    // Identical schemas: the same time field name is the same index.
    if (cur.time_index != first.time_index) {
      auto has = [](const Stream& st) {
        return st.time_index < 0
                   ? std::string("none")
                   : absl::StrCat("event time '", st.schema.field(st.time_index).name, "'");
      };
      Fail(name, "inputs", index,
           absl::StrCat(who, ": inputs must agree on event time, but '", cur.name, "' has ",
                        has(cur), " and '", first.name, "' has ", has(first)));
      return {};
    }
  }
  const Schema schema = streams_[in[0]].schema;
  std::vector<int> key_fields;
  if (!CheckVertexOptions("union", name, options, schema, &key_fields)) return {};
  proto::OperatorSpec op;
  op.mutable_union_();
  std::vector<Input> union_inputs;
  for (int s : in) union_inputs.push_back(Input{s, 0, options.partition, key_fields});
  StreamRef out = AddVertex("union", name, std::move(op), std::move(union_inputs), &schema,
                            streams_[in[0]].time_index, options.parallelism);
  // Partitioned streams: a union of streams partitioned alike, read forward,
  // is partitioned as they are (Build() checks the parallelism: Partitioned).
  const std::vector<std::vector<int>>& by = streams_[in[0]].partitioned_by;
  const bool alike = std::all_of(in.begin(), in.end(), [&](int s) { return streams_[s].partitioned_by == by; });
  if (!error_ && alike && options.partition == Partition::kAuto && key_fields.empty()) {
    streams_.back().partitioned_by = by;
  }
  return out;
}

bool JobBuilder::CheckAggregateCalls(
    std::string_view kind, std::string_view name, const std::vector<NamedExpr>& aggregates,
    const Schema& input_schema, std::string_view clash_note, Schema* output,
    google::protobuf::RepeatedPtrField<proto::AggregateCall>* calls, std::vector<int>* fields_read) {
  const std::string who = Describe(kind, name);
  if (aggregates.empty()) {
    return Fail(name, "aggregates", -1, absl::StrCat(who, ": aggregates names no aggregate"));
  }
  for (size_t i = 0; i < aggregates.size(); ++i) {
    const NamedExpr& a = aggregates[i];
    const int index = static_cast<int>(i);
    const std::string where = absl::StrCat(who, ": in aggregate '", a.name, "': ");
    if (a.name.empty()) {
      return Fail(name, "aggregates", index,
                  absl::StrCat(who, ": aggregate ", i + 1, " has no name"));
    }
    if (output->IndexOf(a.name) >= 0) {
      return Fail(
          name, "aggregates", index,
          absl::StrCat(who, ": output field '", a.name, "' is defined twice", AV(clash_note)));
    }
    size_t offset = 0;
    absl::StatusOr<AggregateCallText> call = ParseAggregateCall(a.expr, &offset);
    if (!call.ok()) {
      return Fail(name, "aggregates", index, absl::StrCat(where, call.status().message()), offset);
    }
    FieldType result = FieldType::kInt;
    if (call->arg.empty()) {
      if (call->func != "count") {
        return Fail(name, "aggregates", index,
                    absl::StrCat(where, call->func, " needs an argument, only count takes *"), 0);
      }
    } else {
      offset = 0;
      absl::StatusOr<Expression> arg = Expression::Compile(call->arg, input_schema, &offset);
      if (!arg.ok()) {
        return Fail(name, "aggregates", index, absl::StrCat(where, arg.status().message()),
                    call->arg_offset + offset);
      }
      fields_read->insert(fields_read->end(), arg->fields().begin(), arg->fields().end());
      std::string expected;
      if (!AggregateResultType(call->func, arg->type(), &result, &expected)) {
        return Fail(name, "aggregates", index,
                    absl::StrCat(where, call->func, " needs ", expected, " argument, got ",
                                 FieldTypeName(arg->type())),
                    call->arg_offset);
      }
    }
    output->Add(a.name, result);
    proto::AggregateCall* pc = calls->Add();
    pc->set_name(a.name);
    pc->set_func(call->func);
    pc->set_arg(call->arg);
    if (call->has_param) pc->set_param(call->param);
  }
  return true;
}

StreamRef JobBuilder::Aggregate(std::string_view name, const StreamRef& input,
                                const std::vector<std::string>& key_by,
                                const std::vector<NamedExpr>& aggregates,
                                const VertexOptions& options) {
  return Aggregate(name, input, AggregateOptions::On(key_by, aggregates), options);
}

StreamRef JobBuilder::Aggregate(std::string_view name, const StreamRef& input,
                                const AggregateOptions& aggregate, const VertexOptions& options) {
  const std::vector<std::string>& key_by = aggregate.key_by;
  std::vector<int> key_fields;
  const int in =
      ResolveKeyedInput("aggregate", name, "an aggregate", input, key_by, options, &key_fields);
  if (in < 0) return {};
  const Schema input_schema = streams_[in].schema;
  if (!CheckStateTtl("aggregate", name, aggregate.state_ttl_ms)) return {};

  const std::string who = Describe("aggregate", name);
  if (aggregate.state_ttl_ms > 0 && (aggregate.changelog || !aggregate.retract_field.empty())) {
    // An expired key would start over without retracting its old row, or
    // count a retraction against rows it no longer has.
    Fail(name, "state_ttl", -1,
         absl::StrCat(who, ": state_ttl cannot be combined with ", aggregate.changelog ? "changelog" : "retract_field",
                      ": an expired key's retractions would be wrong"));
    return {};
  }
  if (!aggregate.retract_field.empty()) {
    if (std::find(key_by.begin(), key_by.end(), aggregate.retract_field) != key_by.end()) {
      Fail(name, "retract_field", -1,
           absl::StrCat(who, ": retract_field '", aggregate.retract_field,
                        "' is also a key_by field, so a retraction would never meet the row it takes back"));
      return {};
    }
    const int f = input_schema.IndexOf(aggregate.retract_field);
    if (f < 0 || input_schema.field(f).type != FieldType::kBool) {
      Fail(name, "retract_field", -1,
                  absl::StrCat(who, ": retract_field '", aggregate.retract_field, "' ",
                               f < 0 ? "is not a field of the input" : "is not a bool field",
                               ", expected a bool field of ", input_schema.DebugString(),
                               " (such as the 'retract' of an aggregate with changelog: true)"));
      return {};
    }
    for (size_t i = 0; i < aggregate.aggregates.size(); ++i) {
      size_t offset = 0;
      absl::StatusOr<AggregateCallText> call = ParseAggregateCall(aggregate.aggregates[i].expr, &offset);
      if (call.ok() && !AccumulatorSet::Retractable(call->func)) {
        Fail(name, "aggregates", static_cast<int>(i),
                    absl::StrCat(who, ": in aggregate '", aggregate.aggregates[i].name, "': ",
                                 call->func, " cannot take a retracted row back out; with retract_field ",
                                 "use count, sum or avg"),
             0);
        return {};
      }
    }
  }
  Schema output;
  for (int k : key_fields) output.Add(input_schema.field(k).name, input_schema.field(k).type);
  proto::OperatorSpec op;
  proto::AggregateSpec* spec = op.mutable_aggregate();
  for (const std::string& k : key_by) spec->add_key_by(k);
  std::vector<int> reads = key_fields;
  if (!CheckAggregateCalls("aggregate", name, aggregate.aggregates, input_schema, "", &output,
                           spec->mutable_aggregates(), &reads)) {
    return {};
  }
  if (!aggregate.retract_field.empty()) reads.push_back(input_schema.IndexOf(aggregate.retract_field));
  if (aggregate.changelog) {
    if (output.IndexOf("retract") >= 0) {
      Fail(name, "changelog", -1,
                  absl::StrCat(who, ": changelog adds the output field 'retract', which is already ",
                               "a key field or an aggregate"));
      return {};
    }
    output.Add("retract", FieldType::kBool);
  }
  spec->set_state_ttl_ms(aggregate.state_ttl_ms);
  spec->set_changelog(aggregate.changelog);
  spec->set_retract_field(aggregate.retract_field);
  // A running aggregate's rows are updates, not events: no event time.
  // Its output starts with the key.
  return AddKeyedVertex("aggregate", name, std::move(op), in, key_fields, std::move(reads), output, -1,
                        options.parallelism, LeadingFields(key_fields.size()));
}

StreamRef JobBuilder::Process(std::string_view name, const StreamRef& input,
                              const ProcessOptions& process, const VertexOptions& options) {
  constexpr char kKind[] = "process";
  std::vector<int> key_fields;
  const int in = ResolveKeyedInput(kKind, name, "a process operator", input, process.key_by,
                                   options, &key_fields);
  if (in < 0) return {};
  const std::string who = Describe(kKind, name);
  const Schema input_schema = streams_[in].schema;
  const int input_time = streams_[in].time_index;
  if (!CheckStateTtl(kKind, name, process.state_ttl_ms)) return {};

  // The function: made here as in each subtask, to check its params and
  // learn its output. A function only a custom TaskManager knows needs a
  // declared output_schema instead.
  const ProcessFunctionRegistry& registry = ProcessFunctionRegistry::Global();
  const std::string fn_who = absl::StrCat(who, ": function '", process.function, "'");
  // An error of the function's: at the param it names, else at `function`.
  auto fail_function = [&](const absl::Status& status) {
    const std::string param = ParamOfError(status);
    const std::string message = absl::StrCat(fn_who, ": ", status.message());
    if (param.empty()) return Fail(name, "function", -1, message);
    return FailKey(name, "params", param, message);
  };
  std::optional<ProcessOutputSchema> computed;
  if (registry.Contains(process.function)) {
    absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> fn =
        registry.Create(process.function, ProcessParams(process.params));
    if (!fn.ok()) {
      fail_function(fn.status());
      return {};
    }
    absl::StatusOr<ProcessOutputSchema> out =
        (*fn)->OutputSchema(ProcessInput{input_schema, key_fields, input_time});
    if (!out.ok()) {
      fail_function(out.status());
      return {};
    }
    computed = std::move(*out);
  } else if (!process.output_schema) {
    Fail(name, "function", -1,
         absl::StrCat(who, ": unknown process function '", process.function, "', expected one of ",
                      absl::StrJoin(registry.Names(), ", "),
                      " (or declare output_schema for a function of a custom TaskManager)"));
    return {};
  }

  Schema output;
  int output_time = -1;
  if (process.output_schema) {
    const Schema& declared = *process.output_schema;
    if (declared.size() == 0) {
      Fail(name, "output_schema", -1, absl::StrCat(who, ": output_schema has no fields"));
      return {};
    }
    for (size_t i = 0; i < declared.size(); ++i) {
      const std::string& field = declared.field(i).name;
      if (field.empty()) {
        Fail(name, "output_schema", static_cast<int>(i),
             absl::StrCat(who, ": output_schema field ", i + 1, " has an empty name"));
        return {};
      }
      if (declared.IndexOf(field) != static_cast<int>(i)) {
        Fail(name, "output_schema", static_cast<int>(i),
             absl::StrCat(who, ": output_schema lists field '", field, "' twice"));
        return {};
      }
    }
    if (computed && declared.DebugString() != computed->schema.DebugString()) {
      Fail(name, "output_schema", -1,
           absl::StrCat(who, ": output_schema ", declared.DebugString(), " differs from ",
                        computed->schema.DebugString(), ", what function '", process.function,
                        "' produces"));
      return {};
    }
    output = declared;
    output_time = computed ? computed->time_index : -1;
  } else {
    output = computed->schema;
    output_time = computed->time_index;
  }

  if (!process.dead_letter.empty()) {
    if (process.dead_letter == name) {
      Fail(name, "dead_letter", -1,
           absl::StrCat(who, ": the dead_letter stream needs a name of its own"));
      return {};
    }
    if (!CheckNewName(kKind, name, "dead_letter", process.dead_letter)) return {};
  }

  proto::OperatorSpec op;
  proto::ProcessSpec* spec = op.mutable_process();
  spec->set_function(process.function);
  for (const auto& [k, v] : process.params) (*spec->mutable_params())[k] = v;
  for (const std::string& k : process.key_by) spec->add_key_by(k);
  spec->set_state_ttl_ms(process.state_ttl_ms);
  spec->set_time_field_index(input_time);
  spec->set_declared_output_schema(process.output_schema.has_value());
  // It reads every field of its input.
  StreamRef out = AddKeyedVertex(kKind, name, std::move(op), in, key_fields, {}, output, output_time,
                                 options.parallelism, computed ? computed->key_fields : std::vector<int>{});
  if (!process.dead_letter.empty()) {
    streams_.push_back(Stream{process.dead_letter, vertices_.back().proto.id(), kDeadLetterOutput,
                              DeadLetterSchema(), -1});
    owners_.emplace(process.dead_letter, absl::StrCat("the dead_letter stream of ", who));
  }
  return out;
}

StreamRef JobBuilder::Window(std::string_view name, const StreamRef& input,
                             const WindowOptions& window, const VertexOptions& options) {
  std::vector<int> key_fields;
  const int in =
      ResolveKeyedInput("window", name, "a window", input, window.key_by, options, &key_fields);
  if (in < 0) return {};
  const std::string who = Describe("window", name);
  const Schema input_schema = streams_[in].schema;
  const int input_time = streams_[in].time_index;
  for (size_t i = 0; i < window.key_by.size(); ++i) {
    if (window.key_by[i] == kWindowStart || window.key_by[i] == kWindowEnd) {
      Fail(name, "key_by", static_cast<int>(i),
           absl::StrCat(who, ": key field '", window.key_by[i],
                        "' would clash with the window's own field of that name; rename it in a "
                        "map first"));
      return {};
    }
  }

  // The extent: which sizes each kind takes.
  const char* kind_name = "tumbling";
  bool wants_size = true, wants_slide = false, wants_gap = false;
  switch (window.kind) {
    case WindowKind::kTumbling: break;
    case WindowKind::kSliding:
      kind_name = "sliding";
      wants_slide = true;
      break;
    case WindowKind::kSession:
      kind_name = "session";
      wants_size = false;
      wants_gap = true;
      break;
  }
  struct Extent {
    const char* key;
    int64_t ms;
    bool wanted;
  };
  for (const Extent& x :
       {Extent{"size", window.size_ms, wants_size}, Extent{"slide", window.slide_ms, wants_slide},
        Extent{"gap", window.gap_ms, wants_gap}}) {
    if (x.wanted && x.ms <= 0) {
      FailKey(name, "window", x.key,
              absl::StrCat(who, ": a ", kind_name, " window needs a ", x.key, " > 0, got ",
                           FormatDuration(x.ms)));
      return {};
    }
    if (!x.wanted && x.ms != 0) {
      FailKey(name, "window", x.key,
              absl::StrCat(who, ": ", x.key, " does not apply to a ", kind_name, " window"));
      return {};
    }
  }
  if (window.kind == WindowKind::kSliding && window.slide_ms > window.size_ms) {
    FailKey(
        name, "window", "slide",
        absl::StrCat(who, ": slide ", FormatDuration(window.slide_ms), " must not exceed size ",
                     FormatDuration(window.size_ms), ", or records would fall between windows"));
    return {};
  }

  // Time: event time needs an input that has it; lateness needs event time.
  const bool processing = window.time == WindowTime::kProcessing;
  if (!processing && input_time < 0) {
    Fail(name, "input", -1,
         absl::StrCat(who, " needs event time, but its input '", streams_[in].name,
                      "' has none: declare event_time on its source, or set time: processing"));
    return {};
  }
  if (window.allowed_lateness_ms < 0) {
    Fail(name, "allowed_lateness", -1,
         absl::StrCat(who, ": allowed_lateness must be >= 0, got ",
                      FormatDuration(window.allowed_lateness_ms)));
    return {};
  }
  if (processing && window.allowed_lateness_ms != 0) {
    Fail(name, "allowed_lateness", -1,
         absl::StrCat(who,
                      ": allowed_lateness applies only to time: event; nothing is late in "
                      "processing time"));
    return {};
  }
  if (!window.late_output.empty()) {
    if (processing) {
      Fail(name, "late_output", -1,
           absl::StrCat(who,
                        ": late_output applies only to time: event; nothing is late in "
                        "processing time"));
      return {};
    }
    if (window.late_output == name) {
      Fail(name, "late_output", -1,
           absl::StrCat(who, ": the late_output stream needs a name of its own"));
      return {};
    }
    if (!CheckNewName("window", name, "late_output", window.late_output)) return {};
  }

  Schema output;
  for (int k : key_fields) output.Add(input_schema.field(k).name, input_schema.field(k).type);
  output.Add(kWindowStart, FieldType::kTimestamp);
  output.Add(kWindowEnd, FieldType::kTimestamp);
  const int output_time = static_cast<int>(output.size()) - 1;  // window_end
  proto::OperatorSpec op;
  proto::WindowSpec* spec = op.mutable_window();
  std::vector<int> reads = key_fields;
  if (!CheckAggregateCalls("window", name, window.aggregates, input_schema,
                           " (a window's output is its key fields, window_start, window_end, "
                           "then its aggregates)",
                           &output, spec->mutable_aggregates(), &reads)) {
    return {};
  }
  if (!processing) reads.push_back(input_time);
  // Late records go to late_output whole.
  if (!window.late_output.empty()) reads.clear();
  for (const std::string& k : window.key_by) spec->add_key_by(k);
  spec->set_kind(kind_name);
  spec->set_size_ms(window.size_ms);
  spec->set_slide_ms(window.slide_ms);
  spec->set_gap_ms(window.gap_ms);
  spec->set_allowed_lateness_ms(window.allowed_lateness_ms);
  spec->set_late_output(window.late_output);
  spec->set_processing_time(processing);
  spec->set_time_field_index(processing ? -1 : input_time);
  // Its output starts with the key.
  StreamRef out = AddKeyedVertex("window", name, std::move(op), in, key_fields, std::move(reads), output,
                                 output_time, options.parallelism, LeadingFields(key_fields.size()));
  if (!window.late_output.empty()) {
    streams_.push_back(Stream{window.late_output, vertices_.back().proto.id(), kLateOutput,
                              input_schema, input_time});
    owners_.emplace(window.late_output, absl::StrCat("the late_output stream of ", who));
  }
  return out;
}

bool JobBuilder::ResolveJoinKeys(std::string_view kind, std::string_view name,
                                 const std::vector<std::string>& key_by,
                                 const std::vector<std::string>& first_key,
                                 const std::vector<std::string>& second_key,
                                 std::string_view first_field, std::string_view second_field,
                                 std::string_view first_role, std::string_view second_role,
                                 int first, int second, std::vector<int>* first_fields,
                                 std::vector<int>* second_fields) {
  const std::string who = Describe(kind, name);
  if (!key_by.empty() && (!first_key.empty() || !second_key.empty())) {
    return Fail(name, first_key.empty() ? second_field : first_field, -1,
                absl::StrCat(who, ": set either key_by or ", AV(first_field), " and ",
                             AV(second_field), ", not both"));
  }
  if (key_by.empty()) {
    if (first_key.empty() && second_key.empty()) {
      return Fail(name, "key_by", -1,
                  absl::StrCat(who, ": needs key_by, or ", AV(first_field), " and ",
                               AV(second_field), ", to say which records match"));
    }
    if (first_key.empty() || second_key.empty()) {
      const std::string_view given = first_key.empty() ? second_field : first_field;
      const std::string_view missing = first_key.empty() ? first_field : second_field;
      return Fail(name, given, -1,
                  absl::StrCat(who, ": ", AV(given), " needs ", AV(missing),
                               ", the matching key fields of the other input in the same order"));
    }
    if (first_key.size() != second_key.size()) {
      return Fail(name, second_field, -1,
                  absl::StrCat(who, ": ", AV(first_field), " has ", first_key.size(),
                               " fields but ", AV(second_field), " has ", second_key.size()));
    }
  }
  const bool shared = !key_by.empty();
  const std::vector<std::string>& firsts = shared ? key_by : first_key;
  const std::vector<std::string>& seconds = shared ? key_by : second_key;
  const Stream& a = streams_[first];
  const Stream& b = streams_[second];
  first_fields->clear();
  second_fields->clear();
  // Looks up key i of one side; the error goes to that side's key list.
  auto lookup = [&](const std::vector<std::string>& keys, size_t i, const Stream& st,
                    std::string_view role, std::string_view field, std::vector<int>* fields) {
    const int index = static_cast<int>(i);
    const int idx = st.schema.IndexOf(keys[i]);
    if (idx < 0) {
      return Fail(name, field, index,
                  absl::StrCat(who, ": unknown key field '", keys[i], "' in the ", AV(role),
                               " input '", st.name, "', which has ", st.schema.DebugString()));
    }
    for (int seen : *fields) {
      if (seen == idx) {
        return Fail(name, field, index,
                    absl::StrCat(who, ": ", AV(field), " lists '", keys[i], "' twice"));
      }
    }
    fields->push_back(idx);
    return true;
  };
  for (size_t i = 0; i < firsts.size(); ++i) {
    if (!lookup(firsts, i, a, first_role, shared ? "key_by" : first_field, first_fields) ||
        !lookup(seconds, i, b, second_role, shared ? "key_by" : second_field, second_fields)) {
      return false;
    }
    const FieldType ta = a.schema.field(first_fields->back()).type;
    const FieldType tb = b.schema.field(second_fields->back()).type;
    if (ta != tb) {
      return Fail(name, shared ? "key_by" : second_field, static_cast<int>(i),
                  absl::StrCat(who, ": key field '", seconds[i], "' is ", FieldTypeName(tb),
                               " in '", b.name, "' but '", firsts[i], "' is ", FieldTypeName(ta),
                               " in '", a.name, "'; keys must have the same types"));
    }
  }
  return true;
}

StreamRef JobBuilder::IntervalJoin(std::string_view name, const StreamRef& left,
                                   const StreamRef& right, const IntervalJoinOptions& join,
                                   const VertexOptions& options) {
  if (error_) return {};
  constexpr char kKind[] = "interval_join";
  const std::string who = Describe(kKind, name);
  if (!CheckNewName(kKind, name, "name", name)) return {};
  const int l = ResolveInput(kKind, name, "left", -1, left);
  if (l < 0) return {};
  const int r = ResolveInput(kKind, name, "right", -1, right);
  if (r < 0) return {};
  if (!CheckNoPartition(kKind, name, "an interval_join", "keys", options)) return {};
  std::vector<int> unused;
  if (!CheckVertexOptions(kKind, name, options, streams_[l].schema, &unused)) return {};
  std::vector<int> left_fields, right_fields;
  if (!ResolveJoinKeys(kKind, name, join.key_by, join.left_key, join.right_key, "left_key",
                       "right_key", "left", "right", l, r, &left_fields, &right_fields)) {
    return {};
  }
  const std::pair<int, const char*> sides[] = {{l, "left"}, {r, "right"}};
  for (const auto& [s, role] : sides) {
    if (streams_[s].time_index < 0) {
      Fail(name, role, -1,
           absl::StrCat(who, " needs event time on both inputs, but its ", role, " input '",
                        streams_[s].name, "' has none: declare event_time on its source"));
      return {};
    }
  }
  if (join.lower_ms > join.upper_ms) {
    Fail(name, "between", -1,
         absl::StrCat(who, ": between's lower bound ", FormatDuration(join.lower_ms),
                      " is greater than its upper bound ", FormatDuration(join.upper_ms)));
    return {};
  }

  const Stream& ls = streams_[l];
  const Stream& rs = streams_[r];
  Schema output = ls.schema;
  std::string clash;
  if (!AppendRenamed(rs.schema, {}, rs.name, &output, &clash)) {
    Fail(name, "right", -1,
         absl::StrCat(who, ": the right field '", clash, "' is renamed '", rs.name, "_", clash,
                      "' because the left input has a '", clash,
                      "', but that name is taken too; rename one of them in a map first"));
    return {};
  }
  proto::OperatorSpec op;
  proto::IntervalJoinSpec* spec = op.mutable_interval_join();
  for (int k : left_fields) spec->add_left_key(ls.schema.field(k).name);
  for (int k : right_fields) spec->add_right_key(rs.schema.field(k).name);
  spec->set_lower_ms(join.lower_ms);
  spec->set_upper_ms(join.upper_ms);
  spec->set_left_time_index(ls.time_index);
  spec->set_right_time_index(rs.time_index);
  const int output_time = ls.time_index;
  const int left_width = static_cast<int>(ls.schema.size());  // ls dangles once AddVertex adds a stream
  StreamRef out = AddVertex(kKind, name, std::move(op),
                            {Input{l, 0, Partition::kAuto, left_fields}, Input{r, 1, Partition::kAuto, right_fields}},
                            &output, output_time, options.parallelism);
  // Partitioned streams: each output row is where its key's hash put both
  // sides, and holds the key twice, as the left fields (first) and the right.
  std::vector<int> right_output_fields;
  for (int k : right_fields) right_output_fields.push_back(left_width + k);
  MarkPartitioned(l, left_fields, left_fields);
  MarkPartitioned(r, right_fields, right_output_fields);
  return out;
}

StreamRef JobBuilder::BroadcastJoin(std::string_view name, const StreamRef& input,
                                    const StreamRef& broadcast, const BroadcastJoinOptions& join,
                                    const VertexOptions& options) {
  if (error_) return {};
  constexpr char kKind[] = "broadcast_join";
  const std::string who = Describe(kKind, name);
  if (!CheckNewName(kKind, name, "name", name)) return {};
  const int m = ResolveInput(kKind, name, "input", -1, input);
  if (m < 0) return {};
  const int b = ResolveInput(kKind, name, "broadcast", -1, broadcast);
  if (b < 0) return {};
  std::vector<int> main_fields, broadcast_fields;
  if (!ResolveJoinKeys(kKind, name, join.key_by, join.main_key, join.broadcast_key, "main_key",
                       "broadcast_key", "main", "broadcast", m, b, &main_fields,
                       &broadcast_fields)) {
    return {};
  }
  std::vector<int> key_fields;
  if (!CheckVertexOptions(kKind, name, options, streams_[m].schema, &key_fields)) return {};

  const Stream& ms = streams_[m];
  const Stream& bs = streams_[b];
  Schema output = ms.schema;
  std::string clash;
  if (!AppendRenamed(bs.schema, broadcast_fields, bs.name, &output, &clash)) {
    Fail(name, "broadcast", -1,
         absl::StrCat(who, ": the broadcast field '", clash, "' is renamed '", bs.name, "_", clash,
                      "' because the main input has a '", clash,
                      "', but that name is taken too; rename one of them in a map first"));
    return {};
  }
  proto::OperatorSpec op;
  proto::BroadcastJoinSpec* spec = op.mutable_broadcast_join();
  for (int k : main_fields) spec->add_main_key(ms.schema.field(k).name);
  for (int k : broadcast_fields) spec->add_broadcast_key(bs.schema.field(k).name);
  const int output_time = ms.time_index;
  return AddVertex(kKind, name, std::move(op),
                   {Input{m, 0, options.partition, std::move(key_fields)},
                    Input{b, 1, Partition::kBroadcast, {}}},
                   &output, output_time, options.parallelism);
}

void JobBuilder::Sink(std::string_view name, const StreamRef& input, const SinkOptions& sink,
                      const VertexOptions& options) {
  if (error_) return;
  const std::string who = Describe("sink", name);
  if (!CheckNewName("sink", name, "name", name)) return;
  const int in = ResolveInput("sink", name, "input", -1, input);
  if (in < 0) return;
  const Schema input_schema = streams_[in].schema;
  const std::string& c = sink.connector;
  if (c != "file" && c != "stdout" && c != "blackhole") {
    Fail(name, "connector", -1,
         absl::StrCat(who, ": unknown connector '", c,
                      "', expected one of file, stdout, blackhole"));
    return;
  }
  proto::OperatorSpec op;
  proto::SinkSpec* spec = op.mutable_sink();
  spec->set_connector(c);
  if (c == "file") {
    if (sink.path.empty()) {
      Fail(name, "path", -1, absl::StrCat(who, ": connector file needs a path"));
      return;
    }
    spec->set_path(AbsolutePath(sink.path));
  } else if (!sink.path.empty()) {
    Fail(name, "path", -1, absl::StrCat(who, ": path applies only to connector file, not ", c));
    return;
  }
  if (c == "blackhole") {
    if (!sink.format.empty()) {
      Fail(name, "format", -1, absl::StrCat(who, ": connector blackhole takes no format"));
      return;
    }
  } else {
    const std::string format = sink.format.empty() ? "jsonl" : sink.format;
    if (format != "jsonl" && format != "csv" && format != "fhir") {
      Fail(name, "format", -1,
           absl::StrCat(who, ": unknown format '", format, "', expected one of jsonl, csv, fhir"));
      return;
    }
    if (format == "fhir") {
      if (auto writer = CreateRecordWriter(format, input_schema); !writer.ok()) {
        Fail(name, "format", -1, absl::StrCat(who, ": ", writer.status().message()));
        return;
      }
    }
    spec->set_format(format);
  }
  if (!(sink.max_rate >= 0) || !std::isfinite(sink.max_rate)) {
    Fail(
        name, "max_rate", -1,
        absl::StrCat(who, ": max_rate must be a number >= 0 (0 = unlimited), got ", sink.max_rate));
    return;
  }
  spec->set_max_rate(sink.max_rate);
  std::vector<int> key_fields;
  if (!CheckVertexOptions("sink", name, options, input_schema, &key_fields)) return;
  AddVertex("sink", name, std::move(op), {Input{in, 0, options.partition, std::move(key_fields)}},
            nullptr, -1, options.parallelism);
}

bool JobBuilder::CheckCheckpointing(std::string_view who) {
  const CheckpointingOptions& c = checkpointing_;
  auto fail = [&](std::string_view key, std::string_view message) {
    return FailKey("", "checkpointing", key,
                   absl::StrCat(AV(who), ": checkpointing ", AV(key), " ", AV(message)));
  };
  if (c.interval_ms < 0) {
    return fail("interval", absl::StrCat("must be >= 0 (0 = no checkpoints), got ",
                                         FormatDuration(c.interval_ms)));
  }
  if (c.interval_ms > 0 && c.interval_ms < kMinCheckpointIntervalMs) {
    return fail("interval", absl::StrCat("must be at least ", kMinCheckpointIntervalMs,
                                         "ms, got ", FormatDuration(c.interval_ms)));
  }
  if (c.timeout_ms <= 0) {
    return fail("timeout", absl::StrCat("must be > 0, got ", FormatDuration(c.timeout_ms)));
  }
  if (c.max_concurrent < 1) {
    return fail("max_concurrent", absl::StrCat("must be at least 1, got ", c.max_concurrent));
  }
  if (c.min_pause_ms < 0) {
    return fail("min_pause", absl::StrCat("must be >= 0, got ", FormatDuration(c.min_pause_ms)));
  }
  if (c.retained < 1) {
    return fail("retained", absl::StrCat("must be at least 1, got ", c.retained));
  }
  if (c.aligned_timeout_ms < 0) {
    return fail("aligned_timeout", absl::StrCat("must be >= 0 (0 = never), got ", FormatDuration(c.aligned_timeout_ms)));
  }
  if ((c.unaligned || c.aligned_timeout_ms > 0) && c.max_concurrent > 1) {
    return fail("max_concurrent", absl::StrCat("must be 1 with unaligned checkpoints (an unaligned barrier would "
                                               "overtake the one before it), got ", c.max_concurrent));
  }
  if (c.mode == CheckpointingMode::kAtLeastOnce && (c.unaligned || c.aligned_timeout_ms > 0)) {
    return fail(c.unaligned ? "unaligned" : "aligned_timeout",
                "needs mode exactly_once (at_least_once never holds records back, so there is nothing to overtake)");
  }
  if (!c.storage.empty()) {
    // Read by the JobManager and the TaskManagers, not here: it must be
    // absolute, and local directories are all this version stores to.
    std::string_view path = c.storage;
    if (path.substr(0, 7) == "file://") path.remove_prefix(7);
    if (path.empty() || path.front() != '/') {
      return fail("storage", absl::StrCat("must be file:///ABSOLUTE/DIR or an absolute path, got '",
                                          c.storage, "'"));
    }
    checkpointing_.storage =
        absl::StrCat("file://", std::filesystem::path(path).lexically_normal().string());
    if (checkpointing_.storage.size() > 8 && checkpointing_.storage.back() == '/') {
      checkpointing_.storage.pop_back();
    }
  }
  return true;
}

absl::StatusOr<proto::JobGraph> JobBuilder::Build() {
  if (error_) return error_->status;
  const std::string who = absl::StrCat("job '", job_name_, "'");
  if (max_parallelism_ < 1 || max_parallelism_ > kMaxMaxParallelism) {
    Fail("", "max_parallelism", -1,
         absl::StrCat(who, ": max_parallelism must be in 1..", kMaxMaxParallelism, ", got ",
                      max_parallelism_));
    return error_->status;
  }
  if (parallelism_ < 1 || parallelism_ > max_parallelism_) {
    Fail("", "parallelism", -1,
         absl::StrCat(who, ": parallelism must be in 1..", max_parallelism_,
                      " (max_parallelism), got ", parallelism_));
    return error_->status;
  }
  if (buffer_timeout_ms_ < 0) {
    Fail("", "buffer_timeout", -1,
         absl::StrCat(who, ": buffer_timeout must be >= 0, got ", buffer_timeout_ms_, "ms"));
    return error_->status;
  }
  if (latency_marker_interval_ms_ < 0) {
    Fail("", "latency_markers", -1,
         absl::StrCat(who, ": latency_markers must be >= 0 (0: off), got ", latency_marker_interval_ms_, "ms"));
    return error_->status;
  }
  if (!CheckCheckpointing(who)) return error_->status;
  bool has_source = false;
  bool has_sink = false;
  for (const Vertex& v : vertices_) {
    has_source |= v.kind == "source";
    has_sink |= v.kind == "sink";
  }
  if (!has_source) {
    Fail("", "sources", -1, absl::StrCat(who, " has no source"));
    return error_->status;
  }
  if (!has_sink) {
    Fail("", "sinks", -1, absl::StrCat(who, " has no sink"));
    return error_->status;
  }

  proto::JobGraph graph;
  graph.set_name(job_name_);
  graph.set_max_parallelism(max_parallelism_);
  graph.set_buffer_timeout_ms(buffer_timeout_ms_);
  graph.set_latency_marker_interval_ms(latency_marker_interval_ms_);
  proto::CheckpointingSpec* ckpt = graph.mutable_checkpointing();
  *graph.mutable_restart() = restart_;
  ckpt->set_interval_ms(checkpointing_.interval_ms);
  ckpt->set_mode(checkpointing_.mode == CheckpointingMode::kAtLeastOnce ? proto::AT_LEAST_ONCE
                                                                        : proto::EXACTLY_ONCE);
  ckpt->set_timeout_ms(checkpointing_.timeout_ms);
  ckpt->set_max_concurrent(checkpointing_.max_concurrent);
  ckpt->set_min_pause_ms(checkpointing_.min_pause_ms);
  ckpt->set_retained(checkpointing_.retained);
  ckpt->set_unaligned(checkpointing_.unaligned);
  ckpt->set_aligned_timeout_ms(checkpointing_.unaligned ? 0 : checkpointing_.aligned_timeout_ms);
  ckpt->set_storage(checkpointing_.storage);
  const std::vector<std::vector<bool>> fields_read = FieldsRead();
  std::vector<int> parallelism;
  for (const Vertex& v : vertices_) {
    const std::string& name = v.proto.name();
    const int p = v.parallelism > 0 ? v.parallelism : parallelism_;
    if (p > max_parallelism_) {
      Fail(name, "parallelism", -1,
           absl::StrCat(Describe(v.kind, name), ": parallelism ", p, " exceeds max_parallelism ",
                        max_parallelism_));
      return error_->status;
    }
    parallelism.push_back(p);
    proto::JobVertex* pv = graph.add_vertices();
    *pv = v.proto;
    pv->set_parallelism(p);
    pv->set_max_parallelism(max_parallelism_);
    // Projection pushdown, for the connectors that support it.
    if (projection_pushdown_ && pv->op().has_source() &&
        (pv->op().source().connector() == "nexmark" || pv->op().source().connector() == "generator")) {
      for (size_t s = 0; s < streams_.size(); ++s) {
        if (streams_[s].vertex != v.proto.id() || !streams_[s].side_output.empty()) continue;
        std::vector<bool> fields = fields_read[s];
        if (streams_[s].time_index >= 0) fields[streams_[s].time_index] = true;  // for its watermarks
        if (std::find(fields.begin(), fields.end(), false) == fields.end()) continue;
        for (size_t f = 0; f < fields.size(); ++f) {
          if (fields[f]) pv->mutable_op()->mutable_source()->add_reads(static_cast<int>(f));
        }
      }
    }

    for (const Input& in : v.inputs) {
      const Stream& stream = streams_[in.stream];
      const int producer_p = parallelism[stream.vertex];
      proto::JobEdge* edge = graph.add_edges();
      edge->set_source(stream.vertex);
      edge->set_target(v.proto.id());
      edge->set_side_output(stream.side_output);
      edge->set_target_input(in.target_input);
      if (!in.key_fields.empty()) {
        const auto& partitionings = stream.partitioned_by;
        if (std::find(partitionings.begin(), partitionings.end(), in.key_fields) != partitionings.end() &&
            producer_p == p && Partitioned(in.stream, parallelism)) {
          // Partitioned by this key at this parallelism already: each record
          // is at the subtask its key's hash would send it to.
          edge->set_partitioning(proto::FORWARD);
          continue;
        }
        edge->set_partitioning(proto::HASH);
        for (int k : in.key_fields) edge->add_key_fields(k);
        if (!in.reads.empty()) Project(stream.schema, in.reads, edge, pv);
        continue;
      }
      switch (in.partition) {
        case Partition::kAuto:
          edge->set_partitioning(producer_p == p ? proto::FORWARD : proto::REBALANCE);
          break;
        case Partition::kForward:
          if (producer_p != p) {
            Fail(name, "partition", -1,
                 absl::StrCat(Describe(v.kind, name),
                              ": partition forward needs equal parallelism, but input '",
                              stream.name, "' has ", producer_p, " subtasks and '", name, "' has ",
                              p));
            return error_->status;
          }
          edge->set_partitioning(proto::FORWARD);
          break;
        case Partition::kRebalance: edge->set_partitioning(proto::REBALANCE); break;
        case Partition::kBroadcast: edge->set_partitioning(proto::BROADCAST); break;
      }
    }
  }
  return graph;
}

}  // namespace vstream
