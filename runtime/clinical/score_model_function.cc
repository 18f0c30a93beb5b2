#include "runtime/clinical/score_model_function.h"

#include <yaml-cpp/yaml.h>

#include <cassert>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/hash.h"
#include "common/yaml_mapping.h"
#include "common/status_macros.h"
#include "runtime/formats/format_util.h"

namespace vstream {

namespace {

namespace fs = std::filesystem;

constexpr char kKinds[] = "logistic_regression or gradient_boosted_trees";

// The keys every model has, and those of each kind.
const std::vector<std::string_view> kCommonKeys = {"name",     "description", "kind", "output",
                                                   "features", "missing",     "means"};
const std::vector<std::string_view> kLogisticKeys = {"intercept"};
const std::vector<std::string_view> kTreeKeys = {"base_score", "split", "trees"};

// 1 / (1 + e^-z), without overflow for large |z|.
double Sigmoid(double z) {
  if (z >= 0) return 1 / (1 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1 + e);
}

// A field name the expressions downstream can use: [A-Za-z_][A-Za-z0-9_]*.
bool IsFieldName(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string Describe(const YAML::Node& node) { return DescribeYaml(node); }

using Entry = YamlEntry;
using Mapping = YamlMapping;

bool Contains(const std::vector<std::string_view>& keys, std::string_view key) {
  for (std::string_view k : keys) {
    if (k == key) return true;
  }
  return false;
}

}  // namespace

// Reads one model file into a ScoreModel. Its errors point into the file:
// "PATH:LINE:COLUMN: message". yaml-cpp reports by exception; Parse catches
// them all.
class ScoreModel::Parser {
 public:
  explicit Parser(const std::string& display_path) : path_(display_path) {}

  absl::Status Parse(std::string_view text, ScoreModel* model) {
    try {
      YAML::Node root;
      try {
        root = YAML::Load(std::string(text));
      } catch (const YAML::ParserException& e) {
        return ErrorAt(e.mark, absl::StrCat("invalid YAML or JSON: ", e.msg));
      }
      return ParseRoot(root, model);
    } catch (const YAML::Exception& e) {
      return ErrorAt(e.mark, absl::StrCat("invalid model file: ", e.msg));
    }
  }

 private:
  // A split or leaf node as the file gives it, indexes local to its tree.
  struct FileNode {
    bool leaf = false;
    int32_t feature = -1;
    int64_t left = -1, right = -1;
    double threshold = 0, value = 0;
    YAML::Mark mark, left_mark, right_mark;
  };

  // ---- errors --------------------------------------------------------------

  absl::Status ErrorAt(const YAML::Mark& mark, std::string_view message) const {
    return YamlErrorAt(path_, mark, message);
  }
  absl::Status ErrorAt(const YAML::Node& node, std::string_view message) const {
    return ErrorAt(node.Mark(), message);
  }
  absl::Status ErrorAt(const Entry& entry, std::string_view message) const {
    return ErrorAt(entry.mark(), message);
  }

  // ---- shape ---------------------------------------------------------------

  absl::StatusOr<Mapping> ParseMapping(const YAML::Node& node, std::string_view what) const {
    return ParseYamlMapping(path_, node, what);
  }

  // Rejects repeated keys, and keys not in `allowed`; `other` are the keys of
  // the other kind of model, for a better message.
  absl::Status CheckKeys(const Mapping& m, const std::vector<std::string_view>& allowed, std::string_view what,
                         const std::vector<std::string_view>& other = {}, std::string_view other_note = "") const {
    for (size_t i = 0; i < m.entries.size(); ++i) {
      const Entry& e = m.entries[i];
      if (!Contains(allowed, e.key)) {
        if (Contains(other, e.key)) {
          return ErrorAt(e.key_node, absl::StrCat("field '", e.key, "' is not used in ", AV(what), AV(other_note)));
        }
        std::string expected;
        for (std::string_view a : allowed) absl::StrAppend(&expected, expected.empty() ? "" : ", ", AV(a));
        return ErrorAt(e.key_node,
                       absl::StrCat("unknown field '", e.key, "' in ", AV(what), ", expected one of ", expected));
      }
      for (size_t j = 0; j < i; ++j) {
        if (m.entries[j].key == e.key) {
          return ErrorAt(e.key_node, absl::StrCat("field '", e.key, "' appears twice in ", AV(what)));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<const Entry*> Required(const Mapping& m, std::string_view key, std::string_view what) const {
    const Entry* e = m.Find(key);
    if (e == nullptr) return ErrorAt(m.node, absl::StrCat("missing required field '", AV(key), "' in ", AV(what)));
    return e;
  }

  absl::StatusOr<std::string> String(const Entry& e) const {
    if (!e.value.IsScalar()) {
      return ErrorAt(e, absl::StrCat("expected a string for '", e.key, "', got ", Describe(e.value)));
    }
    return e.value.Scalar();
  }

  // A finite number at `node`; `what` names it ("'intercept'").
  absl::StatusOr<double> Number(const YAML::Node& node, const YAML::Mark& mark, std::string_view what) const {
    double v = 0;
    if (!node.IsScalar() ||
        format_internal::ParseDouble(format_internal::TrimBlanks(node.Scalar()), &v) !=
            format_internal::NumberParse::kOk) {
      return ErrorAt(mark, absl::StrCat("expected a number for ", AV(what), ", got ", Describe(node)));
    }
    if (!std::isfinite(v)) {
      return ErrorAt(mark, absl::StrCat("expected a finite number for ", AV(what), ", got ", Describe(node)));
    }
    return v;
  }
  absl::StatusOr<double> Number(const Entry& e) const {
    return Number(e.value, e.mark(), absl::StrCat("'", e.key, "'"));
  }

  // ---- the model -----------------------------------------------------------

  absl::Status ParseRoot(const YAML::Node& root, ScoreModel* model) {
    if (!root.IsDefined() || root.IsNull()) {
      return ErrorAt(YAML::Mark::null_mark(),
                     "the model file is empty; expected a mapping with name, kind, output and features");
    }
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(root, "the model"));
    ASSIGN_OR_RETURN(const Entry* kind_entry, Required(m, "kind", "the model"));
    ASSIGN_OR_RETURN(std::string kind, String(*kind_entry));
    if (kind == "logistic_regression") {
      model->kind_ = ModelKind::kLogisticRegression;
    } else if (kind == "gradient_boosted_trees") {
      model->kind_ = ModelKind::kGradientBoostedTrees;
    } else {
      return ErrorAt(*kind_entry, absl::StrCat("unknown model kind '", kind, "', expected ", kKinds));
    }
    const bool logistic = model->kind_ == ModelKind::kLogisticRegression;
    std::vector<std::string_view> allowed = kCommonKeys;
    const std::vector<std::string_view>& own = logistic ? kLogisticKeys : kTreeKeys;
    allowed.insert(allowed.end(), own.begin(), own.end());
    const std::string what = absl::StrCat("a ", kind, " model");
    RETURN_IF_ERROR(CheckKeys(m, allowed, what, logistic ? kTreeKeys : kLogisticKeys,
                              logistic ? " (it is for gradient_boosted_trees)" : " (it is for logistic_regression)"));

    ASSIGN_OR_RETURN(const Entry* name, Required(m, "name", what));
    ASSIGN_OR_RETURN(model->name_, String(*name));
    if (model->name_.empty()) return ErrorAt(*name, "the model's name is empty");
    if (const Entry* e = m.Find("description")) RETURN_IF_ERROR(String(*e).status());

    ASSIGN_OR_RETURN(const Entry* output, Required(m, "output", what));
    ASSIGN_OR_RETURN(model->output_, String(*output));
    if (!IsFieldName(model->output_)) {
      return ErrorAt(*output, absl::StrCat("output '", model->output_,
                                           "' is no field name: use letters, digits and '_', starting with a letter or '_'"));
    }
    model->output_line_ = output->mark().line + 1;
    model->output_column_ = output->mark().column + 1;

    if (const Entry* e = m.Find("missing")) {
      ASSIGN_OR_RETURN(std::string missing, String(*e));
      if (missing == "skip") {
        model->missing_ = MissingFeature::kSkip;
      } else if (missing == "zero") {
        model->missing_ = MissingFeature::kZero;
      } else if (missing == "mean") {
        model->missing_ = MissingFeature::kMean;
      } else {
        return ErrorAt(*e, absl::StrCat("unknown missing '", missing, "', expected skip (the default), zero or mean"));
      }
    }

    ASSIGN_OR_RETURN(const Entry* features, Required(m, "features", what));
    RETURN_IF_ERROR(logistic ? ParseCoefficients(*features, model) : ParseFeatureList(*features, model));
    RETURN_IF_ERROR(ParseMeans(m, model));

    if (logistic) {
      ASSIGN_OR_RETURN(const Entry* intercept, Required(m, "intercept", what));
      ASSIGN_OR_RETURN(model->intercept_, Number(*intercept));
      return absl::OkStatus();
    }
    if (const Entry* e = m.Find("base_score")) {
      ASSIGN_OR_RETURN(model->intercept_, Number(*e));
    }
    if (const Entry* e = m.Find("split")) {
      ASSIGN_OR_RETURN(std::string split, String(*e));
      if (split == "<") {
        model->split_ = SplitRule::kLess;
      } else if (split == "<=") {
        model->split_ = SplitRule::kLessOrEqual;
      } else {
        return ErrorAt(*e, absl::StrCat("unknown split '", split,
                                        "', expected \"<\" (left when x < threshold, the default) or \"<=\""));
      }
    }
    ASSIGN_OR_RETURN(const Entry* trees, Required(m, "trees", what));
    return ParseTrees(*trees, model);
  }

  // A new feature named by `key` (checked for a name and repeats).
  absl::Status AddFeature(const YAML::Node& key, ScoreModel* model) const {
    if (!key.IsScalar() || key.Scalar().empty()) {
      return ErrorAt(key, absl::StrCat("expected a feature name, got ", Describe(key)));
    }
    for (const Feature& f : model->features_) {
      if (f.name == key.Scalar()) {
        return ErrorAt(key, absl::StrCat("feature '", key.Scalar(), "' appears twice in 'features'"));
      }
    }
    Feature f;
    f.name = key.Scalar();
    f.line = key.Mark().line + 1;
    f.column = key.Mark().column + 1;
    model->features_.push_back(std::move(f));
    return absl::OkStatus();
  }

  // logistic_regression: `features: {name: coefficient, ...}`.
  absl::Status ParseCoefficients(const Entry& e, ScoreModel* model) const {
    if (!e.value.IsMap() || e.value.size() == 0) {
      return ErrorAt(e, absl::StrCat("expected a mapping of feature name to coefficient for 'features' of a "
                                     "logistic_regression model, got ",
                                     e.value.IsMap() ? "an empty mapping" : Describe(e.value)));
    }
    for (auto it = e.value.begin(); it != e.value.end(); ++it) {
      RETURN_IF_ERROR(AddFeature(it->first, model));
      const YAML::Mark at = it->second.IsNull() ? it->first.Mark() : it->second.Mark();
      ASSIGN_OR_RETURN(model->features_.back().coefficient,
                       Number(it->second, at, absl::StrCat("the coefficient of feature '", it->first.Scalar(), "'")));
    }
    return absl::OkStatus();
  }

  // gradient_boosted_trees: `features: [name, ...]`.
  absl::Status ParseFeatureList(const Entry& e, ScoreModel* model) const {
    if (!e.value.IsSequence() || e.value.size() == 0) {
      return ErrorAt(e, absl::StrCat("expected a list of the feature names the trees use for 'features' of a "
                                     "gradient_boosted_trees model, got ",
                                     e.value.IsSequence() ? "an empty list" : Describe(e.value)));
    }
    for (const YAML::Node& item : e.value) RETURN_IF_ERROR(AddFeature(item, model));
    return absl::OkStatus();
  }

  // `means: {name: mean, ...}`: required with missing: mean, for every
  // feature; not allowed otherwise.
  absl::Status ParseMeans(const Mapping& m, ScoreModel* model) const {
    const Entry* e = m.Find("means");
    if (model->missing_ != MissingFeature::kMean) {
      if (e != nullptr) return ErrorAt(e->key_node, "'means' is used only with missing: mean");
      return absl::OkStatus();
    }
    if (e == nullptr) {
      return ErrorAt(m.node, "missing required field 'means' (each feature's mean), which missing: mean needs");
    }
    ASSIGN_OR_RETURN(Mapping means, ParseMapping(e->value, "'means'"));
    std::vector<bool> seen(model->features_.size(), false);
    for (const Entry& mean : means.entries) {
      size_t f = 0;
      while (f < model->features_.size() && model->features_[f].name != mean.key) ++f;
      if (f == model->features_.size()) {
        return ErrorAt(mean.key_node, absl::StrCat("'means' names '", mean.key, "', which is not one of the features"));
      }
      if (seen[f]) return ErrorAt(mean.key_node, absl::StrCat("feature '", mean.key, "' appears twice in 'means'"));
      seen[f] = true;
      ASSIGN_OR_RETURN(model->features_[f].fill,
                       Number(mean.value, mean.mark(), absl::StrCat("the mean of feature '", mean.key, "'")));
    }
    for (size_t f = 0; f < seen.size(); ++f) {
      if (!seen[f]) {
        return ErrorAt(e->key_node, absl::StrCat("'means' has no mean for feature '", model->features_[f].name,
                                                 "'; missing: mean needs one for every feature"));
      }
    }
    return absl::OkStatus();
  }

  // `trees: [{nodes: [...]}, ...]`, each tree's node 0 its root.
  absl::Status ParseTrees(const Entry& e, ScoreModel* model) const {
    if (!e.value.IsSequence() || e.value.size() == 0) {
      return ErrorAt(e, absl::StrCat("expected a list of trees for 'trees', got ",
                                     e.value.IsSequence() ? "an empty list" : Describe(e.value)));
    }
    int t = 0;
    std::vector<FileNode> nodes;
    for (const YAML::Node& tree_node : e.value) {
      const std::string what = absl::StrCat("tree ", t);
      ASSIGN_OR_RETURN(Mapping tree, ParseMapping(tree_node, what));
      RETURN_IF_ERROR(CheckKeys(tree, {"nodes"}, what));
      ASSIGN_OR_RETURN(const Entry* list, Required(tree, "nodes", what));
      if (!list->value.IsSequence() || list->value.size() == 0) {
        return ErrorAt(*list, absl::StrCat("expected a list of nodes for 'nodes' of ", what, ", got ",
                                           list->value.IsSequence() ? "an empty list" : Describe(list->value)));
      }
      nodes.clear();
      int n = 0;
      for (const YAML::Node& item : list->value) {
        ASSIGN_OR_RETURN(FileNode node, ParseNode(item, absl::StrCat(what, ", node ", n), model));
        nodes.push_back(node);
        ++n;
      }
      RETURN_IF_ERROR(CheckTree(what, nodes));
      // Into the flat array, children offset by the tree's start.
      const int32_t base = static_cast<int32_t>(model->nodes_.size());
      model->roots_.push_back(base);
      for (const FileNode& f : nodes) {
        Node node;
        if (f.leaf) {
          node.value = f.value;
        } else {
          node.feature = f.feature;
          node.threshold = f.threshold;
          node.left = base + static_cast<int32_t>(f.left);
          node.right = base + static_cast<int32_t>(f.right);
        }
        model->nodes_.push_back(node);
      }
      ++t;
    }
    return absl::OkStatus();
  }

  // `{leaf: value}` or `{feature: name, threshold: x, left: i, right: j}`.
  absl::StatusOr<FileNode> ParseNode(const YAML::Node& item, const std::string& what, const ScoreModel* model) const {
    ASSIGN_OR_RETURN(Mapping m, ParseMapping(item, what));
    FileNode node;
    node.mark = item.Mark();
    if (const Entry* leaf = m.Find("leaf")) {
      RETURN_IF_ERROR(CheckKeys(m, {"leaf"}, absl::StrCat(what, " (a leaf: {leaf: value})")));
      node.leaf = true;
      ASSIGN_OR_RETURN(node.value, Number(*leaf));
      return node;
    }
    const std::string split_what = absl::StrCat(what, " (a split: {feature, threshold, left, right})");
    RETURN_IF_ERROR(CheckKeys(m, {"feature", "threshold", "left", "right"}, split_what));
    ASSIGN_OR_RETURN(const Entry* feature, Required(m, "feature", split_what));
    ASSIGN_OR_RETURN(std::string name, String(*feature));
    for (size_t f = 0; f < model->features_.size() && node.feature < 0; ++f) {
      if (model->features_[f].name == name) node.feature = static_cast<int32_t>(f);
    }
    if (node.feature < 0) {
      std::string names;
      for (const Feature& f : model->features_) absl::StrAppend(&names, names.empty() ? "" : ", ", f.name);
      return ErrorAt(*feature, absl::StrCat("feature '", name, "' is not in the model's features (", names,
                                            "); list it under 'features'"));
    }
    ASSIGN_OR_RETURN(const Entry* threshold, Required(m, "threshold", split_what));
    ASSIGN_OR_RETURN(node.threshold, Number(*threshold));
    ASSIGN_OR_RETURN(const Entry* left, Required(m, "left", split_what));
    ASSIGN_OR_RETURN(node.left, Index(*left));
    node.left_mark = left->mark();
    ASSIGN_OR_RETURN(const Entry* right, Required(m, "right", split_what));
    ASSIGN_OR_RETURN(node.right, Index(*right));
    node.right_mark = right->mark();
    return node;
  }

  absl::StatusOr<int64_t> Index(const Entry& e) const {
    int64_t v = -1;
    if (!e.value.IsScalar() ||
        format_internal::ParseInt64(e.value.Scalar(), &v) != format_internal::NumberParse::kOk || v < 0) {
      return ErrorAt(e, absl::StrCat("expected a node index (0 is the tree's first node) for '", e.key, "', got ",
                                     Describe(e.value)));
    }
    return v;
  }

  // The nodes form one tree rooted at node 0: every child index names a
  // node of the tree, no path comes back to a node on it (a cycle), no node
  // has two parents, and every node is reachable from the root. Then
  // Evaluate's walk from a root ends at a leaf in at most size() steps.
  absl::Status CheckTree(const std::string& what, const std::vector<FileNode>& nodes) const {
    const int64_t n = static_cast<int64_t>(nodes.size());
    for (int64_t i = 0; i < n; ++i) {
      const FileNode& node = nodes[i];
      if (node.leaf) continue;
      for (int side = 0; side < 2; ++side) {
        const int64_t child = side == 0 ? node.left : node.right;
        if (child >= n) {
          return ErrorAt(side == 0 ? node.left_mark : node.right_mark,
                         absl::StrCat(what, ", node ", i, ": ", side == 0 ? "left" : "right", " is node ", child,
                                      ", but the tree has nodes 0 to ", n - 1));
        }
      }
    }
    // Depth-first from the root: kOnPath nodes are the current node's
    // ancestors (and itself).
    enum : uint8_t { kUnseen, kOnPath, kDone };
    std::vector<uint8_t> state(nodes.size(), kUnseen);
    std::vector<int64_t> parent(nodes.size(), -1);
    std::vector<std::pair<int64_t, int>> stack;  // node, next side to visit (2: done)
    stack.emplace_back(0, 0);
    state[0] = kOnPath;
    while (!stack.empty()) {
      const int64_t i = stack.back().first;
      const int side = stack.back().second++;
      const FileNode& node = nodes[i];
      if (node.leaf || side == 2) {
        state[i] = kDone;
        stack.pop_back();
        continue;
      }
      const int64_t child = side == 0 ? node.left : node.right;
      const YAML::Mark& at = side == 0 ? node.left_mark : node.right_mark;
      const char* side_name = side == 0 ? "left" : "right";
      if (state[child] == kOnPath) {
        return ErrorAt(at, absl::StrCat(what, ", node ", i, ": ", side_name, " is node ", child, ", ",
                                        child == i ? "the node itself" : "an ancestor of it",
                                        ": the nodes form a cycle, not a tree"));
      }
      if (state[child] == kDone) {
        return ErrorAt(at, absl::StrCat(what, ", node ", i, ": ", side_name, " is node ", child,
                                        ", which is already a child of node ", parent[child],
                                        "; a tree's node has one parent"));
      }
      parent[child] = i;
      state[child] = kOnPath;
      stack.emplace_back(child, 0);
    }
    for (int64_t i = 0; i < n; ++i) {
      if (state[i] == kUnseen) {
        return ErrorAt(nodes[i].mark,
                       absl::StrCat(what, ", node ", i, " is not reachable from the root (node 0, the first)"));
      }
    }
    return absl::OkStatus();
  }

  const std::string path_;
};

absl::StatusOr<std::unique_ptr<ScoreModel>> ScoreModel::Parse(std::string_view text, std::string display_path) {
  std::unique_ptr<ScoreModel> model(new ScoreModel());
  model->path_ = std::move(display_path);
  model->fingerprint_ = Fnv1a64(text);
  RETURN_IF_ERROR(Parser(model->path_).Parse(text, model.get()));
  return model;
}

absl::StatusOr<std::unique_ptr<ScoreModel>> ScoreModel::Load(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return absl::NotFoundError(absl::StrCat("cannot read model file '", path, "': ",
                                            ec ? ec.message() : std::string("no such file")));
  }
  if (!fs::is_regular_file(status)) {
    return absl::NotFoundError(absl::StrCat("cannot read model file '", path, "': not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read model file '", path, "': ", std::strerror(errno)));
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::NotFoundError(absl::StrCat("cannot read model file '", path, "': ", std::strerror(errno)));
  }
  return Parse(text, path);
}

absl::StatusOr<std::unique_ptr<ScoreModel>> ScoreModel::Load(const std::string& path, const Schema& input) {
  ASSIGN_OR_RETURN(std::unique_ptr<ScoreModel> model, Load(path));
  RETURN_IF_ERROR(model->Bind(input));
  return model;
}

absl::Status ScoreModel::CheckInput(const Schema& input) const {
  auto error_at = [&](int line, int column, std::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line, ":", column, ": ", AV(message)));
  };
  for (const Feature& f : features_) {
    const int i = input.IndexOf(f.name);
    if (i < 0) {
      return error_at(f.line, f.column, absl::StrCat("feature '", f.name, "' is not a field of the input; it has ",
                                                     input.DebugString()));
    }
    const FieldType type = input.field(i).type;
    if (type != FieldType::kInt && type != FieldType::kDouble && type != FieldType::kBool) {
      return error_at(f.line, f.column,
                      absl::StrCat("feature '", f.name, "' is a ", FieldTypeName(type),
                                   " field of the input; a feature is an int, double or bool (1 or 0) field"));
    }
  }
  if (input.IndexOf(output_) >= 0) {
    return error_at(output_line_, output_column_,
                    absl::StrCat("output '", output_,
                                 "' is already a field of the input; name the score something else"));
  }
  return absl::OkStatus();
}

absl::Status ScoreModel::Bind(const Schema& input) {
  RETURN_IF_ERROR(CheckInput(input));
  for (Feature& f : features_) {
    f.field = input.IndexOf(f.name);
    f.is_double = input.field(f.field).type == FieldType::kDouble;
  }
  bound_ = true;
  return absl::OkStatus();
}

std::optional<double> ScoreModel::Evaluate(const Row& row) const {
  assert(bound_ && "ScoreModel::Evaluate before Bind");
  if (missing_ == MissingFeature::kSkip) {
    for (const Feature& f : features_) {
      if (IsMissing(row[f.field], f.is_double)) return std::nullopt;
    }
  }
  double z = intercept_;
  if (kind_ == ModelKind::kLogisticRegression) {
    for (const Feature& f : features_) z += f.coefficient * Value(row, f);
    return Sigmoid(z);
  }
  const bool less_or_equal = split_ == SplitRule::kLessOrEqual;
  for (const int32_t root : roots_) {
    // Load checked that every path from a root ends at a leaf.
    const Node* node = &nodes_[root];
    while (node->feature >= 0) {
      const double x = Value(row, features_[node->feature]);
      const bool left = less_or_equal ? x <= node->threshold : x < node->threshold;
      node = &nodes_[left ? node->left : node->right];
    }
    z += node->value;
  }
  return Sigmoid(z);
}

std::vector<std::string> ScoreModel::feature_names() const {
  std::vector<std::string> names;
  names.reserve(features_.size());
  for (const Feature& f : features_) names.push_back(f.name);
  return names;
}

std::string ScoreModel::FingerprintHex() const {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(fingerprint_));
  return std::string(hex, 16);
}

namespace {

// The process function around a ScoreModel: the input row, then the score
// (and with a threshold, whether it reaches it). Keeps no state and sets no
// timers. One instance per subtask, called on its task thread; the model is
// its own (each instance reads the file).
class ScoreModelFunction final : public KeyedProcessFunction {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Create(const ProcessParams& params) {
    RETURN_IF_ERROR(params.CheckKnown({"model", "threshold", "fingerprint"}));
    ASSIGN_OR_RETURN(std::string path, params.GetString("model"));
    if (path.empty()) return ProcessParams::Error("model", "is empty; expected the path of a model file");
    if (!fs::path(path).is_absolute()) {
      return ProcessParams::Error(
          "model", absl::StrCat("'", path,
                                "' is a relative path; give an absolute path that the client and every TaskManager "
                                "can read (type: score_model resolves one against the job spec's directory)"));
    }
    std::optional<double> threshold;
    if (params.Has("threshold")) {
      ASSIGN_OR_RETURN(double t, params.GetDouble("threshold"));
      if (!(t >= 0 && t <= 1)) {
        return ProcessParams::Error("threshold",
                                    absl::StrCat("must be between 0 and 1 (the score is a probability), got ",
                                                 params.values().find("threshold")->second));
      }
      threshold = t;
    }
    absl::StatusOr<std::unique_ptr<ScoreModel>> model = ScoreModel::Load(path);
    if (!model.ok()) return ProcessParams::Error("model", std::string(model.status().message()));
    if (params.Has("fingerprint")) {
      ASSIGN_OR_RETURN(std::string want, params.GetString("fingerprint"));
      const std::string got = (*model)->FingerprintHex();
      if (want != got) {
        return ProcessParams::Error(
            "fingerprint", absl::StrCat("model file '", path, "' here has fingerprint ", got, ", not ", want,
                                        ": this copy differs from the one the job was compiled against"));
      }
    }
    return std::unique_ptr<KeyedProcessFunction>(new ScoreModelFunction(std::move(*model), threshold));
  }

  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const override {
    const absl::Status checked = model_->CheckInput(input.schema);
    if (!checked.ok()) return ProcessParams::Error("model", std::string(checked.message()));
    // The input's fields, then the score's: its key fields are the key's.
    ProcessOutputSchema out{input.schema, input.time_index, input.key_fields};
    out.schema.Add(model_->output(), FieldType::kDouble);
    if (threshold_) {
      const std::string high = HighName();
      if (input.schema.IndexOf(high) >= 0) {
        return ProcessParams::Error("threshold", absl::StrCat("the input already has a field '", high,
                                                              "', which threshold adds; rename it in a map first"));
      }
      out.schema.Add(high, FieldType::kBool);
    }
    return out;
  }

  absl::Status Open(ProcessSetup& setup) override {
    RETURN_IF_ERROR(model_->Bind(setup.input().schema));
    width_ = setup.input().schema.size();
    return absl::OkStatus();
  }

  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    Row& out = ctx.Emit();
    // Datum assignment reuses the output row's string capacity.
    for (size_t f = 0; f < width_; ++f) out[f] = in[f];
    const std::optional<double> score = model_->Evaluate(in);
    if (score) {
      out[width_].SetDouble(*score);
    } else {
      out[width_].SetNull();
    }
    if (threshold_) {
      if (score) {
        out[width_ + 1].SetBool(*score >= *threshold_);
      } else {
        out[width_ + 1].SetNull();
      }
    }
    return absl::OkStatus();
  }

 private:
  ScoreModelFunction(std::unique_ptr<ScoreModel> model, std::optional<double> threshold)
      : model_(std::move(model)), threshold_(threshold) {}

  std::string HighName() const { return absl::StrCat(model_->output(), "_high"); }

  const std::unique_ptr<ScoreModel> model_;
  const std::optional<double> threshold_;
  size_t width_ = 0;  // the input's fields; the score follows them
};

}  // namespace

void RegisterScoreModelFunction(ProcessFunctionRegistry& registry) {
  (void)registry.Register("score_model", &ScoreModelFunction::Create);
}

}  // namespace vstream
