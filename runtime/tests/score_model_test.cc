#include "runtime/clinical/score_model_function.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/tests/collect_rows.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/operators/process_operator.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The features of the tests' models, as a window and news2 would give them,
// with a key, an event time and a string that is no feature.
const Schema kInput({{"patient_id", FieldType::kString},
                     {"ts", FieldType::kTimestamp},
                     {"news2_total", FieldType::kInt},
                     {"hr_avg", FieldType::kDouble},
                     {"red_score", FieldType::kBool},
                     {"risk_band", FieldType::kString}});

// A row of kInput; nullopt: a null field.
Row Features(std::optional<int64_t> news2_total, std::optional<double> hr_avg, std::optional<bool> red_score,
             const std::string& patient = "p1", int64_t ts = 1000) {
  Row row(kInput.size());
  row[0].SetString(patient);
  row[1].SetInt(ts);
  if (news2_total) row[2].SetInt(*news2_total);
  if (hr_avg) row[3].SetDouble(*hr_avg);
  if (red_score) row[4].SetBool(*red_score);
  row[5].SetString("medium");
  return row;
}

// z = -4.2 + 0.45 news2_total + 0.02 hr_avg + 0.6 red_score.
constexpr char kLogistic[] = R"(name: test-logreg
kind: logistic_regression
output: risk
intercept: -4.2
features:
  news2_total: 0.45
  hr_avg: 0.02
  red_score: 0.6
)";

// The same model in JSON.
constexpr char kLogisticJson[] = R"({
  "name": "test-logreg",
  "kind": "logistic_regression",
  "output": "risk",
  "intercept": -4.2,
  "features": {"news2_total": 0.45, "hr_avg": 0.02, "red_score": 0.6}
})";

// z = -1.0 + tree 0 + tree 1:
//   tree 0: news2_total < 5 ? -0.5 : (hr_avg < 100 ? 0.3 : 0.8)
//   tree 1: red_score < 0.5 ? -0.2 : 0.6
constexpr char kTrees[] = R"(name: test-gbt
kind: gradient_boosted_trees
output: risk
features: [news2_total, hr_avg, red_score]
base_score: -1.0
trees:
  - nodes:
      - {feature: news2_total, threshold: 5, left: 1, right: 2}
      - {leaf: -0.5}
      - {feature: hr_avg, threshold: 100, left: 3, right: 4}
      - {leaf: 0.3}
      - {leaf: 0.8}
  - nodes:
      - {feature: red_score, threshold: 0.5, left: 1, right: 2}
      - {leaf: -0.2}
      - {leaf: 0.6}
)";

// Model files in a directory of the test's own.
class ScoreModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            absl::StrCat("vstream-score-model-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `text` to the file `name` in the test's directory; its path.
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // Loads `text` against kInput; the model, or the test fails.
  std::unique_ptr<ScoreModel> LoadOrDie(const std::string& text, const std::string& name = "model.yaml") {
    absl::StatusOr<std::unique_ptr<ScoreModel>> model = ScoreModel::Load(Write(name, text), kInput);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? std::move(*model) : nullptr;
  }

  // Loads `text` against kInput and returns the error's message.
  std::string LoadError(const std::string& text, const std::string& name = "model.yaml") {
    absl::StatusOr<std::unique_ptr<ScoreModel>> model = ScoreModel::Load(Write(name, text), kInput);
    EXPECT_FALSE(model.ok()) << "loaded: " << text;
    if (model.ok()) return "";
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
    return std::string(model.status().message());
  }

  std::string dir_;
};

TEST_F(ScoreModelTest, LogisticRegressionMatchesHandComputedValues) {
  std::unique_ptr<ScoreModel> model = LoadOrDie(kLogistic);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->name(), "test-logreg");
  EXPECT_EQ(model->kind(), ModelKind::kLogisticRegression);
  EXPECT_EQ(model->output(), "risk");
  EXPECT_EQ(model->missing(), MissingFeature::kSkip) << "the default";
  EXPECT_EQ(model->feature_names(), (std::vector<std::string>{"news2_total", "hr_avg", "red_score"}));
  // z = -4.2 + 3.15 + 2.2 + 0.6 = 1.75
  EXPECT_NEAR(*model->Evaluate(Features(7, 110, true)), 0.8519528019683106, 1e-12);
  // z = -4.2 + 1.35 + 1.6 = -1.25
  EXPECT_NEAR(*model->Evaluate(Features(3, 80, false)), 0.22270013882530884, 1e-12);
  // z = -4.2
  EXPECT_NEAR(*model->Evaluate(Features(0, 0, false)), 0.014774031693273055, 1e-12);
}

TEST_F(ScoreModelTest, TheSameModelInJsonGivesTheSameScores) {
  std::unique_ptr<ScoreModel> yaml = LoadOrDie(kLogistic);
  std::unique_ptr<ScoreModel> json = LoadOrDie(kLogisticJson, "model.json");
  ASSERT_NE(yaml, nullptr);
  ASSERT_NE(json, nullptr);
  for (const Row& row : {Features(7, 110, true), Features(3, 80, false), Features(20, 180.5, true)}) {
    EXPECT_EQ(*json->Evaluate(row), *yaml->Evaluate(row));
  }
  EXPECT_NE(json->FingerprintHex(), yaml->FingerprintHex()) << "the fingerprint is of the file's bytes";
  EXPECT_EQ(yaml->FingerprintHex().size(), 16u);
}

TEST_F(ScoreModelTest, GradientBoostedTreesMatchHandComputedValues) {
  std::unique_ptr<ScoreModel> model = LoadOrDie(kTrees);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->kind(), ModelKind::kGradientBoostedTrees);
  // z = -1.0 - 0.5 - 0.2 = -1.7
  EXPECT_NEAR(*model->Evaluate(Features(3, 80, false)), 0.1544652650835347, 1e-12);
  // z = -1.0 + 0.8 + 0.6 = 0.4
  EXPECT_NEAR(*model->Evaluate(Features(7, 120, true)), 0.598687660112452, 1e-12);
  // z = -1.0 + 0.3 - 0.2 = -0.9
  EXPECT_NEAR(*model->Evaluate(Features(7, 90, false)), 0.289050497374996, 1e-12);
  // At the threshold: 5 < 5 is false, so right (XGBoost's rule).
  EXPECT_NEAR(*model->Evaluate(Features(5, 90, false)), 0.289050497374996, 1e-12);
}

TEST_F(ScoreModelTest, SplitLessOrEqualSendsTheThresholdLeft) {
  std::string text = kTrees;
  text.insert(text.find("trees:"), "split: \"<=\"\n");
  std::unique_ptr<ScoreModel> model = LoadOrDie(text);
  ASSERT_NE(model, nullptr);
  // 5 <= 5: left, a leaf of -0.5; z = -1.0 - 0.5 - 0.2 = -1.7
  EXPECT_NEAR(*model->Evaluate(Features(5, 90, false)), 0.1544652650835347, 1e-12);
  EXPECT_NEAR(*model->Evaluate(Features(7, 120, true)), 0.598687660112452, 1e-12);
}

TEST_F(ScoreModelTest, AMissingFeatureSkipsOrCountsAsZeroOrAsItsMean) {
  std::unique_ptr<ScoreModel> skip = LoadOrDie(kLogistic);
  ASSERT_NE(skip, nullptr);
  EXPECT_EQ(skip->Evaluate(Features(7, std::nullopt, true)), std::nullopt);
  EXPECT_EQ(skip->Evaluate(Features(7, std::numeric_limits<double>::quiet_NaN(), true)), std::nullopt)
      << "a NaN is missing";
  EXPECT_EQ(skip->Evaluate(Features(std::nullopt, 80, true)), std::nullopt);

  std::unique_ptr<ScoreModel> zero = LoadOrDie(absl::StrCat(kLogistic, "missing: zero\n"));
  ASSERT_NE(zero, nullptr);
  // z = -4.2 + 3.15 + 0 + 0.6 = -0.45
  EXPECT_NEAR(*zero->Evaluate(Features(7, std::nullopt, true)), 0.3893607660507779, 1e-12);

  std::unique_ptr<ScoreModel> mean =
      LoadOrDie(absl::StrCat(kLogistic, "missing: mean\nmeans: {news2_total: 2, hr_avg: 95.5, red_score: 0}\n"));
  ASSERT_NE(mean, nullptr);
  // z = -4.2 + 3.15 + 0.02 * 95.5 + 0.6 = 1.46
  EXPECT_NEAR(*mean->Evaluate(Features(7, std::nullopt, true)), 0.8115326747861805, 1e-12);
  EXPECT_NEAR(*mean->Evaluate(Features(7, std::numeric_limits<double>::quiet_NaN(), true)), 0.8115326747861805,
              1e-12);

  // In a tree, too: a missing hr_avg as its mean 120 goes right, 0.8.
  std::unique_ptr<ScoreModel> trees =
      LoadOrDie(absl::StrCat(kTrees, "missing: mean\nmeans: {news2_total: 2, hr_avg: 120, red_score: 0}\n"));
  ASSERT_NE(trees, nullptr);
  EXPECT_NEAR(*trees->Evaluate(Features(7, std::nullopt, true)), 0.598687660112452, 1e-12);
}

// ---- load errors: each at its place in the file -------------------------------------------

TEST_F(ScoreModelTest, AFeatureTheInputLacksIsAnErrorAtItsLine) {
  const std::string error = LoadError(R"(name: m
kind: logistic_regression
output: risk
intercept: 0
features:
  news2_total: 0.5
  lactate: 0.3
)");
  EXPECT_THAT(error, StartsWith(dir_ + "/model.yaml:7:3: feature 'lactate' is not a field of the input; it has {"));
  EXPECT_THAT(error, HasSubstr("news2_total: int"));
}

TEST_F(ScoreModelTest, AStringFeatureIsAnErrorAtItsLine) {
  EXPECT_EQ(LoadError(R"(name: m
kind: gradient_boosted_trees
output: risk
features: [news2_total, risk_band]
trees:
  - nodes: [{leaf: 1}]
)"),
            dir_ + "/model.yaml:4:25: feature 'risk_band' is a string field of the input; a feature is an int, "
                   "double or bool (1 or 0) field");
}

TEST_F(ScoreModelTest, ANodeIndexOutOfRangeIsAnErrorAtTheIndex) {
  EXPECT_EQ(LoadError(R"(name: m
kind: gradient_boosted_trees
output: risk
features: [news2_total]
trees:
  - nodes:
      - {feature: news2_total, threshold: 5, left: 1, right: 3}
      - {leaf: -0.5}
      - {leaf: 0.5}
)"),
            dir_ + "/model.yaml:7:62: tree 0, node 0: right is node 3, but the tree has nodes 0 to 2");
}

TEST_F(ScoreModelTest, ACycleIsAnErrorAtTheEdgeThatClosesIt) {
  EXPECT_EQ(LoadError(R"(name: m
kind: gradient_boosted_trees
output: risk
features: [news2_total, hr_avg]
trees:
  - nodes:
      - {leaf: 0.1}
  - nodes:
      - feature: news2_total
        threshold: 5
        left: 1
        right: 2
      - {leaf: -0.5}
      - {feature: hr_avg, threshold: 100, left: 0, right: 1}
)"),
            dir_ + "/model.yaml:14:49: tree 1, node 2: left is node 0, an ancestor of it: the nodes form a cycle, "
                   "not a tree");
}

TEST_F(ScoreModelTest, MalformedTreesAreErrorsAtTheNode) {
  // A node with two parents.
  EXPECT_THAT(LoadError(R"(name: m
kind: gradient_boosted_trees
output: risk
features: [news2_total]
trees:
  - nodes:
      - {feature: news2_total, threshold: 5, left: 1, right: 1}
      - {leaf: -0.5}
)"),
              StartsWith(dir_ + "/model.yaml:7:62: tree 0, node 0: right is node 1, which is already a child of node 0"));
  // A node nothing leads to.
  EXPECT_EQ(LoadError(R"(name: m
kind: gradient_boosted_trees
output: risk
features: [news2_total]
trees:
  - nodes:
      - {leaf: 0.1}
      - {leaf: 0.2}
)"),
            dir_ + "/model.yaml:8:9: tree 0, node 1 is not reachable from the root (node 0, the first)");
  // A split on a feature the model does not list.
  EXPECT_THAT(LoadError(R"(name: m
kind: gradient_boosted_trees
output: risk
features: [news2_total]
trees:
  - nodes:
      - {feature: hr_avg, threshold: 5, left: 1, right: 2}
      - {leaf: -0.5}
      - {leaf: 0.5}
)"),
              StartsWith(dir_ + "/model.yaml:7:19: feature 'hr_avg' is not in the model's features (news2_total)"));
}

TEST_F(ScoreModelTest, AnUnknownKindIsAnErrorAtTheKind) {
  EXPECT_EQ(LoadError("name: m\nkind: random_forest\noutput: risk\nfeatures: [news2_total]\n"),
            dir_ + "/model.yaml:2:7: unknown model kind 'random_forest', expected logistic_regression or "
                   "gradient_boosted_trees");
}

TEST_F(ScoreModelTest, KeysNumbersAndSyntaxAreCheckedWhereTheyAre) {
  // A key of the other kind.
  EXPECT_EQ(LoadError(absl::StrCat(kLogistic, "base_score: 0.5\n")),
            dir_ + "/model.yaml:9:1: field 'base_score' is not used in a logistic_regression model (it is for "
                   "gradient_boosted_trees)");
  // A typo.
  EXPECT_THAT(LoadError("name: m\nkind: logistic_regression\noutput: risk\nintercpt: 1\nfeatures: {hr_avg: 1}\n"),
              StartsWith(dir_ + "/model.yaml:4:1: unknown field 'intercpt' in a logistic_regression model"));
  // A coefficient that is no number.
  EXPECT_EQ(LoadError("name: m\nkind: logistic_regression\noutput: risk\nintercept: 1\nfeatures: {hr_avg: high}\n"),
            dir_ + "/model.yaml:5:20: expected a number for the coefficient of feature 'hr_avg', got 'high'");
  // A repeated feature.
  EXPECT_EQ(LoadError("name: m\nkind: logistic_regression\noutput: risk\nintercept: 1\nfeatures:\n  hr_avg: 1\n"
                      "  hr_avg: 2\n"),
            dir_ + "/model.yaml:7:3: feature 'hr_avg' appears twice in 'features'");
  // A required key.
  EXPECT_EQ(LoadError("name: m\nkind: logistic_regression\noutput: risk\nfeatures: {hr_avg: 1}\n"),
            dir_ + "/model.yaml:1:1: missing required field 'intercept' in a logistic_regression model");
  // An output that would clash with the input.
  EXPECT_THAT(LoadError("name: m\nkind: logistic_regression\noutput: hr_avg\nintercept: 0\nfeatures: {hr_avg: 1}\n"),
              StartsWith(dir_ + "/model.yaml:3:9: output 'hr_avg' is already a field of the input"));
  // missing: mean without a mean for every feature.
  EXPECT_EQ(LoadError(absl::StrCat(kLogistic, "missing: mean\nmeans: {news2_total: 2, hr_avg: 90}\n")),
            dir_ + "/model.yaml:10:1: 'means' has no mean for feature 'red_score'; missing: mean needs one for every "
                   "feature");
  // Broken YAML, and broken JSON.
  EXPECT_THAT(LoadError("name: m\nkind: [logistic_regression\n"), StartsWith(dir_ + "/model.yaml:3:1: invalid YAML"));
  EXPECT_THAT(LoadError("{\"name\": \"m\",\n \"kind\": \"logistic_regression\" \"output\": \"risk\"}", "model.json"),
              StartsWith(dir_ + "/model.json:2:"));
  // Nothing at all.
  EXPECT_THAT(LoadError(""), StartsWith(dir_ + "/model.yaml:1:1: the model file is empty"));
}

TEST_F(ScoreModelTest, AMissingFileIsNotFoundAndNamesThePath) {
  const std::string path = dir_ + "/no-such-model.yaml";
  absl::StatusOr<std::unique_ptr<ScoreModel>> model = ScoreModel::Load(path, kInput);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr(absl::StrCat("cannot read model file '", path, "'")));
  absl::StatusOr<std::unique_ptr<ScoreModel>> dir = ScoreModel::Load(dir_);
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(std::string(dir.status().message()), HasSubstr("not a regular file"));
}

// ---- the process function ----------------------------------------------------------------

// Output rows by field name.
using Collect = CollectRowsByName;

// A registry with score_model only, whatever the built-ins hold.
const ProcessFunctionRegistry& Registry() {
  static ProcessFunctionRegistry* registry = [] {
    auto* r = new ProcessFunctionRegistry();
    RegisterScoreModelFunction(*r);
    return r;
  }();
  return *registry;
}

absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> MakeFunction(std::map<std::string, std::string> params) {
  return Registry().Create("score_model", ProcessParams(ProcessParams::Map(params.begin(), params.end())));
}

TEST_F(ScoreModelTest, TheFunctionAppendsTheScoreAndTheThresholdFlag) {
  const std::string path = Write("model.yaml", kLogistic);
  const std::map<std::string, std::string> params = {{"model", path}, {"threshold", "0.5"}};
  auto fn = MakeFunction(params);
  ASSERT_TRUE(fn.ok()) << fn.status();
  auto schema = (*fn)->OutputSchema(ProcessInput{kInput, {0}, 1});
  ASSERT_TRUE(schema.ok()) << schema.status();
  EXPECT_EQ(schema->schema.DebugString(),
            "{patient_id: string, ts: timestamp, news2_total: int, hr_avg: double, red_score: bool, "
            "risk_band: string, risk: double, risk_high: bool}");
  EXPECT_EQ(schema->time_index, 1) << "the input's event time";

  proto::ProcessSpec spec;
  spec.set_function("score_model");
  spec.add_key_by("patient_id");
  spec.set_time_field_index(1);
  for (const auto& [k, v] : params) (*spec.mutable_params())[k] = v;
  OperatorCounters counters;
  Collect out(schema->schema);
  ProcessOperator op(counters, kInput, schema->schema, spec, std::move(*fn));
  op.set_output(&out);
  OperatorContext ctx;
  ctx.job_id = "job";
  ctx.vertex_name = "risk";
  ctx.state_dir = dir_ + "/state";
  ctx.data_dir = dir_ + "/data";
  ASSERT_TRUE(op.Open(ctx).ok());
  RowBatch batch(kInput.size());
  batch.Append() = Features(7, 110, true, "p1", 1000);
  batch.Append() = Features(3, 80, false, "p2", 2000);
  batch.Append() = Features(7, std::nullopt, true, "p1", 3000);
  op.Push(batch);
  op.Finish();
  ASSERT_EQ(out.rows.size(), 3u);
  EXPECT_EQ(out.rows[0]["patient_id"], "p1");
  EXPECT_EQ(out.rows[0]["news2_total"], "7");
  EXPECT_EQ(out.rows[0]["risk_band"], "medium");
  EXPECT_NEAR(std::stod(out.rows[0]["risk"]), 0.8519528019683106, 1e-6);  // printed to 6 digits
  EXPECT_EQ(out.rows[0]["risk_high"], "true");
  EXPECT_NEAR(std::stod(out.rows[1]["risk"]), 0.22270013882530884, 1e-6);
  EXPECT_EQ(out.rows[1]["risk_high"], "false");
  EXPECT_EQ(out.rows[2]["risk"], "null") << "hr_avg is null and the model skips";
  EXPECT_EQ(out.rows[2]["risk_high"], "null");
}

TEST_F(ScoreModelTest, TheFunctionsErrorsNameTheirParam) {
  const std::string good = Write("model.yaml", kLogistic);
  auto param_of = [](const absl::StatusOr<std::unique_ptr<KeyedProcessFunction>>& fn) {
    EXPECT_FALSE(fn.ok());
    return fn.ok() ? std::string() : ParamOfError(fn.status());
  };
  EXPECT_EQ(param_of(MakeFunction({})), "model");
  EXPECT_EQ(param_of(MakeFunction({{"model", "models/m.yaml"}})), "model") << "relative";
  EXPECT_EQ(param_of(MakeFunction({{"model", dir_ + "/none.yaml"}})), "model");
  EXPECT_EQ(param_of(MakeFunction({{"model", good}, {"threshold", "1.5"}})), "threshold");
  EXPECT_EQ(param_of(MakeFunction({{"model", good}, {"threshold", "high"}})), "threshold");
  EXPECT_EQ(param_of(MakeFunction({{"model", good}, {"colour", "red"}})), "colour");

  // A bad model file: at the param, with the place in the file.
  auto bad = MakeFunction({{"model", Write("bad.yaml", "name: m\nkind: svm\n")}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(ParamOfError(bad.status()), "model");
  EXPECT_THAT(std::string(bad.status().message()),
              StartsWith(absl::StrCat("param 'model': ", dir_, "/bad.yaml:2:7: unknown model kind 'svm'")));

  // A feature the input lacks: found by OutputSchema, at the param too.
  auto fn = MakeFunction({{"model", good}});
  ASSERT_TRUE(fn.ok()) << fn.status();
  const Schema narrow({{"patient_id", FieldType::kString}, {"news2_total", FieldType::kInt}});
  auto schema = (*fn)->OutputSchema(ProcessInput{narrow, {0}, -1});
  ASSERT_FALSE(schema.ok());
  EXPECT_EQ(ParamOfError(schema.status()), "model");
  EXPECT_THAT(std::string(schema.status().message()),
              HasSubstr(absl::StrCat(good, ":7:3: feature 'hr_avg' is not a field of the input")));

  // The threshold's field must be free.
  Schema taken = kInput;
  taken.Add("risk_high", FieldType::kBool);
  auto with_threshold = MakeFunction({{"model", good}, {"threshold", "0.5"}});
  ASSERT_TRUE(with_threshold.ok());
  EXPECT_EQ(ParamOfError((*with_threshold)->OutputSchema(ProcessInput{taken, {0}, 1}).status()), "threshold");
}

TEST_F(ScoreModelTest, AFingerprintPinsTheModelFile) {
  const std::string path = Write("model.yaml", kLogistic);
  auto model = ScoreModel::Load(path);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string fingerprint = (*model)->FingerprintHex();
  EXPECT_TRUE(MakeFunction({{"model", path}, {"fingerprint", fingerprint}}).ok());
  // The file changes after the job was compiled.
  Write("model.yaml", absl::StrCat(kLogistic, "# retrained\n"));
  auto changed = MakeFunction({{"model", path}, {"fingerprint", fingerprint}});
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(ParamOfError(changed.status()), "fingerprint");
  EXPECT_THAT(std::string(changed.status().message()), HasSubstr("differs from the one the job was compiled against"));
}

// ---- the shipped example ------------------------------------------------------------------

// examples/models/deterioration_logreg.yaml, absolute: tests run in the
// source directory; else found from this file's path.
std::string ExampleModelPath() {
  const fs::path relative = "examples/models/deterioration_logreg.yaml";
  if (fs::exists(relative)) return fs::absolute(relative).lexically_normal().string();
  return (fs::path(__FILE__).parent_path() / "../.." / relative).lexically_normal().string();
}

// The news2 operator's output for observation rows keyed by patient_id.
Schema News2OutputSchema() {
  auto news2 = ProcessFunctionRegistry::Global().Create("news2", ProcessParams());
  EXPECT_TRUE(news2.ok()) << news2.status();
  if (!news2.ok()) return Schema();
  const Schema observations = Hl7ObservationSchema();
  auto out = (*news2)->OutputSchema(ProcessInput{observations, {observations.IndexOf("patient_id")}, -1});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? out->schema : Schema();
}

TEST(ScoreModelExampleTest, TheShippedModelScoresNews2Rows) {
  const std::string path = ExampleModelPath();
  ASSERT_TRUE(fs::exists(path)) << path;
  const Schema news2 = News2OutputSchema();
  absl::StatusOr<std::unique_ptr<ScoreModel>> model = ScoreModel::Load(path, news2);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->output(), "deterioration_risk");

  // The examples in the file's comments.
  auto score = [&](int64_t total, bool red, int64_t consciousness, int64_t air_o2) {
    Row row(news2.size());
    row[news2.IndexOf("news2_total")].SetInt(total);
    row[news2.IndexOf("red_score")].SetBool(red);
    row[news2.IndexOf("consciousness_score")].SetInt(consciousness);
    row[news2.IndexOf("air_o2_score")].SetInt(air_o2);
    return *(*model)->Evaluate(row);
  };
  EXPECT_NEAR(score(0, false, 0, 0), 0.009951801866904324, 1e-12);
  EXPECT_NEAR(score(5, false, 0, 0), 0.07585818002124359, 1e-12);
  EXPECT_NEAR(score(7, true, 3, 0), 0.4476920904256748, 1e-12);
  EXPECT_NEAR(score(12, true, 3, 2), 0.9160615681024419, 1e-12);

  // And as the function after news2, with a threshold.
  ProcessFunctionRegistry registry;
  RegisterScoreModelFunction(registry);
  auto fn = registry.Create("score_model", ProcessParams(ProcessParams::Map{{"model", path}, {"threshold", "0.5"}}));
  ASSERT_TRUE(fn.ok()) << fn.status();
  auto out = (*fn)->OutputSchema(ProcessInput{news2, {0}, news2.IndexOf("observed_at")});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->schema.size(), news2.size() + 2);
  EXPECT_EQ(out->schema.field(news2.size()).name, "deterioration_risk");
  EXPECT_EQ(out->schema.field(news2.size() + 1).name, "deterioration_risk_high");
  EXPECT_EQ(out->time_index, news2.IndexOf("observed_at"));
}

}  // namespace
}  // namespace vstream
