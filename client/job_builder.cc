#include "client/job_builder.h"

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
#include "state/key_groups.h"

namespace vstream {

// A named stream: a vertex's main output or one of its side outputs.
struct JobBuilder::Stream {
  std::string name;
  int vertex;
  std::string side_output;  // empty: the main output
  Schema schema;
};

// A vertex as defined; parallelism and edges are resolved by Build().
struct JobBuilder::Vertex {
  proto::JobVertex proto;  // everything but parallelism and max_parallelism
  std::string kind;        // "source", "filter", ..., for messages
  int parallelism;         // 0: the job's
  Partition partition;
  std::vector<int> key_fields;  // non-empty: HASH edges on these input fields
  std::vector<int> inputs;      // indexes into streams_
};

namespace {

// Flink's upper bound for max parallelism (2^15).
constexpr int kMaxMaxParallelism = 1 << 15;

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

bool IsNumeric(FieldType t) { return t == FieldType::kInt || t == FieldType::kDouble; }

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

}  // namespace

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
    error_ = BuildError{absl::InvalidArgumentError(AV(message)), std::string(vertex),
                        std::string(field), index, expr_offset};
  }
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

StreamRef JobBuilder::AddVertex(std::string_view kind, std::string_view name,
                                proto::OperatorSpec op, const std::vector<int>& inputs,
                                const Schema& input_schema, const Schema* output, int parallelism,
                                Partition partition, std::vector<int> key_fields) {
  Vertex v;
  v.proto.set_id(static_cast<int>(vertices_.size()));
  v.proto.set_name(std::string(name));
  *v.proto.mutable_op() = std::move(op);
  if (!inputs.empty()) *v.proto.mutable_input_schema() = input_schema.ToProto();
  if (output != nullptr) *v.proto.mutable_output_schema() = output->ToProto();
  v.kind = std::string(kind);
  v.parallelism = parallelism;
  v.partition = partition;
  v.key_fields = std::move(key_fields);
  v.inputs = inputs;
  const int id = v.proto.id();
  vertices_.push_back(std::move(v));
  owners_.emplace(std::string(name), Describe(kind, name));
  if (output == nullptr) return StreamRef();
  streams_.push_back(Stream{std::string(name), id, "", *output});
  return StreamRef(std::string(name));
}

StreamRef JobBuilder::FileSource(std::string_view name, std::string_view path,
                                 std::string_view format, const Schema& schema,
                                 const FileSourceOptions& options) {
  if (error_) return {};
  const std::string who = Describe("source", name);
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
  if (format != "csv" && format != "jsonl") {
    Fail(name, "format", -1,
         absl::StrCat(who, ": unknown format '", AV(format), "', expected one of csv, jsonl"));
    return {};
  }
  if (!(options.max_rate >= 0) || !std::isfinite(options.max_rate)) {
    Fail(name, "max_rate", -1,
         absl::StrCat(who, ": max_rate must be a number >= 0 (0 = unlimited), got ",
                      options.max_rate));
    return {};
  }
  if (!options.dead_letter.empty()) {
    if (options.dead_letter == name) {
      Fail(name, "dead_letter", -1,
           absl::StrCat(who, ": the dead_letter stream needs a name of its own"));
      return {};
    }
    if (!CheckNewName("source", name, "dead_letter", options.dead_letter)) return {};
  }

  proto::OperatorSpec op;
  proto::SourceSpec* src = op.mutable_source();
  src->set_connector("file");
  src->set_path(abs_path);
  src->set_format(std::string(format));
  src->set_max_rate(options.max_rate);
  src->set_dead_letter(options.dead_letter);
  StreamRef out = AddVertex("source", name, std::move(op), {}, Schema(), &schema,
                            options.parallelism, Partition::kAuto, {});
  if (!options.dead_letter.empty()) {
    streams_.push_back(Stream{options.dead_letter, vertices_.back().proto.id(), kDeadLetterOutput,
                              DeadLetterSchema()});
    owners_.emplace(options.dead_letter, absl::StrCat("the dead_letter stream of ", who));
  }
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
  return AddVertex("source", name, std::move(op), {}, Schema(), &schema, options.parallelism,
                   Partition::kAuto, {});
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
  return AddVertex("filter", name, std::move(op), {in}, input_schema, &input_schema,
                   options.parallelism, options.partition, std::move(key_fields));
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
    output.Add(p.name, expr->type());
    proto::Projection* proj = op.mutable_map()->add_select();
    proj->set_name(p.name);
    proj->set_expr(p.expr);
  }
  std::vector<int> key_fields;
  if (!CheckVertexOptions("map", name, options, input_schema, &key_fields)) return {};
  return AddVertex("map", name, std::move(op), {in}, input_schema, &output, options.parallelism,
                   options.partition, std::move(key_fields));
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
  }
  const Schema schema = streams_[in[0]].schema;
  std::vector<int> key_fields;
  if (!CheckVertexOptions("union", name, options, schema, &key_fields)) return {};
  proto::OperatorSpec op;
  op.mutable_union_();
  return AddVertex("union", name, std::move(op), in, schema, &schema, options.parallelism,
                   options.partition, std::move(key_fields));
}

StreamRef JobBuilder::Aggregate(std::string_view name, const StreamRef& input,
                                const std::vector<std::string>& key_by,
                                const std::vector<NamedExpr>& aggregates,
                                const VertexOptions& options) {
  if (error_) return {};
  const std::string who = Describe("aggregate", name);
  if (!CheckNewName("aggregate", name, "name", name)) return {};
  const int in = ResolveInput("aggregate", name, "input", -1, input);
  if (in < 0) return {};
  const Schema input_schema = streams_[in].schema;
  if (options.partition != Partition::kAuto || !options.key_by.empty()) {
    Fail(name, "partition", -1,
         absl::StrCat(who,
                      ": an aggregate is always hash-partitioned on its key_by, "
                      "it takes no partition"));
    return {};
  }
  if (key_by.empty()) {
    Fail(name, "key_by", -1,
         absl::StrCat(who, ": key_by must list the fields that identify a key"));
    return {};
  }
  VertexOptions keyed = options;
  keyed.key_by = key_by;
  std::vector<int> key_fields;
  if (!CheckVertexOptions("aggregate", name, keyed, input_schema, &key_fields)) return {};
  if (aggregates.empty()) {
    Fail(name, "aggregates", -1, absl::StrCat(who, ": aggregates names no aggregate"));
    return {};
  }

  Schema output;
  for (int k : key_fields) output.Add(input_schema.field(k).name, input_schema.field(k).type);
  proto::OperatorSpec op;
  proto::AggregateSpec* spec = op.mutable_aggregate();
  for (const std::string& k : key_by) spec->add_key_by(k);
  for (size_t i = 0; i < aggregates.size(); ++i) {
    const NamedExpr& a = aggregates[i];
    const int index = static_cast<int>(i);
    const std::string where = absl::StrCat(who, ": in aggregate '", a.name, "': ");
    if (a.name.empty()) {
      Fail(name, "aggregates", index, absl::StrCat(who, ": aggregate ", i + 1, " has no name"));
      return {};
    }
    if (output.IndexOf(a.name) >= 0) {
      Fail(name, "aggregates", index,
           absl::StrCat(who, ": output field '", a.name, "' is defined twice"));
      return {};
    }
    size_t offset = 0;
    absl::StatusOr<AggregateCallText> call = ParseAggregateCall(a.expr, &offset);
    if (!call.ok()) {
      Fail(name, "aggregates", index, absl::StrCat(where, call.status().message()), offset);
      return {};
    }
    FieldType result = FieldType::kInt;
    if (call->arg.empty()) {
      if (call->func != "count") {
        Fail(name, "aggregates", index,
             absl::StrCat(where, call->func, " needs an argument, only count takes *"), 0);
        return {};
      }
    } else {
      offset = 0;
      absl::StatusOr<Expression> arg = Expression::Compile(call->arg, input_schema, &offset);
      if (!arg.ok()) {
        Fail(name, "aggregates", index, absl::StrCat(where, arg.status().message()),
             call->arg_offset + offset);
        return {};
      }
      const FieldType t = arg->type();
      std::string wrong;  // non-empty: the argument type is not allowed
      if (call->func == "count") {
        result = FieldType::kInt;
      } else if (call->func == "sum") {
        if (IsNumeric(t))
          result = t;
        else
          wrong = "an int or double";
      } else if (call->func == "avg") {
        if (IsNumeric(t))
          result = FieldType::kDouble;
        else
          wrong = "an int or double";
      } else if (call->func == "min" || call->func == "max") {
        if (t != FieldType::kBool)
          result = t;
        else
          wrong = "an int, double, string or timestamp";
      } else {
        Fail(name, "aggregates", index,
             absl::StrCat(where, "unknown aggregate function '", call->func,
                          "', expected one of count, sum, min, max, avg"),
             0);
        return {};
      }
      if (!wrong.empty()) {
        Fail(name, "aggregates", index,
             absl::StrCat(where, call->func, " needs ", wrong, " argument, got ", FieldTypeName(t)),
             call->arg_offset);
        return {};
      }
    }
    output.Add(a.name, result);
    proto::AggregateCall* pc = spec->add_aggregates();
    pc->set_name(a.name);
    pc->set_func(call->func);
    pc->set_arg(call->arg);
  }
  return AddVertex("aggregate", name, std::move(op), {in}, input_schema, &output,
                   options.parallelism, Partition::kAuto, std::move(key_fields));
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
    if (format != "jsonl" && format != "csv") {
      Fail(name, "format", -1,
           absl::StrCat(who, ": unknown format '", format, "', expected one of jsonl, csv"));
      return;
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
  AddVertex("sink", name, std::move(op), {in}, input_schema, nullptr, options.parallelism,
            options.partition, std::move(key_fields));
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

    for (int s : v.inputs) {
      const Stream& stream = streams_[s];
      const int producer_p = parallelism[stream.vertex];
      proto::JobEdge* edge = graph.add_edges();
      edge->set_source(stream.vertex);
      edge->set_target(v.proto.id());
      edge->set_side_output(stream.side_output);
      if (!v.key_fields.empty()) {
        edge->set_partitioning(proto::HASH);
        for (int k : v.key_fields) edge->add_key_fields(k);
        continue;
      }
      switch (v.partition) {
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
