#pragma once
// The `score_model` process function: real-time inference with a model read
// from a file, applied to features that earlier operators computed (news2's
// sub-scores, a window's hr_avg). Each input row goes out unchanged with the
// model's probability appended:
//
//   rows with numeric fields          score_model (stateless)
//   news2_total, red_score,     -->   the input row, then
//   hr_avg, ...                         <output>       double in [0, 1]; null
//                                                      when a feature is
//                                                      missing and the model
//                                                      says `missing: skip`
//                                       <output>_high  bool, score >= threshold
//                                                      (with `threshold` only)
//
// The model file is YAML or JSON (YAML is a superset of JSON; one loader
// reads both). Its format, the two kinds and how to convert a trained model
// are in examples/models/README.md; in short:
//
//   logistic_regression     p = sigmoid(intercept + sum of coefficient * x)
//   gradient_boosted_trees  p = sigmoid(base_score + sum of each tree's leaf),
//                           XGBoost's binary:logistic (base_score on the
//                           log-odds scale); a split node sends x to `left`
//                           when x < threshold (`split: "<="` for sklearn's
//                           and LightGBM's x <= threshold)
//
// A feature is an int, double or bool field of the input (a bool is 1 or 0).
// A feature that is null, or a double that is NaN, is missing; the model's
// `missing` says what that does: `skip` (the default) makes the score null,
// `zero` counts it as 0, `mean` as the mean the model's `means` gives it. The
// default is skip because a made-up value gives a made-up risk: a null score
// says plainly that the model could not judge.
//
// Where the file is read. The function's factory runs in the client (vstream)
// when it compiles the job and in each TaskManager for each subtask, so the
// model is loaded and validated in both: a bad model fails the submission,
// with an error at its file, line and column ("/models/m.yaml:12:5: feature
// 'lactate' is not a field of the input; it has {...}"). The path must
// therefore name the same file on the client and on every TaskManager: a
// shared volume, or a path baked into the TaskManager image. It must be
// absolute (the processes have different working directories; the job
// spec's `type: score_model` resolves a relative path against the spec's
// directory). The optional `fingerprint` parameter (FNV-1a 64 of the file's
// bytes, 16 hex digits, ScoreModel::FingerprintHex) makes a TaskManager
// whose copy differs from the one the job was compiled against fail the task
// instead of scoring with another model.
//
// Parameters: model (absolute path of the model file, required), threshold
// (a number in [0, 1], optional), fingerprint (16 hex digits, optional).
//
// The output is the input's schema plus the score field(s); its event time
// is the input's. No keyed state: the operator's state backend stays empty.
// Per record: one pass over the features (and each tree's path), no
// allocation.

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/operators/process_function_registry.h"
#include "runtime/types.h"

namespace vstream {

enum class ModelKind : uint8_t {
  kLogisticRegression,    // kind: logistic_regression
  kGradientBoostedTrees,  // kind: gradient_boosted_trees
};

// What a missing feature (null, or a NaN double) does.
enum class MissingFeature : uint8_t {
  kSkip,  // the score is null (the default)
  kZero,  // the feature counts as 0
  kMean,  // the feature counts as the model's mean for it (`means`)
};

// Which way a tree's split node sends a value equal to its threshold.
enum class SplitRule : uint8_t {
  kLess,         // split: "<"  (the default): left when x < threshold (XGBoost)
  kLessOrEqual,  // split: "<=": left when x <= threshold (sklearn, LightGBM)
};

// A model file, parsed and validated, then bound to an input schema.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<ScoreModel> model, ScoreModel::Load(path));
//   RETURN_IF_ERROR(model->Bind(input_schema));
//   std::optional<double> p = model->Evaluate(row);  // per record
//
// Errors are InvalidArgument "PATH:LINE:COLUMN: message" pointing into the
// model file (yaml-cpp's marks; 1-based), NotFound for a file that cannot be
// read. Load checks everything the file alone decides (the kind, the keys of
// that kind, numbers, tree node indexes, cycles); CheckInput and Bind check
// the features against an input schema.
//
// Thread-compatible; once bound, Evaluate is const and safe to call from any
// number of threads.
class ScoreModel {
 public:
  // Reads and validates the model file at `path`.
  static absl::StatusOr<std::unique_ptr<ScoreModel>> Load(const std::string& path);
  // Load, then Bind(input).
  static absl::StatusOr<std::unique_ptr<ScoreModel>> Load(const std::string& path, const Schema& input);
  // The same from the file's text; `display_path` names it in errors.
  static absl::StatusOr<std::unique_ptr<ScoreModel>> Parse(std::string_view text, std::string display_path);

  ScoreModel(const ScoreModel&) = delete;
  ScoreModel& operator=(const ScoreModel&) = delete;

  // OK if every feature is an int, double or bool field of `input` and the
  // output field is not one of its fields; else an error at the feature's
  // (or the output's) place in the file.
  absl::Status CheckInput(const Schema& input) const;
  // CheckInput, then resolves each feature to its field, for Evaluate.
  absl::Status Bind(const Schema& input);
  bool bound() const { return bound_; }

  // The probability for a row of the bound schema, or nullopt when a
  // feature is missing and missing is kSkip. Requires Bind. Allocates
  // nothing.
  std::optional<double> Evaluate(const Row& row) const;

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }
  ModelKind kind() const { return kind_; }
  // The name of the score field the function adds.
  const std::string& output() const { return output_; }
  MissingFeature missing() const { return missing_; }
  // The feature names, in file order.
  std::vector<std::string> feature_names() const;
  // FNV-1a 64 of the file's bytes, as 16 lowercase hex digits.
  std::string FingerprintHex() const;

 private:
  class Parser;  // the file's reader (score_model_function.cc)

  // One input of the model.
  struct Feature {
    std::string name;
    double coefficient = 0;  // logistic_regression
    double fill = 0;         // the value of a missing feature (kZero, kMean)
    int line = 0, column = 0;  // of the name in the file, 1-based
    // After Bind: the field in the row, and whether its value is in Datum::d
    // (double) or Datum::i (int, bool).
    int field = -1;
    bool is_double = false;
  };

  // A tree node, in one flat array for all trees. Children are indexes in
  // that array; the file's per-tree indexes are offset when loading.
  struct Node {
    int32_t feature = -1;  // index in features_; -1: a leaf
    int32_t left = -1, right = -1;
    double threshold = 0;  // split nodes
    double value = 0;      // leaves
  };

  ScoreModel() = default;

  // A feature's value in `row`, its fill when missing.
  double Value(const Row& row, const Feature& f) const {
    const Datum& d = row[f.field];
    if (d.is_null) return f.fill;
    if (!f.is_double) return static_cast<double>(d.i);
    return std::isnan(d.d) ? f.fill : d.d;
  }
  static bool IsMissing(const Datum& d, bool is_double) { return d.is_null || (is_double && std::isnan(d.d)); }

  std::string path_;
  std::string name_;
  ModelKind kind_ = ModelKind::kLogisticRegression;
  std::string output_;
  int output_line_ = 0, output_column_ = 0;
  MissingFeature missing_ = MissingFeature::kSkip;
  SplitRule split_ = SplitRule::kLess;
  double intercept_ = 0;  // logistic_regression's intercept, or the trees' base_score
  std::vector<Feature> features_;
  std::vector<Node> nodes_;
  std::vector<int32_t> roots_;  // one per tree, in nodes_
  uint64_t fingerprint_ = 0;
  bool bound_ = false;
};

// Registers score_model.
void RegisterScoreModelFunction(ProcessFunctionRegistry& registry);

}  // namespace vstream
