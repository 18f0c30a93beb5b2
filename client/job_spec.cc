#include "client/job_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/job_builder.h"
#include "common/absl_compat.h"
#include "common/yaml_mapping.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/clinical/score_model_function.h"
#include "runtime/operators/mllp_source.h"

namespace vstream {
namespace {

// "UTC", "Z", "+01:00", "-0530", "+1": minutes east of UTC, within 14 hours.
bool ParseUtcOffset(std::string_view text, int* minutes) {
  if (text == "UTC" || text == "Z" || text == "utc") {
    *minutes = 0;
    return true;
  }
  if (text.empty() || (text[0] != '+' && text[0] != '-')) return false;
  const int sign = text[0] == '-' ? -1 : 1;
  std::string digits;
  for (char c : text.substr(1)) {
    if (c == ':') continue;
    if (c < '0' || c > '9') return false;
    digits.push_back(c);
  }
  int hh = 0, mm = 0;
  if (digits.size() == 1 || digits.size() == 2) {
    hh = std::stoi(digits);
  } else if (digits.size() == 4) {
    hh = std::stoi(digits.substr(0, 2));
    mm = std::stoi(digits.substr(2));
  } else {
    return false;
  }
  if (hh > 14 || mm > 59 || hh * 60 + mm > 14 * 60) return false;
  *minutes = sign * (hh * 60 + mm);
  return true;
}

using Entry = YamlEntry;
using Mapping = YamlMapping;

std::string Describe(const YAML::Node& node) { return DescribeYaml(node); }

constexpr char kOperatorTypes[] =
    "filter, map, union, aggregate, window, interval_join, broadcast_join, process, dedup, news2, qsofa, alert, "
    "pattern, pseudonymize, score_model";

const std::vector<std::string_view> kTopLevelFields = {
    "name",    "parallelism", "max_parallelism", "buffer_timeout",      "latency_markers",
    "checkpointing", "restart", "sources", "operators", "sinks", "projection_pushdown"};

// Compiles one spec. Not reusable: one instance per spec.
class SpecCompiler {
 public:
  SpecCompiler(std::string_view text, std::string display_path, std::string base_dir, int parallelism)
      : text_(text),
        display_path_(std::move(display_path)),
        base_dir_(std::move(base_dir)),
        parallelism_override_(parallelism) {}

  absl::StatusOr<proto::JobGraph> Compile() {
    // yaml-cpp reports errors by exception; they end here.
    try {
      YAML::Node root;
      try {
        root = YAML::Load(std::string(text_));
      } catch (const YAML::ParserException& e) {
        return ErrorAt(e.mark, absl::StrCat("invalid YAML: ", e.msg));
      }
      return CompileRoot(root);
    } catch (const YAML::Exception& e) {
      return ErrorAt(e.mark, absl::StrCat("invalid job spec: ", e.msg));
    }
  }

 private:
  // ---- errors --------------------------------------------------------------

  absl::Status ErrorAt(const YAML::Mark& mark, std::string_view message) const {
    return YamlErrorAt(display_path_, mark, message);
  }
  absl::Status ErrorAt(const YAML::Node& node, std::string_view message) const {
    return ErrorAt(node.Mark(), message);
  }
  absl::Status ErrorAt(const Entry& entry, std::string_view message) const {
    return ErrorAt(entry.mark(), message);
  }

  // The position of byte `offset` of the scalar's value in the spec text.
  // Handles plain and quoted scalars on one line and block scalars (| and >);
  // anything else gets the scalar's own position.
  YAML::Mark ExprMark(const YAML::Node& scalar, size_t offset) const {
    const YAML::Mark start = scalar.Mark();
    if (start.is_null() || start.pos < 0 || static_cast<size_t>(start.pos) >= text_.size()) {
      return start;
    }
    const std::string& value = scalar.Scalar();
    const size_t pos = static_cast<size_t>(start.pos);
    const char c = text_[pos];
    YAML::Mark at = start;
    if (c == '"' || c == '\'') {
      size_t p = pos + 1;
      for (size_t decoded = 0; decoded < offset; ++decoded) {
        if (p >= text_.size() || text_[p] == '\n' || text_[p] == '\r') return start;
        if (c == '\'' && text_[p] == '\'') {
          p += 2;  // '' is one quote
        } else if (c == '"' && text_[p] == '\\') {
          p += 2;  // an escape: counted as one byte
        } else {
          ++p;
        }
      }
      at.pos = static_cast<int>(p);
      at.column = start.column + static_cast<int>(p - pos);
      return at;
    }
    if (c == '|' || c == '>') {
      // Content starts on the line after the indicator, indented by the
      // indentation of its first non-empty line.
      size_t p = text_.find('\n', pos);
      if (p == std::string_view::npos) return start;
      ++p;
      int line = start.line + 1;
      size_t indent = 0;
      for (size_t q = p; q < text_.size() && text_[q] == ' '; ++q) ++indent;
      size_t decoded = 0;
      while (p < text_.size()) {
        const size_t line_end = std::min(text_.find('\n', p), text_.size());
        const size_t content = std::min(p + indent, line_end);
        const size_t len = line_end - content;
        if (offset < decoded + len) {
          at.pos = static_cast<int>(content + (offset - decoded));
          at.line = line;
          at.column = static_cast<int>(content - p + (offset - decoded));
          return at;
        }
        decoded += len + 1;  // the line and its newline (a space when folded)
        p = line_end + 1;
        ++line;
      }
      return start;
    }
    // Plain scalar: the source text must be the value itself up to offset.
    if (offset > value.size() || text_.compare(pos, offset, value, 0, offset) != 0) return start;
    at.pos = static_cast<int>(pos + offset);
    at.column = start.column + static_cast<int>(offset);
    return at;
  }

  // Turns the builder's first error into a located one. `current` is the
  // mapping of the vertex being defined, if the error came from its call.
  absl::Status BuilderError(const Mapping* current) const {
    const BuildError& e = *builder_->error();
    const Mapping* m = current;
    if (e.vertex.empty()) {
      m = &top_;
    } else if (m == nullptr) {
      auto it = vertex_nodes_.find(e.vertex);
      m = it != vertex_nodes_.end() ? &it->second : &top_;
    }
    YAML::Mark mark = m->node.Mark();
    const Entry* entry = e.field.empty() ? nullptr : m->Find(e.field);
    if (entry != nullptr) {
      mark = entry->mark();
      YAML::Node at = entry->value;
      if (e.index >= 0 && (at.IsSequence() || at.IsMap())) {
        int i = 0;
        for (auto it = at.begin(); it != at.end(); ++it, ++i) {
          if (i != e.index) continue;
          if (at.IsSequence()) {
            at = static_cast<const YAML::Node&>(*it);
          } else {
            at = e.expr_offset != BuildError::kNoOffset ? it->second : it->first;
          }
          mark = at.Mark();
          break;
        }
      }
      if (e.expr_offset != BuildError::kNoOffset && at.IsScalar()) {
        mark = ExprMark(at, e.expr_offset);
      }
      if (!e.subfield.empty() && at.IsMap()) {
        for (auto it = at.begin(); it != at.end(); ++it) {
          if (it->first.IsScalar() && it->first.Scalar() == e.subfield) {
            mark = it->second.IsNull() ? it->first.Mark() : it->second.Mark();
            break;
          }
        }
      }
    }
    return ErrorAt(mark, std::string(e.status.message()));
  }

  // ---- shape ---------------------------------------------------------------

  absl::StatusOr<Mapping> ParseMapping(const YAML::Node& node, std::string_view what) const {
    return ParseYamlMapping(display_path_, node, what);
  }

  // Rejects unknown and repeated keys. `what` is e.g. "operator 'valid'";
  // empty for the top level.
  // `note` follows the list of expected keys.
  absl::Status CheckKeys(const Mapping& m, const std::vector<std::string_view>& allowed,
                         std::string_view what, std::string_view note = "") const {
    std::string expected;
    for (std::string_view a : allowed)
      absl::StrAppend(&expected, expected.empty() ? "" : ", ", AV(a));
    for (size_t i = 0; i < m.entries.size(); ++i) {
      const Entry& e = m.entries[i];
      bool known = false;
      for (std::string_view a : allowed) known |= (a == e.key);
      if (!known) {
        return ErrorAt(
            e.key_node,
            absl::StrCat("unknown ", what.empty() ? "top-level field" : "field", " '", e.key, "'",
                         what.empty() ? "" : " in ", AV(what), ", expected one of ", expected, AV(note)));
      }
      for (size_t j = 0; j < i; ++j) {
        if (m.entries[j].key == e.key) {
          return ErrorAt(e.key_node, absl::StrCat("field '", e.key, "' appears twice in ",
                                                  what.empty() ? "the job spec" : AV(what)));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<const Entry*> Required(const Mapping& m, std::string_view key,
                                        std::string_view what) const {
    const Entry* e = m.Find(key);
    if (e == nullptr) {
      return ErrorAt(m.node, absl::StrCat("missing required field '", AV(key), "' in ",
                                          what.empty() ? "the job spec" : AV(what)));
    }
    return e;
  }

  absl::StatusOr<std::string> String(const Entry& e) const {
    if (!e.value.IsScalar()) {
      return ErrorAt(e,
                     absl::StrCat("expected a string for '", e.key, "', got ", Describe(e.value)));
    }
    return e.value.Scalar();
  }

  absl::StatusOr<std::string> RequiredString(const Mapping& m, std::string_view key,
                                             std::string_view what) const {
    ASSIGN_OR_RETURN(const Entry* e, Required(m, key, what));
    return String(*e);
  }

  absl::StatusOr<int64_t> Int(const Entry& e) const {
    int64_t v = 0;
    if (!e.value.IsScalar() || !absl::SimpleAtoi(AV(e.value.Scalar()), &v)) {
      return ErrorAt(
          e, absl::StrCat("expected an integer for '", e.key, "', got ", Describe(e.value)));
    }
    return v;
  }

  // An int-sized integer (parallelism).
  absl::StatusOr<int> SmallInt(const Entry& e) const {
    ASSIGN_OR_RETURN(int64_t v, Int(e));
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
      return ErrorAt(e, absl::StrCat("'", e.key, "' is out of range: ", v));
    }
    return static_cast<int>(v);
  }

  absl::StatusOr<bool> Bool(const Entry& e) const {
    if (e.value.IsScalar() && (e.value.Scalar() == "true" || e.value.Scalar() == "false")) {
      return e.value.Scalar() == "true";
    }
    return ErrorAt(e, absl::StrCat("expected true or false for '", e.key, "', got ", Describe(e.value)));
  }

  absl::StatusOr<double> Number(const Entry& e) const {
    double v = 0;
    if (!e.value.IsScalar() || !absl::SimpleAtod(AV(e.value.Scalar()), &v)) {
      return ErrorAt(e,
                     absl::StrCat("expected a number for '", e.key, "', got ", Describe(e.value)));
    }
    return v;
  }

  // "5ms", "1s", "2m", "1h", or a plain integer = ms.
  absl::StatusOr<int64_t> DurationMs(const Entry& e) const {
    return Duration(e.value, e.mark(), e.key, /*allow_negative=*/false);
  }

  // A duration at `value` (located at `mark`) of the field `key`; with
  // allow_negative, "-30m" too.
  absl::StatusOr<int64_t> Duration(const YAML::Node& value, const YAML::Mark& mark,
                                   std::string_view key, bool allow_negative) const {
    auto bad = [&] {
      return ErrorAt(
          mark, absl::StrCat("expected a duration such as ",
                             allow_negative ? "-30m, 0s, 5ms, 1s, 2m or 1h" : "5ms, 1s, 2m or 1h",
                             " for '", AV(key), "', got ", Describe(value)));
    };
    if (!value.IsScalar()) return bad();
    std::string_view s = value.Scalar();
    const bool negative = allow_negative && !s.empty() && s[0] == '-';
    if (negative) s.remove_prefix(1);
    size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    const std::string_view unit = s.substr(digits);
    int64_t scale = 0;
    if (unit.empty() || unit == "ms")
      scale = 1;
    else if (unit == "s")
      scale = 1000;
    else if (unit == "m")
      scale = 60 * 1000;
    else if (unit == "h")
      scale = 3600 * 1000;
    int64_t n = 0;
    if (digits == 0 || scale == 0 || !absl::SimpleAtoi(AV(s.substr(0, digits)), &n) ||
        n > std::numeric_limits<int64_t>::max() / scale) {
      return bad();
    }
    return negative ? -n * scale : n * scale;
  }

  // A list of strings, or one string for a list of one.
  absl::StatusOr<std::vector<std::string>> StringList(const Entry& e) const {
    std::vector<std::string> out;
    if (e.value.IsScalar()) {
      out.push_back(e.value.Scalar());
      return out;
    }
    if (!e.value.IsSequence()) {
      return ErrorAt(
          e, absl::StrCat("expected a list of names for '", e.key, "', got ", Describe(e.value)));
    }
    for (const YAML::Node& item : e.value) {
      if (!item.IsScalar()) {
        return ErrorAt(item,
                       absl::StrCat("expected a name in '", e.key, "', got ", Describe(item)));
      }
      out.push_back(item.Scalar());
    }
    if (out.empty()) return ErrorAt(e, absl::StrCat("'", e.key, "' is empty"));
    return out;
  }

  // An ordered mapping of name -> expression text (select, aggregates).
  absl::StatusOr<std::vector<NamedExpr>> Expressions(const Entry& e, std::string_view what) const {
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(e.value, absl::StrCat("'", e.key, "' of ", AV(what))));
    std::vector<NamedExpr> out;
    for (const Entry& item : m.entries) {
      if (!item.value.IsScalar()) {
        return ErrorAt(item, absl::StrCat("expected an expression for '", item.key, "' in '", e.key,
                                          "', got ", Describe(item.value)));
      }
      out.push_back(NamedExpr{item.key, item.value.Scalar()});
    }
    return out;
  }

  absl::StatusOr<Schema> ParseSchema(const Entry& e, std::string_view what) const {
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(e.value, absl::StrCat("the schema of ", AV(what))));
    Schema schema;
    for (const Entry& f : m.entries) {
      if (!f.value.IsScalar()) {
        return ErrorAt(f, absl::StrCat("expected a type for schema field '", f.key, "', got ",
                                       Describe(f.value)));
      }
      absl::StatusOr<FieldType> type = ParseFieldType(f.value.Scalar());
      if (!type.ok()) {
        return ErrorAt(f, absl::StrCat("schema field '", f.key, "': ", type.status().message()));
      }
      schema.Add(f.key, *type);
    }
    return schema;
  }

  absl::StatusOr<std::vector<GeneratorColumn>> GeneratorColumns(const Entry& e,
                                                                std::string_view what) const {
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(e.value, absl::StrCat("the fields of ", AV(what))));
    std::vector<GeneratorColumn> out;
    for (const Entry& col : m.entries) {
      const std::string col_what = absl::StrCat("generator field '", col.key, "'");
      ASSIGN_OR_RETURN(Mapping spec, ParseMapping(col.value, col_what));
      RETURN_IF_ERROR(
          CheckKeys(spec, {"kind", "min", "max", "cardinality", "prefix", "value"}, col_what));
      GeneratorColumn c;
      c.column = col.key;
      ASSIGN_OR_RETURN(c.kind, RequiredString(spec, "kind", col_what));
      if (const Entry* x = spec.Find("min")) {
        ASSIGN_OR_RETURN(c.min, Int(*x));
      }
      if (const Entry* x = spec.Find("max")) {
        ASSIGN_OR_RETURN(c.max, Int(*x));
      }
      if (const Entry* x = spec.Find("cardinality")) {
        ASSIGN_OR_RETURN(c.cardinality, Int(*x));
      }
      if (const Entry* x = spec.Find("prefix")) {
        ASSIGN_OR_RETURN(c.prefix, String(*x));
      }
      if (const Entry* x = spec.Find("value")) {
        ASSIGN_OR_RETURN(c.value, String(*x));
      }
      out.push_back(std::move(c));
    }
    return out;
  }

  // Just parallelism: keyed operators (aggregate, window, interval_join),
  // whose key_by is their key and which are always hash-partitioned.
  absl::StatusOr<VertexOptions> ParseParallelism(const Mapping& m) const {
    VertexOptions options;
    if (const Entry* e = m.Find("parallelism")) {
      ASSIGN_OR_RETURN(options.parallelism, SmallInt(*e));
      if (options.parallelism < 1) {
        return ErrorAt(*e,
                       absl::StrCat("parallelism must be at least 1, got ", options.parallelism));
      }
    }
    return options;
  }

  // parallelism, partition and key_by, which most operators and sinks may
  // set. key_by_partitions = false: key_by means something else (the join
  // key of a broadcast_join) and is not read.
  absl::StatusOr<VertexOptions> ParseVertexOptions(const Mapping& m,
                                                   bool key_by_partitions = true) const {
    ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
    if (const Entry* e = m.Find("partition")) {
      ASSIGN_OR_RETURN(std::string name, String(*e));
      absl::StatusOr<Partition> p = ParsePartition(name);
      if (!p.ok()) return ErrorAt(*e, std::string(p.status().message()));
      options.partition = *p;
    }
    if (const Entry* e = m.Find("key_by"); e != nullptr && key_by_partitions) {
      ASSIGN_OR_RETURN(options.key_by, StringList(*e));
    }
    return options;
  }

  // Explains a reference to a stream that does not exist yet but is declared
  // further down; the builder explains names that are not declared at all.
  absl::Status CheckInputName(const YAML::Node& at, std::string_view input, std::string_view reader,
                              std::string_view reader_what, int reader_operator_index) const {
    if (builder_->HasStream(input)) return absl::OkStatus();
    auto it = declared_.find(AV(input));
    if (it == declared_.end()) return absl::OkStatus();
    const Declared& d = it->second;
    if (d.is_sink) {
      return ErrorAt(at, absl::StrCat(AV(reader_what), ": input '", AV(input),
                                      "' is a sink, which has no output stream"));
    }
    if (input == reader) {
      return ErrorAt(at, absl::StrCat(AV(reader_what), " cannot read its own output"));
    }
    if (reader_operator_index >= 0 && d.operator_index == reader_operator_index) {
      return ErrorAt(at, absl::StrCat(AV(reader_what), " cannot read its own late_output"));
    }
    if (reader_operator_index >= 0 && d.operator_index > reader_operator_index) {
      return ErrorAt(at, absl::StrCat(AV(reader_what), ": input '", AV(input),
                                      "' is defined later in operators; an operator may only "
                                      "read sources and operators listed above it"));
    }
    return absl::OkStatus();
  }

  std::string ResolvePath(const std::string& path) const {
    std::filesystem::path p(path);
    if (p.is_absolute()) return p.lexically_normal().string();
    std::filesystem::path base(base_dir_);
    if (base.empty() || base.is_relative()) {
      std::error_code ec;
      base = std::filesystem::absolute(base.empty() ? "." : base, ec);
    }
    return (base / p).lexically_normal().string();
  }

  // ---- sections ------------------------------------------------------------

  absl::StatusOr<proto::JobGraph> CompileRoot(const YAML::Node& root) {
    if (root.IsNull()) {
      return ErrorAt(YAML::Mark::null_mark(),
                     "the job spec is empty, expected a mapping with name, sources and sinks");
    }
    if (!root.IsMap()) {
      return ErrorAt(root, absl::StrCat("expected a mapping with name, sources and sinks at the "
                                        "top level, got ",
                                        Describe(root)));
    }
    ASSIGN_OR_RETURN(top_, ParseMapping(root, "the job spec"));
    RETURN_IF_ERROR(CheckKeys(top_, kTopLevelFields, ""));
    ASSIGN_OR_RETURN(std::string name, RequiredString(top_, "name", ""));
    builder_ = std::make_unique<JobBuilder>(name);
    if (builder_->error() != nullptr) return BuilderError(nullptr);
    if (const Entry* e = top_.Find("parallelism")) {
      ASSIGN_OR_RETURN(int p, SmallInt(*e));
      builder_->SetParallelism(p);
    }
    if (parallelism_override_ > 0) builder_->SetParallelism(parallelism_override_);
    if (const Entry* e = top_.Find("max_parallelism")) {
      ASSIGN_OR_RETURN(int p, SmallInt(*e));
      builder_->SetMaxParallelism(p);
    }
    if (const Entry* e = top_.Find("buffer_timeout")) {
      ASSIGN_OR_RETURN(int64_t ms, DurationMs(*e));
      builder_->SetBufferTimeoutMs(ms);
    }
    if (const Entry* e = top_.Find("latency_markers")) {
      ASSIGN_OR_RETURN(int64_t ms, DurationMs(*e));
      builder_->SetLatencyMarkerIntervalMs(ms);
    }
    if (const Entry* e = top_.Find("projection_pushdown")) {
      ASSIGN_OR_RETURN(bool enabled, Bool(*e));
      builder_->SetProjectionPushdown(enabled);
    }
    if (const Entry* e = top_.Find("checkpointing")) {
      ASSIGN_OR_RETURN(CheckpointingOptions checkpointing, ParseCheckpointing(*e));
      builder_->SetCheckpointing(checkpointing);
    }
    if (const Entry* e = top_.Find("restart")) {
      ASSIGN_OR_RETURN(proto::RestartSpec restart, ParseRestart(*e));
      builder_->SetRestart(restart);
    }

    ASSIGN_OR_RETURN(const Entry* sources, Required(top_, "sources", ""));
    ASSIGN_OR_RETURN(std::vector<YAML::Node> source_nodes, List(*sources, "source", true));
    std::vector<YAML::Node> operator_nodes;
    if (const Entry* e = top_.Find("operators")) {
      ASSIGN_OR_RETURN(operator_nodes, List(*e, "operator", false));
    }
    ASSIGN_OR_RETURN(const Entry* sinks, Required(top_, "sinks", ""));
    ASSIGN_OR_RETURN(std::vector<YAML::Node> sink_nodes, List(*sinks, "sink", true));

    // Names declared further down, to explain forward references.
    for (size_t i = 0; i < operator_nodes.size(); ++i) {
      Declare(operator_nodes[i], Declared{false, static_cast<int>(i)});
    }
    for (const YAML::Node& n : sink_nodes) Declare(n, Declared{true, -1});

    for (size_t i = 0; i < source_nodes.size(); ++i) {
      RETURN_IF_ERROR(CompileSource(source_nodes[i], static_cast<int>(i)));
    }
    for (size_t i = 0; i < operator_nodes.size(); ++i) {
      RETURN_IF_ERROR(CompileOperator(operator_nodes[i], static_cast<int>(i)));
    }
    for (size_t i = 0; i < sink_nodes.size(); ++i) {
      RETURN_IF_ERROR(CompileSink(sink_nodes[i], static_cast<int>(i)));
    }
    absl::StatusOr<proto::JobGraph> graph = builder_->Build();
    if (!graph.ok()) return BuilderError(nullptr);
    return graph;
  }

  // The items of a top-level section. An empty `operators:` is no operators.
  absl::StatusOr<std::vector<YAML::Node>> List(const Entry& e, std::string_view item,
                                               bool required) const {
    std::vector<YAML::Node> out;
    if (e.value.IsNull() && !required) return out;
    if (!e.value.IsSequence()) {
      return ErrorAt(e, absl::StrCat("expected a list of ", AV(item), "s for '", e.key, "', got ",
                                     Describe(e.value)));
    }
    for (const YAML::Node& n : e.value) out.push_back(n);
    if (out.empty() && required) {
      return ErrorAt(e, absl::StrCat("'", e.key, "' must list at least one ", AV(item)));
    }
    return out;
  }

  struct Declared {
    bool is_sink;
    int operator_index;  // position in operators; -1 for sinks
  };

  // Records the stream names a vertex declares: its name and, for a
  // window, its late_output.
  void Declare(const YAML::Node& node, Declared d) {
    if (!node.IsMap()) return;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar() || !it->second.IsScalar()) continue;
      const std::string& key = it->first.Scalar();
      if (key == "name" || (key == "late_output" && !d.is_sink)) {
        declared_.emplace(it->second.Scalar(), d);
      }
    }
  }

  // checkpointing: {interval, mode, timeout, max_concurrent, min_pause,
  // retained, storage, unaligned, aligned_timeout}; interval is required. The builder checks the values.
  absl::StatusOr<CheckpointingOptions> ParseCheckpointing(const Entry& e) const {
    constexpr char kWhat[] = "checkpointing";
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(e.value, kWhat));
    RETURN_IF_ERROR(CheckKeys(m,
                              {"interval", "mode", "timeout", "max_concurrent", "min_pause",
                               "retained", "storage", "unaligned", "aligned_timeout"},
                              kWhat));
    CheckpointingOptions c;
    ASSIGN_OR_RETURN(const Entry* interval, Required(m, "interval", kWhat));
    ASSIGN_OR_RETURN(c.interval_ms, DurationMs(*interval));
    if (const Entry* x = m.Find("mode")) {
      ASSIGN_OR_RETURN(std::string mode, String(*x));
      absl::StatusOr<CheckpointingMode> parsed = ParseCheckpointingMode(mode);
      if (!parsed.ok()) return ErrorAt(*x, std::string(parsed.status().message()));
      c.mode = *parsed;
    }
    if (const Entry* x = m.Find("timeout")) {
      ASSIGN_OR_RETURN(c.timeout_ms, DurationMs(*x));
    }
    if (const Entry* x = m.Find("max_concurrent")) {
      ASSIGN_OR_RETURN(c.max_concurrent, SmallInt(*x));
    }
    if (const Entry* x = m.Find("min_pause")) {
      ASSIGN_OR_RETURN(c.min_pause_ms, DurationMs(*x));
    }
    if (const Entry* x = m.Find("retained")) {
      ASSIGN_OR_RETURN(c.retained, SmallInt(*x));
    }
    if (const Entry* x = m.Find("storage")) {
      ASSIGN_OR_RETURN(c.storage, String(*x));
    }
    if (const Entry* x = m.Find("unaligned")) {
      ASSIGN_OR_RETURN(c.unaligned, Bool(*x));
    }
    if (const Entry* x = m.Find("aligned_timeout")) {
      ASSIGN_OR_RETURN(c.aligned_timeout_ms, DurationMs(*x));
    }
    return c;
  }

  // restart: {strategy, ...}: the strategy's own settings, each optional
  // (defaults in jobmanager/restart_strategy.h).
  absl::StatusOr<proto::RestartSpec> ParseRestart(const Entry& e) const {
    constexpr char kWhat[] = "restart";
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(e.value, kWhat));
    ASSIGN_OR_RETURN(const Entry* strategy_entry, Required(m, "strategy", kWhat));
    ASSIGN_OR_RETURN(std::string strategy, String(*strategy_entry));
    proto::RestartSpec r;
    if (strategy == "none") {
      r.set_strategy(proto::RESTART_NONE);
      RETURN_IF_ERROR(CheckKeys(m, {"strategy"}, kWhat));
    } else if (strategy == "fixed_delay") {
      r.set_strategy(proto::RESTART_FIXED_DELAY);
      RETURN_IF_ERROR(CheckKeys(m, {"strategy", "attempts", "delay"}, kWhat));
    } else if (strategy == "exponential_backoff") {
      r.set_strategy(proto::RESTART_EXPONENTIAL_BACKOFF);
      RETURN_IF_ERROR(CheckKeys(
          m, {"strategy", "initial_backoff", "max_backoff", "multiplier", "reset_after", "max_attempts"}, kWhat));
    } else if (strategy == "failure_rate") {
      r.set_strategy(proto::RESTART_FAILURE_RATE);
      RETURN_IF_ERROR(CheckKeys(m, {"strategy", "max_failures", "interval", "delay"}, kWhat));
    } else {
      return ErrorAt(*strategy_entry,
                     absl::StrCat("unknown restart strategy '", strategy,
                                  "', expected one of none, fixed_delay, exponential_backoff, failure_rate"));
    }
    auto positive_int = [&](const char* key, auto set) -> absl::Status {
      const Entry* x = m.Find(key);
      if (x == nullptr) return absl::OkStatus();
      ASSIGN_OR_RETURN(int v, SmallInt(*x));
      if (v < 1) return ErrorAt(*x, absl::StrCat("restart ", key, " must be at least 1, got ", v));
      set(v);
      return absl::OkStatus();
    };
    auto duration = [&](const char* key, auto set) -> absl::Status {
      const Entry* x = m.Find(key);
      if (x == nullptr) return absl::OkStatus();
      ASSIGN_OR_RETURN(int64_t ms, DurationMs(*x));
      set(ms);
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(positive_int("attempts", [&](int v) { r.set_attempts(v); }));
    RETURN_IF_ERROR(positive_int("max_attempts", [&](int v) { r.set_max_attempts(v); }));
    RETURN_IF_ERROR(positive_int("max_failures", [&](int v) { r.set_max_failures(v); }));
    RETURN_IF_ERROR(duration("delay", [&](int64_t v) { r.set_delay_ms(v); }));
    RETURN_IF_ERROR(duration("initial_backoff", [&](int64_t v) { r.set_initial_backoff_ms(v); }));
    RETURN_IF_ERROR(duration("max_backoff", [&](int64_t v) { r.set_max_backoff_ms(v); }));
    RETURN_IF_ERROR(duration("reset_after", [&](int64_t v) { r.set_reset_after_ms(v); }));
    RETURN_IF_ERROR(duration("interval", [&](int64_t v) { r.set_failure_interval_ms(v); }));
    if (const Entry* x = m.Find("multiplier")) {
      ASSIGN_OR_RETURN(double v, Number(*x));
      if (v < 1) return ErrorAt(*x, absl::StrCat("restart multiplier must be at least 1, got ", v));
      r.set_multiplier(v);
    }
    if (r.max_backoff_ms() > 0 && r.initial_backoff_ms() > r.max_backoff_ms()) {
      return ErrorAt(*m.Find("max_backoff"), absl::StrCat("restart max_backoff (", r.max_backoff_ms(),
                                                          " ms) is below initial_backoff (",
                                                          r.initial_backoff_ms(), " ms)"));
    }
    return r;
  }

  // event_time: {field, max_out_of_orderness, idle_timeout, watermark_interval,
  // alignment: {group, max_drift, update_interval}} of a source.
  absl::StatusOr<EventTime> ParseEventTime(const Entry& e, std::string_view what) const {
    const std::string et_what = absl::StrCat("event_time of ", AV(what));
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(e.value, et_what));
    RETURN_IF_ERROR(
        CheckKeys(m, {"field", "max_out_of_orderness", "idle_timeout", "watermark_interval", "alignment"}, et_what));
    EventTime et;
    ASSIGN_OR_RETURN(et.field, RequiredString(m, "field", et_what));
    if (const Entry* x = m.Find("max_out_of_orderness")) {
      ASSIGN_OR_RETURN(et.max_out_of_orderness_ms, DurationMs(*x));
    }
    if (const Entry* x = m.Find("idle_timeout")) {
      ASSIGN_OR_RETURN(et.idle_timeout_ms, DurationMs(*x));
    }
    if (const Entry* x = m.Find("watermark_interval")) {
      ASSIGN_OR_RETURN(et.watermark_interval_ms, DurationMs(*x));
    }
    if (const Entry* x = m.Find("alignment")) {
      const std::string a_what = absl::StrCat("alignment in ", et_what);
      ASSIGN_OR_RETURN(Mapping a, ParseMapping(x->value, a_what));
      RETURN_IF_ERROR(CheckKeys(a, {"group", "max_drift", "update_interval"}, a_what));
      ASSIGN_OR_RETURN(et.alignment_group, RequiredString(a, "group", a_what));
      if (et.alignment_group.empty()) return ErrorAt(*a.Find("group"), absl::StrCat("empty group in ", a_what));
      const Entry* drift = a.Find("max_drift");
      if (drift == nullptr) {
        return ErrorAt(*x, absl::StrCat(a_what, " needs max_drift: how far (event time) a source may run ahead "
                                               "of the slowest in its group, e.g. max_drift: 30s"));
      }
      ASSIGN_OR_RETURN(et.alignment_max_drift_ms, DurationMs(*drift));
      if (et.alignment_max_drift_ms <= 0) return ErrorAt(*drift, "max_drift must be above 0");
      if (const Entry* u = a.Find("update_interval")) {
        ASSIGN_OR_RETURN(et.alignment_update_interval_ms, DurationMs(*u));
        if (et.alignment_update_interval_ms <= 0) return ErrorAt(*u, "update_interval must be above 0");
      }
    }
    return et;
  }

  // The rows and timezone keys of an HL7 v2 source (file or mllp).
  absl::Status Hl7Options(const Mapping& m, const std::string& what, Hl7Rows* rows_out, int* offset_minutes) {
    if (const Entry* e = m.Find("rows")) {
      ASSIGN_OR_RETURN(std::string rows, String(*e));
      if (rows != "observations" && rows != "admissions") {
        return ErrorAt(*e, absl::StrCat("unknown rows '", rows, "' for ", what,
                                        ", expected observations (one per OBX of an ORU) or admissions (one per "
                                        "ADT A01/A02/A03/A08/A11/A13/A40)"));
      }
      *rows_out = rows == "admissions" ? Hl7Rows::kAdmissions : Hl7Rows::kObservations;
    }
    if (const Entry* e = m.Find("timezone")) {
      ASSIGN_OR_RETURN(std::string zone, String(*e));
      if (!ParseUtcOffset(zone, offset_minutes)) {
        return ErrorAt(*e, absl::StrCat("expected a UTC offset for 'timezone' (UTC, +01:00, -0530), got '", zone,
                                        "'"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CompileSource(const YAML::Node& node, int index) {
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(node, absl::StrCat("source #", index + 1)));
    ASSIGN_OR_RETURN(std::string name,
                     RequiredString(m, "name", absl::StrCat("source #", index + 1)));
    const std::string what = absl::StrCat("source '", name, "'");
    ASSIGN_OR_RETURN(const Entry* connector_entry, Required(m, "connector", what));
    ASSIGN_OR_RETURN(std::string connector, String(*connector_entry));
    bool hl7 = false;
    if (connector == "file") {
      if (const Entry* e = m.Find("format")) hl7 = e->value.IsScalar() && e->value.Scalar() == "hl7v2";
      const bool fhir = m.Find("format") != nullptr && m.Find("format")->value.IsScalar() &&
                        m.Find("format")->value.Scalar() == "fhir";
      if (fhir) {
        hl7 = true;  // a fixed schema too
        RETURN_IF_ERROR(CheckKeys(m,
                                  {"name", "connector", "path", "format", "event_time", "max_rate", "dead_letter",
                                   "parallelism"},
                                  what, " (format fhir makes observation rows of a fixed schema: docs/job-spec.md)"));
      } else if (hl7) {
        RETURN_IF_ERROR(CheckKeys(m,
                                  {"name", "connector", "path", "format", "rows", "timezone", "event_time",
                                   "max_rate", "dead_letter", "parallelism"},
                                  what, " (format hl7v2 makes rows of a fixed schema: docs/job-spec.md)"));
      } else {
        RETURN_IF_ERROR(CheckKeys(m,
                                  {"name", "connector", "path", "format", "schema", "event_time",
                                   "max_rate", "dead_letter", "parallelism"},
                                  what));
      }
    } else if (connector == "generator") {
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "connector", "schema", "event_time", "count", "rate",
                                 "seed", "fields", "parallelism"},
                                what));
    } else if (connector == "patients") {
      hl7 = true;  // a fixed schema
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "connector", "patients", "seed", "interval", "count", "speed", "start",
                                 "deterioration_rate", "sepsis_fraction", "missing", "duplicates", "late", "format",
                                 "event_time", "parallelism"},
                                what, " (a patients source makes observation rows of a fixed schema: docs/job-spec.md)"));
    } else if (connector == "nexmark") {
      hl7 = true;  // a fixed schema
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "connector", "count", "rate", "seed", "event_rate", "base_time",
                                 "num_active_people", "num_in_flight_auctions", "hot_auction_ratio",
                                 "hot_sellers_ratio", "hot_bidders_ratio", "avg_person_byte_size",
                                 "avg_auction_byte_size", "avg_bid_byte_size", "event_time", "parallelism"},
                                what, " (a nexmark source makes the Nexmark events in a fixed schema: docs/job-spec.md)"));
    } else if (connector == "mllp") {
      hl7 = true;
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "connector", "port", "host", "format", "rows", "timezone",
                                 "max_message_bytes", "event_time", "dead_letter", "parallelism"},
                                what, " (an mllp source makes HL7 v2 rows of a fixed schema: docs/job-spec.md)"));
      if (const Entry* e = m.Find("format")) {
        ASSIGN_OR_RETURN(std::string format, String(*e));
        if (format != "hl7v2") {
          return ErrorAt(*e, absl::StrCat("an mllp source reads format hl7v2, not '", format, "'"));
        }
      }
    } else {
      return ErrorAt(*connector_entry, absl::StrCat("unknown connector '", connector, "' for ",
                                                    what, ", expected one of file, generator, mllp, nexmark, patients"));
    }
    Schema schema;  // hl7v2: left empty, for the builder to take the rows' own
    if (!hl7) {
      ASSIGN_OR_RETURN(const Entry* schema_entry, Required(m, "schema", what));
      ASSIGN_OR_RETURN(schema, ParseSchema(*schema_entry, what));
    }
    int parallelism = 0;
    if (const Entry* e = m.Find("parallelism")) {
      ASSIGN_OR_RETURN(parallelism, SmallInt(*e));
      if (parallelism < 1) {
        return ErrorAt(*e, absl::StrCat("parallelism must be at least 1, got ", parallelism));
      }
    }
    std::optional<EventTime> event_time;
    if (const Entry* e = m.Find("event_time")) {
      ASSIGN_OR_RETURN(event_time, ParseEventTime(*e, what));
    }

    if (connector == "file") {
      ASSIGN_OR_RETURN(std::string path, RequiredString(m, "path", what));
      ASSIGN_OR_RETURN(std::string format, RequiredString(m, "format", what));
      FileSourceOptions options;
      options.parallelism = parallelism;
      options.event_time = event_time;
      if (const Entry* e = m.Find("max_rate")) {
        ASSIGN_OR_RETURN(options.max_rate, Number(*e));
      }
      if (const Entry* e = m.Find("dead_letter")) {
        ASSIGN_OR_RETURN(options.dead_letter, String(*e));
      }
      RETURN_IF_ERROR(Hl7Options(m, what, &options.hl7_rows, &options.hl7_default_offset_minutes));
      builder_->FileSource(name, ResolvePath(path), format, schema, options);
    } else if (connector == "patients") {
      PatientsSourceOptions options;
      options.parallelism = parallelism;
      options.event_time = event_time;
      PatientOptions& o = options.simulation;
      // Range errors point at the key that is out of range.
      auto check = [&](const Entry* e) -> absl::Status {
        if (absl::Status s = o.Validate(); !s.ok()) return ErrorAt(*e, std::string(s.message()));
        return absl::OkStatus();
      };
      if (const Entry* e = m.Find("patients")) {
        ASSIGN_OR_RETURN(o.patients, Int(*e));
        RETURN_IF_ERROR(check(e));
      }
      if (const Entry* e = m.Find("seed")) {
        if (!e->value.IsScalar() || !absl::SimpleAtoi(AV(e->value.Scalar()), &o.seed)) {
          return ErrorAt(*e, absl::StrCat("expected an unsigned integer for 'seed', got ", Describe(e->value)));
        }
      }
      if (const Entry* e = m.Find("interval")) {
        ASSIGN_OR_RETURN(o.interval_ms, DurationMs(*e));
        RETURN_IF_ERROR(check(e));
      }
      if (const Entry* e = m.Find("count")) {
        ASSIGN_OR_RETURN(o.count, Int(*e));
        if (o.count < 0) {
          return ErrorAt(*e, absl::StrCat("count must be >= 0 (leave it out for an unbounded source), got ", o.count));
        }
      }
      if (const Entry* e = m.Find("start")) {
        ASSIGN_OR_RETURN(std::string text, String(*e));
        if (!ParseTimestamp(text, &o.start_ms) || o.start_ms <= 0) {
          return ErrorAt(*e, absl::StrCat("expected a timestamp such as 2024-03-01T08:00:00Z for 'start', got '",
                                          text, "'"));
        }
      }
      for (auto [key, field] : {std::pair<const char*, double*>{"speed", &o.speed},
                                {"deterioration_rate", &o.deterioration_rate},
                                {"sepsis_fraction", &o.sepsis_fraction},
                                {"missing", &o.missing},
                                {"duplicates", &o.duplicates},
                                {"late", &o.late}}) {
        if (const Entry* e = m.Find(key)) {
          ASSIGN_OR_RETURN(*field, Number(*e));
          RETURN_IF_ERROR(check(e));
        }
      }
      if (const Entry* e = m.Find("format")) {
        ASSIGN_OR_RETURN(std::string format, String(*e));
        absl::StatusOr<PatientFormat> f = ParsePatientFormat(format);
        if (!f.ok()) return ErrorAt(*e, std::string(f.status().message()));
        o.format = *f;
      }
      builder_->PatientsSource(name, options);
    } else if (connector == "nexmark") {
      NexmarkSourceOptions options;
      options.parallelism = parallelism;
      options.event_time = event_time;
      NexmarkOptions& o = options.generator;
      // Range errors point at the key that is out of range.
      auto check = [&](const Entry* e) -> absl::Status {
        if (absl::Status s = o.Validate(); !s.ok()) return ErrorAt(*e, std::string(s.message()));
        return absl::OkStatus();
      };
      if (const Entry* e = m.Find("count")) {
        ASSIGN_OR_RETURN(o.count, Int(*e));
        if (o.count < 0) {
          return ErrorAt(*e, absl::StrCat("count must be >= 0 (leave it out for an unbounded source), got ", o.count));
        }
      }
      if (const Entry* e = m.Find("rate")) {
        ASSIGN_OR_RETURN(o.rate, Number(*e));
        RETURN_IF_ERROR(check(e));
      }
      if (const Entry* e = m.Find("seed")) {
        if (!e->value.IsScalar() || !absl::SimpleAtoi(AV(e->value.Scalar()), &o.seed)) {
          return ErrorAt(*e, absl::StrCat("expected an unsigned integer for 'seed', got ", Describe(e->value)));
        }
      }
      if (const Entry* e = m.Find("base_time")) {
        ASSIGN_OR_RETURN(std::string text, String(*e));
        if (!ParseTimestamp(text, &o.base_time_ms)) {
          return ErrorAt(*e, absl::StrCat("expected a timestamp such as 2015-07-15T00:00:00Z for 'base_time', got '",
                                          text, "'"));
        }
        RETURN_IF_ERROR(check(e));
      }
      for (auto [key, field] : {std::pair<const char*, int64_t*>{"event_rate", &o.event_rate},
                                {"num_active_people", &o.num_active_people},
                                {"num_in_flight_auctions", &o.num_in_flight_auctions},
                                {"hot_auction_ratio", &o.hot_auction_ratio},
                                {"hot_sellers_ratio", &o.hot_sellers_ratio},
                                {"hot_bidders_ratio", &o.hot_bidders_ratio},
                                {"avg_person_byte_size", &o.avg_person_byte_size},
                                {"avg_auction_byte_size", &o.avg_auction_byte_size},
                                {"avg_bid_byte_size", &o.avg_bid_byte_size}}) {
        if (const Entry* e = m.Find(key)) {
          ASSIGN_OR_RETURN(*field, Int(*e));
          RETURN_IF_ERROR(check(e));
        }
      }
      builder_->NexmarkSource(name, options);
    } else if (connector == "mllp") {
      MllpSourceOptions options;
      options.parallelism = parallelism;
      options.event_time = event_time;
      ASSIGN_OR_RETURN(const Entry* port, Required(m, "port", what));
      ASSIGN_OR_RETURN(options.port, SmallInt(*port));
      if (options.port < 0 || options.port > 65535) {
        return ErrorAt(*port, absl::StrCat("port must lie in 0..65535 (0: any free port), got ", options.port));
      }
      if (const Entry* e = m.Find("host")) {
        ASSIGN_OR_RETURN(options.host, String(*e));
      }
      if (const Entry* e = m.Find("max_message_bytes")) {
        ASSIGN_OR_RETURN(options.max_message_bytes, Int(*e));
        if (options.max_message_bytes <= 0 || options.max_message_bytes > MllpSource::kMaxMessageBytesLimit) {
          return ErrorAt(*e, absl::StrCat("max_message_bytes must lie in 1..", MllpSource::kMaxMessageBytesLimit,
                                          " (64 MiB), got ", options.max_message_bytes));
        }
      }
      if (const Entry* e = m.Find("dead_letter")) {
        ASSIGN_OR_RETURN(options.dead_letter, String(*e));
      }
      RETURN_IF_ERROR(Hl7Options(m, what, &options.hl7_rows, &options.hl7_default_offset_minutes));
      builder_->MllpSource(name, options);
    } else {
      GeneratorOptions options;
      options.parallelism = parallelism;
      options.event_time = event_time;
      if (const Entry* e = m.Find("count")) {
        ASSIGN_OR_RETURN(options.count, Int(*e));
        if (options.count < 0) {
          return ErrorAt(*e, absl::StrCat("count must be >= 0 (leave it out for an unbounded "
                                          "source), got ",
                                          options.count));
        }
      }
      if (const Entry* e = m.Find("rate")) {
        ASSIGN_OR_RETURN(options.rate, Number(*e));
      }
      if (const Entry* e = m.Find("seed")) {
        if (!e->value.IsScalar() || !absl::SimpleAtoi(AV(e->value.Scalar()), &options.seed)) {
          return ErrorAt(*e, absl::StrCat("expected an unsigned integer for 'seed', got ",
                                          Describe(e->value)));
        }
      }
      if (const Entry* e = m.Find("fields")) {
        ASSIGN_OR_RETURN(options.fields, GeneratorColumns(*e, what));
      }
      builder_->GeneratorSource(name, schema, options);
    }
    if (builder_->error() != nullptr) return BuilderError(&m);
    vertex_nodes_.emplace(name, std::move(m));
    return absl::OkStatus();
  }

  absl::Status CompileOperator(const YAML::Node& node, int index) {
    const std::string numbered = absl::StrCat("operator #", index + 1);
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(node, numbered));
    ASSIGN_OR_RETURN(std::string name, RequiredString(m, "name", numbered));
    const std::string what = absl::StrCat("operator '", name, "'");
    const Entry* type_entry = m.Find("type");
    if (type_entry == nullptr) {
      return ErrorAt(m.node, absl::StrCat("missing required field 'type' in ", what,
                                          ", expected one of ", kOperatorTypes));
    }
    ASSIGN_OR_RETURN(std::string type, String(*type_entry));
    if (type == "filter") {
      RETURN_IF_ERROR(CheckKeys(
          m, {"name", "type", "input", "where", "parallelism", "partition", "key_by"}, what));
    } else if (type == "map") {
      RETURN_IF_ERROR(CheckKeys(
          m, {"name", "type", "input", "select", "parallelism", "partition", "key_by"}, what));
    } else if (type == "union") {
      RETURN_IF_ERROR(
          CheckKeys(m, {"name", "type", "inputs", "parallelism", "partition", "key_by"}, what));
    } else if (type == "aggregate") {
      RETURN_IF_ERROR(CheckKeys(
          m, {"name", "type", "input", "key_by", "aggregates", "state_ttl", "changelog",
              "retract_field", "parallelism"},
          what));
    } else if (type == "window") {
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "type", "input", "key_by", "window", "time",
                                 "allowed_lateness", "late_output", "aggregates", "parallelism"},
                                what));
    } else if (type == "interval_join") {
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "type", "left", "right", "key_by", "left_key", "right_key",
                                 "between", "parallelism"},
                                what));
    } else if (type == "broadcast_join") {
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "type", "input", "broadcast", "key_by", "main_key",
                                 "broadcast_key", "parallelism", "partition"},
                                what));
    } else if (type == "process") {
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "type", "input", "key_by", "function", "params",
                                 "output_schema", "state_ttl", "dead_letter", "parallelism"},
                                what));
    } else if (type == "news2" || type == "qsofa") {
      RETURN_IF_ERROR(CheckKeys(
          m, {"name", "type", "input", "key_by", "max_age", "max_future", "state_ttl", "parallelism"}, what));
    } else if (type == "dedup") {
      RETURN_IF_ERROR(CheckKeys(m, {"name", "type", "input", "key", "key_by", "ttl", "parallelism"}, what));
    } else if (type == "alert") {
      RETURN_IF_ERROR(CheckKeys(
          m, {"name", "type", "input", "key_by", "level", "min_level", "cooldown", "detail", "parallelism"}, what));
    } else if (type == "pattern") {
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "type", "input", "key_by", "sign", "below", "above", "rise", "fall",
                                 "count", "within", "cooldown", "label", "state_ttl", "parallelism"},
                                what));
    } else if (type == "pseudonymize") {
      RETURN_IF_ERROR(CheckKeys(
          m, {"name", "type", "input", "key_by", "fields", "key_env", "key_file", "length", "parallelism"}, what,
          " (the key itself is never in a job spec: each TaskManager reads it from key_env or key_file)"));
    } else if (type == "score_model") {
      RETURN_IF_ERROR(CheckKeys(m, {"name", "type", "input", "key_by", "model", "threshold", "parallelism"}, what));
    } else {
      return ErrorAt(*type_entry, absl::StrCat("unknown operator type '", type,
                                               "', expected one of ", kOperatorTypes));
    }

    if (type == "union") {
      ASSIGN_OR_RETURN(const Entry* inputs_entry, Required(m, "inputs", what));
      if (!inputs_entry->value.IsSequence()) {
        return ErrorAt(*inputs_entry, absl::StrCat("expected a list of stream names for 'inputs', "
                                                   "got ",
                                                   Describe(inputs_entry->value)));
      }
      std::vector<StreamRef> inputs;
      for (const YAML::Node& item : inputs_entry->value) {
        if (!item.IsScalar()) {
          return ErrorAt(item,
                         absl::StrCat("expected a stream name in 'inputs', got ", Describe(item)));
        }
        RETURN_IF_ERROR(CheckInputName(item, item.Scalar(), name, what, index));
        inputs.emplace_back(item.Scalar());
      }
      ASSIGN_OR_RETURN(VertexOptions options, ParseVertexOptions(m));
      builder_->Union(name, inputs, options);
    } else if (type == "interval_join") {
      ASSIGN_OR_RETURN(std::string left, InputStream(m, "left", name, what, index));
      ASSIGN_OR_RETURN(std::string right, InputStream(m, "right", name, what, index));
      IntervalJoinOptions join;
      ASSIGN_OR_RETURN(join.key_by, OptionalStringList(m, "key_by"));
      ASSIGN_OR_RETURN(join.left_key, OptionalStringList(m, "left_key"));
      ASSIGN_OR_RETURN(join.right_key, OptionalStringList(m, "right_key"));
      ASSIGN_OR_RETURN(const Entry* between, Required(m, "between", what));
      if (!between->value.IsSequence() || between->value.size() != 2) {
        return ErrorAt(*between,
                       absl::StrCat("expected [lower, upper] for 'between', two durations such as "
                                    "[-30m, 0s], got ",
                                    between->value.IsSequence()
                                        ? absl::StrCat("a list of ", between->value.size())
                                        : Describe(between->value)));
      }
      ASSIGN_OR_RETURN(join.lower_ms, Duration(between->value[0], between->value[0].Mark(),
                                               "between", /*allow_negative=*/true));
      ASSIGN_OR_RETURN(join.upper_ms, Duration(between->value[1], between->value[1].Mark(),
                                               "between", /*allow_negative=*/true));
      ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
      builder_->IntervalJoin(name, left, right, join, options);
    } else {
      ASSIGN_OR_RETURN(std::string input, InputStream(m, "input", name, what, index));
      if (type == "filter") {
        ASSIGN_OR_RETURN(std::string where, RequiredString(m, "where", what));
        ASSIGN_OR_RETURN(VertexOptions options, ParseVertexOptions(m));
        builder_->Filter(name, input, where, options);
      } else if (type == "map") {
        ASSIGN_OR_RETURN(const Entry* select, Required(m, "select", what));
        ASSIGN_OR_RETURN(std::vector<NamedExpr> projections, Expressions(*select, what));
        ASSIGN_OR_RETURN(VertexOptions options, ParseVertexOptions(m));
        builder_->Map(name, input, projections, options);
      } else if (type == "aggregate") {
        AggregateOptions aggregate;
        ASSIGN_OR_RETURN(const Entry* key_by, Required(m, "key_by", what));
        ASSIGN_OR_RETURN(aggregate.key_by, StringList(*key_by));
        ASSIGN_OR_RETURN(const Entry* aggregates, Required(m, "aggregates", what));
        ASSIGN_OR_RETURN(aggregate.aggregates, Expressions(*aggregates, what));
        if (const Entry* e = m.Find("state_ttl")) {
          ASSIGN_OR_RETURN(aggregate.state_ttl_ms, DurationMs(*e));
        }
        if (const Entry* e = m.Find("changelog")) {
          ASSIGN_OR_RETURN(aggregate.changelog, Bool(*e));
        }
        if (const Entry* e = m.Find("retract_field")) {
          ASSIGN_OR_RETURN(aggregate.retract_field, String(*e));
        }
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Aggregate(name, input, aggregate, options);
      } else if (type == "process") {
        ASSIGN_OR_RETURN(ProcessOptions process, ParseProcess(m, what));
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Process(name, input, process, options);
      } else if (type == "alert") {
        // The process function alert (runtime/clinical/alert_function.h), per patient by default.
        ProcessOptions process = ProcessOptions::Function("alert", {"patient_id"});
        if (const Entry* e = m.Find("key_by")) {
          ASSIGN_OR_RETURN(process.key_by, StringList(*e));
        }
        for (const char* param : {"level", "min_level", "detail"}) {
          if (const Entry* e = m.Find(param)) {
            ASSIGN_OR_RETURN(process.params[param], String(*e));
          }
        }
        RETURN_IF_ERROR(DurationParam(m, "cooldown", /*positive=*/true, &process.params));
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Process(name, input, process, options);
      } else if (type == "pattern") {
        // The process function pattern (runtime/clinical/pattern_function.h), per patient by default.
        ProcessOptions process = ProcessOptions::Function("pattern", {"patient_id"});
        if (const Entry* e = m.Find("key_by")) {
          ASSIGN_OR_RETURN(process.key_by, StringList(*e));
        }
        // Exactly one condition, checked here so that the error points at it.
        const Entry* condition = nullptr;
        for (const char* key : {"below", "above", "rise", "fall"}) {
          const Entry* e = m.Find(key);
          if (e == nullptr) continue;
          if (condition != nullptr) {
            return ErrorAt(*e, absl::StrCat("'", key, "' conflicts with '", condition->key, "' in ", what,
                                            ": a pattern has exactly one of below, above, rise, fall"));
          }
          condition = e;
        }
        if (condition == nullptr) {
          return ErrorAt(m.node, absl::StrCat(what, " needs one of below, above, rise or fall"));
        }
        RETURN_IF_ERROR(Required(m, "sign", what).status());
        for (const char* param : {"sign", "below", "above", "rise", "fall", "count", "label"}) {
          if (const Entry* e = m.Find(param)) {
            ASSIGN_OR_RETURN(process.params[param], String(*e));
          }
        }
        RETURN_IF_ERROR(DurationParam(m, "within", /*positive=*/true, &process.params));
        RETURN_IF_ERROR(DurationParam(m, "cooldown", /*positive=*/false, &process.params));
        if (const Entry* e = m.Find("state_ttl")) {
          ASSIGN_OR_RETURN(process.state_ttl_ms, DurationMs(*e));
        }
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Process(name, input, process, options);
      } else if (type == "pseudonymize") {
        // The process function pseudonymize (runtime/clinical/pseudonymize_function.h):
        // stateless, partitioned per patient by default.
        ASSIGN_OR_RETURN(const Entry* fields, Required(m, "fields", what));
        ASSIGN_OR_RETURN(std::vector<std::string> names, StringList(*fields));
        std::vector<std::string> partition = {"patient_id"};
        if (const Schema* in = builder_->StreamSchema(input);
            in != nullptr && in->IndexOf("patient_id") < 0 && !names.empty()) {
          partition = {names.front()};
        }
        if (const Entry* e = m.Find("key_by")) {
          ASSIGN_OR_RETURN(partition, StringList(*e));
        }
        ProcessOptions process = ProcessOptions::Function("pseudonymize", std::move(partition));
        process.params["fields"] = absl::StrJoin(names, ",");
        for (const char* param : {"key_env", "key_file", "length"}) {
          if (const Entry* e = m.Find(param)) {
            ASSIGN_OR_RETURN(process.params[param], String(*e));
          }
        }
        if (auto it = process.params.find("key_file"); it != process.params.end()) it->second = ResolvePath(it->second);
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Process(name, input, process, options);
      } else if (type == "score_model") {
        // The process function score_model (runtime/clinical/score_model_function.h),
        // per patient by default. The model is read here too, so that an error
        // in it points at `model`; its fingerprint pins every TaskManager to
        // the file the job was compiled against.
        ProcessOptions process = ProcessOptions::Function("score_model", {"patient_id"});
        if (const Entry* e = m.Find("key_by")) {
          ASSIGN_OR_RETURN(process.key_by, StringList(*e));
        }
        ASSIGN_OR_RETURN(const Entry* model_entry, Required(m, "model", what));
        ASSIGN_OR_RETURN(std::string model_path, String(*model_entry));
        const std::string resolved = ResolvePath(model_path);
        absl::StatusOr<std::unique_ptr<ScoreModel>> model = ScoreModel::Load(resolved);
        if (!model.ok()) return ErrorAt(*model_entry, std::string(model.status().message()));
        process.params["model"] = resolved;
        process.params["fingerprint"] = (*model)->FingerprintHex();
        if (const Entry* e = m.Find("threshold")) {
          ASSIGN_OR_RETURN(double threshold, Number(*e));
          if (!(threshold >= 0 && threshold <= 1)) {
            return ErrorAt(*e, "threshold must be between 0 and 1 (the score is a probability)");
          }
          process.params["threshold"] = e->value.Scalar();
        }
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Process(name, input, process, options);
      } else if (type == "dedup") {
        // The process function dedup (runtime/clinical/dedup_function.h).
        ASSIGN_OR_RETURN(const Entry* key, Required(m, "key", what));
        ASSIGN_OR_RETURN(std::vector<std::string> key_fields, StringList(*key));
        // Partitioned per patient when the stream has one, so that each
        // patient's records stay in order for the scores downstream;
        // `key_by` says otherwise.
        std::vector<std::string> partition = key_fields;
        if (const Schema* in = builder_->StreamSchema(input); in != nullptr && in->IndexOf("patient_id") >= 0) {
          partition = {"patient_id"};
        }
        if (const Entry* e = m.Find("key_by")) {
          ASSIGN_OR_RETURN(partition, StringList(*e));
        }
        ProcessOptions process = ProcessOptions::Function("dedup", std::move(partition));
        process.params["key"] = absl::StrJoin(key_fields, ",");
        RETURN_IF_ERROR(Required(m, "ttl", what).status());
        RETURN_IF_ERROR(DurationParam(m, "ttl", /*positive=*/true, &process.params));
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Process(name, input, process, options);
      } else if (type == "news2" || type == "qsofa") {
        // The process function of that name (runtime/clinical/early_warning_function.h),
        // per patient by default.
        ProcessOptions process = ProcessOptions::Function(type, {"patient_id"});
        if (const Entry* e = m.Find("key_by")) {
          ASSIGN_OR_RETURN(process.key_by, StringList(*e));
        }
        RETURN_IF_ERROR(DurationParam(m, "max_age", /*positive=*/true, &process.params));
        RETURN_IF_ERROR(DurationParam(m, "max_future", /*positive=*/false, &process.params));
        if (const Entry* e = m.Find("state_ttl")) {
          ASSIGN_OR_RETURN(process.state_ttl_ms, DurationMs(*e));
        }
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Process(name, input, process, options);
      } else if (type == "window") {
        ASSIGN_OR_RETURN(WindowOptions window, ParseWindow(m, what));
        ASSIGN_OR_RETURN(VertexOptions options, ParseParallelism(m));
        builder_->Window(name, input, window, options);
      } else {  // broadcast_join
        ASSIGN_OR_RETURN(std::string broadcast, InputStream(m, "broadcast", name, what, index));
        BroadcastJoinOptions join;
        ASSIGN_OR_RETURN(join.key_by, OptionalStringList(m, "key_by"));
        ASSIGN_OR_RETURN(join.main_key, OptionalStringList(m, "main_key"));
        ASSIGN_OR_RETURN(join.broadcast_key, OptionalStringList(m, "broadcast_key"));
        // key_by is the join key here; the main input is partitioned as
        // `partition` says.
        ASSIGN_OR_RETURN(VertexOptions options, ParseVertexOptions(m, /*key_by_partitions=*/false));
        builder_->BroadcastJoin(name, input, broadcast, join, options);
      }
    }
    if (builder_->error() != nullptr) return BuilderError(&m);
    vertex_nodes_.emplace(name, std::move(m));
    return absl::OkStatus();
  }

  // A required stream-name field of an operator (input, left, right,
  // broadcast), checked against names declared further down.
  absl::StatusOr<std::string> InputStream(const Mapping& m, std::string_view key,
                                          std::string_view reader, std::string_view what,
                                          int index) const {
    ASSIGN_OR_RETURN(const Entry* e, Required(m, key, what));
    ASSIGN_OR_RETURN(std::string stream, String(*e));
    RETURN_IF_ERROR(CheckInputName(e->value, stream, reader, what, index));
    return stream;
  }

  absl::StatusOr<std::vector<std::string>> OptionalStringList(const Mapping& m,
                                                              std::string_view key) const {
    if (const Entry* e = m.Find(key)) return StringList(*e);
    return std::vector<std::string>();
  }

  // A duration key of a clinical operator type, if present: checked here,
  // where an error can point at it, and passed on as written to the
  // process-function parameter of the same name.
  absl::Status DurationParam(const Mapping& m, std::string_view key, bool positive,
                             ProcessParams::Map* params) const {
    const Entry* e = m.Find(key);
    if (e == nullptr) return absl::OkStatus();
    ASSIGN_OR_RETURN(int64_t ms, DurationMs(*e));
    if (positive && ms <= 0) return ErrorAt(*e, absl::StrCat(AV(key), " must be longer than 0"));
    (*params)[std::string(key)] = e->value.Scalar();
    return absl::OkStatus();
  }

  // type: process: everything but the input.
  absl::StatusOr<ProcessOptions> ParseProcess(const Mapping& m, std::string_view what) const {
    ProcessOptions p;
    ASSIGN_OR_RETURN(const Entry* key_by, Required(m, "key_by", what));
    ASSIGN_OR_RETURN(p.key_by, StringList(*key_by));
    ASSIGN_OR_RETURN(p.function, RequiredString(m, "function", what));
    if (const Entry* e = m.Find("params")) {
      ASSIGN_OR_RETURN(Mapping params,
                       ParseMapping(e->value, absl::StrCat("the params of ", AV(what))));
      for (const Entry& param : params.entries) {
        if (!param.value.IsScalar()) {
          return ErrorAt(param, absl::StrCat("expected a value for param '", param.key, "', got ",
                                             Describe(param.value)));
        }
        if (!p.params.emplace(param.key, param.value.Scalar()).second) {
          return ErrorAt(param.key_node,
                         absl::StrCat("param '", param.key, "' appears twice in ", AV(what)));
        }
      }
    }
    if (const Entry* e = m.Find("output_schema")) {
      ASSIGN_OR_RETURN(p.output_schema, ParseSchema(*e, what));
    }
    if (const Entry* e = m.Find("state_ttl")) {
      ASSIGN_OR_RETURN(p.state_ttl_ms, DurationMs(*e));
    }
    if (const Entry* e = m.Find("dead_letter")) {
      ASSIGN_OR_RETURN(p.dead_letter, String(*e));
    }
    return p;
  }

  // type: window: everything but the input.
  absl::StatusOr<WindowOptions> ParseWindow(const Mapping& m, std::string_view what) const {
    WindowOptions w;
    ASSIGN_OR_RETURN(const Entry* key_by, Required(m, "key_by", what));
    ASSIGN_OR_RETURN(w.key_by, StringList(*key_by));

    ASSIGN_OR_RETURN(const Entry* window, Required(m, "window", what));
    const std::string window_what = absl::StrCat("the window of ", AV(what));
    ASSIGN_OR_RETURN(Mapping wm, ParseMapping(window->value, window_what));
    ASSIGN_OR_RETURN(const Entry* kind_entry, Required(wm, "kind", window_what));
    ASSIGN_OR_RETURN(std::string kind, String(*kind_entry));
    absl::StatusOr<WindowKind> k = ParseWindowKind(kind);
    if (!k.ok()) return ErrorAt(*kind_entry, std::string(k.status().message()));
    w.kind = *k;
    std::vector<std::string_view> extents;
    switch (w.kind) {
      case WindowKind::kTumbling: extents = {"size"}; break;
      case WindowKind::kSliding: extents = {"size", "slide"}; break;
      case WindowKind::kSession: extents = {"gap"}; break;
    }
    std::vector<std::string_view> allowed = {"kind"};
    allowed.insert(allowed.end(), extents.begin(), extents.end());
    RETURN_IF_ERROR(CheckKeys(wm, allowed, absl::StrCat("a ", kind, " window")));
    for (std::string_view key : extents) {
      ASSIGN_OR_RETURN(const Entry* e, Required(wm, key, absl::StrCat("a ", kind, " window")));
      ASSIGN_OR_RETURN(int64_t ms, DurationMs(*e));
      if (key == "size") w.size_ms = ms;
      if (key == "slide") w.slide_ms = ms;
      if (key == "gap") w.gap_ms = ms;
    }

    if (const Entry* e = m.Find("time")) {
      ASSIGN_OR_RETURN(std::string time, String(*e));
      absl::StatusOr<WindowTime> t = ParseWindowTime(time);
      if (!t.ok()) return ErrorAt(*e, std::string(t.status().message()));
      w.time = *t;
    }
    if (const Entry* e = m.Find("allowed_lateness")) {
      ASSIGN_OR_RETURN(w.allowed_lateness_ms, DurationMs(*e));
    }
    if (const Entry* e = m.Find("late_output")) {
      ASSIGN_OR_RETURN(w.late_output, String(*e));
    }
    ASSIGN_OR_RETURN(const Entry* aggregates, Required(m, "aggregates", what));
    ASSIGN_OR_RETURN(w.aggregates, Expressions(*aggregates, what));
    return w;
  }

  absl::Status CompileSink(const YAML::Node& node, int index) {
    const std::string numbered = absl::StrCat("sink #", index + 1);
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(node, numbered));
    ASSIGN_OR_RETURN(std::string name, RequiredString(m, "name", numbered));
    const std::string what = absl::StrCat("sink '", name, "'");
    ASSIGN_OR_RETURN(const Entry* connector_entry, Required(m, "connector", what));
    ASSIGN_OR_RETURN(std::string connector, String(*connector_entry));
    if (connector == "file") {
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "connector", "input", "path", "format", "max_rate",
                                 "parallelism", "partition", "key_by"},
                                what));
    } else if (connector == "stdout") {
      RETURN_IF_ERROR(CheckKeys(m,
                                {"name", "connector", "input", "format", "max_rate", "parallelism",
                                 "partition", "key_by"},
                                what));
    } else if (connector == "blackhole") {
      RETURN_IF_ERROR(CheckKeys(
          m, {"name", "connector", "input", "max_rate", "parallelism", "partition", "key_by"},
          what));
    } else {
      return ErrorAt(*connector_entry,
                     absl::StrCat("unknown connector '", connector, "' for ", what,
                                  ", expected one of file, stdout, blackhole"));
    }
    ASSIGN_OR_RETURN(const Entry* input_entry, Required(m, "input", what));
    ASSIGN_OR_RETURN(std::string input, String(*input_entry));
    RETURN_IF_ERROR(CheckInputName(input_entry->value, input, name, what, -1));
    SinkOptions sink;
    sink.connector = connector;
    if (connector == "file") {
      ASSIGN_OR_RETURN(std::string path, RequiredString(m, "path", what));
      sink.path = ResolvePath(path);
    }
    if (const Entry* e = m.Find("format")) {
      ASSIGN_OR_RETURN(sink.format, String(*e));
    }
    if (const Entry* e = m.Find("max_rate")) {
      ASSIGN_OR_RETURN(sink.max_rate, Number(*e));
    }
    ASSIGN_OR_RETURN(VertexOptions options, ParseVertexOptions(m));
    builder_->Sink(name, input, sink, options);
    if (builder_->error() != nullptr) return BuilderError(&m);
    vertex_nodes_.emplace(name, std::move(m));
    return absl::OkStatus();
  }

  const std::string_view text_;
  const std::string display_path_;
  const std::string base_dir_;
  std::unique_ptr<JobBuilder> builder_;  // created once the job's name is known
  Mapping top_;
  const int parallelism_override_;  // > 0: replaces the spec's parallelism
  // Each vertex's mapping, to locate errors that Build() finds.
  absl::flat_hash_map<std::string, Mapping> vertex_nodes_;
  // Operators and sinks by name, before they are compiled.
  absl::flat_hash_map<std::string, Declared> declared_;
};

}  // namespace

absl::StatusOr<proto::JobGraph> CompileJobSpec(std::string_view yaml_text,
                                               const std::string& display_path,
                                               const std::string& base_dir, int parallelism) {
  return SpecCompiler(yaml_text, display_path, base_dir, parallelism).Compile();
}

absl::StatusOr<proto::JobGraph> CompileJobSpecFile(const std::string& path, int parallelism) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read job spec '", path, "'"));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat("cannot read job spec '", path, "'"));
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  const std::string base_dir = ec ? std::string() : abs.parent_path().string();
  return CompileJobSpec(text.str(), path, base_dir, parallelism);
}

}  // namespace vstream
