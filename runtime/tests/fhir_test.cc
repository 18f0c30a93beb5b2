// FHIR R4: the JSON tree parser, Observations and Bundles as observation
// rows (the HL7 FHIR R4 specification's own examples in ../shared/data),
// FHIR dateTimes, and the fhir output format of score rows.

#include "runtime/formats/fhir.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/formats/json_value.h"
#include "runtime/tests/shared_data.h"

namespace vstream {
namespace {

TEST(JsonValueTest, ParsesNestedDocumentsAndEscapes) {
  JsonValue v;
  ASSERT_TRUE(ParseJson("\xEF\xBB\xBF {\"a\": [1, -2.5e1, true, null, \"x\\u00e9\\ud83d\\ude00\\n\"], \"a\": {}}", &v).ok());
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.members.size(), 2u);
  const JsonValue& a = v.members[0].value;
  ASSERT_EQ(a.items.size(), 5u);
  EXPECT_EQ(a.items[0].number, 1);
  EXPECT_EQ(a.items[1].number, -25);
  EXPECT_EQ(a.items[1].text, "-2.5e1");
  EXPECT_TRUE(a.items[2].boolean);
  EXPECT_TRUE(a.items[3].is_null());
  EXPECT_EQ(a.items[4].text, "x\xC3\xA9\xF0\x9F\x98\x80\n");
  EXPECT_TRUE(v.Find("a")->is_object()) << "a repeated key: the last one";
  EXPECT_EQ(v.Find("b"), nullptr);
}

TEST(JsonValueTest, ErrorsSayWhereAndWhat) {
  struct Case {
    std::string text, error;
  };
  const Case cases[] = {
      {"{\"a\": 1,}", "line 1 column 9: expected a member name in double quotes"},
      {"{\n  \"a\" 1}", "line 2 column 7: expected ':' after a member name"},
      {"[1 2]", "line 1 column 4: expected ',' or ']' after an array element"},
      {"01", "line 1 column 2: a number with a leading zero"},
      {"\"a\tb\"", "line 1 column 3: a control character inside a string"},
      {"\"\\ud800x\"", "a high surrogate \\u escape without its low surrogate"},
      {"\"\\q\"", "unknown escape '\\q'"},
      {"{} {}", "expected the end of the document"},
      {"1e999", "out of range"},
      {"", "expected a value, found the end of the document"},
      {"nul", "expected a value"},
      {std::string(100, '['), "nested deeper than 64 levels"},
  };
  for (const Case& c : cases) {
    JsonValue v;
    const absl::Status s = ParseJson(c.text, &v);
    EXPECT_FALSE(s.ok()) << c.text;
    EXPECT_NE(std::string(s.message()).find(c.error), std::string::npos) << c.text << " -> " << s.message();
  }
}

TEST(FhirDateTimeTest, ReadsEveryPrecisionAndOffset) {
  int64_t ms = 0;
  ASSERT_TRUE(ParseFhirDateTime("2024-03-01T08:00:00Z", &ms).ok());
  EXPECT_EQ(ms, 1709280000000);
  ASSERT_TRUE(ParseFhirDateTime("2024-03-01T09:30:00.5+01:30", &ms).ok());
  EXPECT_EQ(ms, 1709280000500);
  ASSERT_TRUE(ParseFhirDateTime("2024-03-01", &ms).ok());
  EXPECT_EQ(ms, 1709251200000);
  ASSERT_TRUE(ParseFhirDateTime("2024", &ms).ok());
  EXPECT_EQ(ms, 1704067200000);
  for (const char* bad : {"2024-13-01", "2023-02-29", "2024-03-01T25:00:00Z", "2024-03-01 08:00", "24-03-01",
                          "2024-03-01T08:00:00+0100", "2024-03-01T10:00:00", "2024-03-01T10:00Z",
                          "2024-03-01T10:00:00+14:30", "0000", ""}) {
    EXPECT_FALSE(ParseFhirDateTime(bad, &ms).ok()) << bad;
  }
}

// The rows of one document, each as "field=value" for the fields that are
// not null, in schema order.
std::vector<std::string> Rows(std::string_view json, int* skipped = nullptr) {
  JsonValue doc;
  const absl::Status parsed = ParseJson(json, &doc);
  EXPECT_TRUE(parsed.ok()) << parsed;
  FhirRowExtractor extractor;
  RowBatch batch(extractor.schema().size());
  int skip = 0;
  const absl::Status s = extractor.Append(doc, 42, &batch, &skip);
  EXPECT_TRUE(s.ok()) << s;
  if (skipped != nullptr) *skipped = skip;
  std::vector<std::string> out;
  const Schema& schema = extractor.schema();
  for (size_t i = 0; i < batch.size(); ++i) {
    std::string line;
    for (size_t f = 0; f < schema.size(); ++f) {
      if (batch[i][f].is_null || schema.field(f).name == "received_at") continue;
      absl::StrAppend(&line, line.empty() ? "" : " ", schema.field(f).name, "=",
                      DatumToString(batch[i][f], schema.field(f).type));
    }
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> ExampleRows(const std::string& name, int* skipped = nullptr) {
  return Rows(ReadSharedFile("fhir-r4/hl7-fhir-r4-examples/" + name), skipped);
}

TEST(FhirRowsTest, TheSpecificationsExamplesGiveTheExpectedRows) {
  REQUIRE_SHARED_DATA();
  EXPECT_EQ(ExampleRows("observation-example-heart-rate.json"),
            (std::vector<std::string>{
                "message_id=heart-rate set_id=1 message_type=Observation patient_id=example code=8867-4 "
                "code_system=LN code_text=Heart rate value_type=Quantity value=44 unit=/min status=F "
                "observed_at=1999-07-02T00:00:00.000Z last_in_message=true"}));
  EXPECT_EQ(ExampleRows("observation-example-bloodpressure.json"),
            (std::vector<std::string>{
                "message_id=blood-pressure set_id=1 sub_id=1 message_type=Observation patient_id=example "
                "code=8480-6 code_system=LN code_text=Systolic blood pressure value_type=Quantity value=107 "
                "unit=mm[Hg] status=F observed_at=2012-09-17T00:00:00.000Z last_in_message=false",
                "message_id=blood-pressure set_id=2 sub_id=2 message_type=Observation patient_id=example "
                "code=8462-4 code_system=LN code_text=Diastolic blood pressure value_type=Quantity value=60 "
                "unit=mm[Hg] status=F observed_at=2012-09-17T00:00:00.000Z last_in_message=true"}));
  // dataAbsentReason: the diastolic was not performed.
  const std::vector<std::string> dar = ExampleRows("observation-example-bloodpressure-dar.json");
  ASSERT_EQ(dar.size(), 2u);
  EXPECT_NE(dar[0].find("code=8480-6 code_system=LN code_text=Systolic blood pressure value_type=Quantity value=107"),
            std::string::npos)
      << dar[0];
  EXPECT_NE(dar[1].find("code=8462-4 code_system=LN code_text=Diastolic blood pressure "
                        "value_type=dataAbsentReason value_text=not-performed status=F"),
            std::string::npos)
      << dar[1];
  // Statuses in HL7's letters: entered-in-error is W, cancelled X.
  const std::vector<std::string> f202 = ExampleRows("observation-example-f202-temperature.json");
  ASSERT_EQ(f202.size(), 1u);
  EXPECT_NE(f202[0].find("status=W"), std::string::npos) << f202[0];
  const std::vector<std::string> cancel = ExampleRows("observation-example-bloodpressure-cancel.json");
  ASSERT_EQ(cancel.size(), 2u);
  EXPECT_NE(cancel[0].find("status=X"), std::string::npos) << cancel[0];
  // Temperature in Celsius, SpO2 with its LOINC coding chosen over others.
  const std::vector<std::string> temp = ExampleRows("observation-example-body-temperature.json");
  ASSERT_EQ(temp.size(), 1u);
  EXPECT_NE(temp[0].find("code=8310-5 code_system=LN"), std::string::npos) << temp[0];
  EXPECT_NE(temp[0].find("value=36.5 unit=Cel"), std::string::npos) << temp[0];
  const std::vector<std::string> spo2 = ExampleRows("observation-example-satO2.json");
  ASSERT_EQ(spo2.size(), 1u);
  EXPECT_NE(spo2[0].find("code=2708-6 code_system=LN"), std::string::npos) << spo2[0];
  EXPECT_NE(spo2[0].find("value=95 unit=%"), std::string::npos) << spo2[0];
  // A panel of hasMember links: one row without a value.
  const std::vector<std::string> panel = ExampleRows("observation-example-vitals-panel.json");
  ASSERT_EQ(panel.size(), 1u);
  EXPECT_EQ(panel[0].find("value="), std::string::npos) << panel[0];
  // Glasgow: the total and its three components.
  EXPECT_EQ(ExampleRows("observation-example-glasgow.json").size(), 4u);
  // Other resources give no rows.
  int skipped = 0;
  EXPECT_TRUE(ExampleRows("patient-example.json", &skipped).empty());
  EXPECT_EQ(skipped, 1);
  EXPECT_TRUE(ExampleRows("devicemetric-example.json", &skipped).empty());
}

TEST(FhirRowsTest, EveryExampleParsesAndGivesRowsOrIsSkipped) {
  REQUIRE_SHARED_DATA();
  for (const char* name : {"observation-example-heart-rate.json", "observation-example-respiratory-rate.json",
                           "observation-example-satO2.json", "observation-example-bloodpressure.json",
                           "observation-example-body-temperature.json", "observation-example-vitals-panel.json",
                           "observation-example-mbp.json", "observation-example-map-sitting.json",
                           "observation-example-glasgow.json", "observation-example-sample-data.json",
                           "observation-example-bloodpressure-cancel.json",
                           "observation-example-bloodpressure-dar.json", "observation-example-f202-temperature.json",
                           "observation-example-unsat.json", "patient-example.json", "patient-example-ihe-pcd.json",
                           "devicemetric-example.json", "encounter-example-emerg.json"}) {
    int skipped = 0;
    const std::vector<std::string> rows = ExampleRows(name, &skipped);
    EXPECT_EQ(rows.empty(), skipped == 1) << name;
    for (const std::string& r : rows) EXPECT_NE(r.find("code="), std::string::npos) << name << ": " << r;
  }
}

TEST(FhirRowsTest, ABundleIsSplitIntoObservationSetsAndResolvesItsPatient) {
  REQUIRE_SHARED_DATA();
  int skipped = 0;
  const std::vector<std::string> rows =
      Rows(ReadSharedFile("fhir-r4/authored/news2_scenario_patient1_transaction_bundle.json"), &skipped);
  EXPECT_EQ(skipped, 2);  // Patient, Encounter
  // 2 sets: 7 vital signs (the blood pressure as 2 rows) and the NEWS2
  // Observation (its total and 7 sub-scores).
  ASSERT_EQ(rows.size(), 2u * (8 + 8));
  int last = 0;
  for (const std::string& r : rows) {
    EXPECT_NE(r.find("patient_id=NEWS2-0001 patient_id_authority=urn:oid:2.999.1.1"), std::string::npos) << r;
    last += r.find("last_in_message=true") != std::string::npos;
  }
  EXPECT_EQ(last, 2);
  EXPECT_NE(rows[0].find("message_id=urn:uuid:s1-rr set_id=1 "), std::string::npos) << rows[0];
  EXPECT_NE(rows[15].find("message_id=urn:uuid:s1-rr set_id=16 "), std::string::npos) << rows[15];
  EXPECT_NE(rows[16].find("message_id=urn:uuid:s5-rr set_id=1 "), std::string::npos) << rows[16];
  EXPECT_NE(rows[6].find("code=80288-4 code_system=LN"), std::string::npos) << rows[6];
  EXPECT_NE(rows[6].find("value_type=CodeableConcept value_text=248234008"), std::string::npos) << rows[6];
}

TEST(FhirRowsTest, AMalformedPartRejectsTheWholeDocument) {
  struct Case {
    std::string json, error;
  };
  const Case cases[] = {
      {R"({"resourceType":"Observation","id":"a","code":{"text":"x"},"effectiveDateTime":"2024-13-01"})",
       "Observation: effectiveDateTime: '2024-13-01' is not a FHIR dateTime"},
      {R"({"resourceType":"Observation","id":"a"})", "Observation: code: expected a CodeableConcept"},
      {R"({"resourceType":"Observation","id":"a","code":{},"valueQuantity":{"value":"7"}})",
       "Observation: valueQuantity: expected a number in value"},
      {R"({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"a","code":{}}},
           {"resource":{"resourceType":"Observation","code":{},"effectiveDateTime":"2024"}}]})",
       "entry 2 (Observation): no id, fullUrl or identifier"},
      {R"({"resourceType":"Observation","id":"a","code":{},"valueInteger":1.5})",
       "Observation: valueInteger: expected an integer"},
      {R"({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"b","code":{},
           "component":[{"code":{},"valueBoolean":"yes"}]}}]})",
       "entry 1 (Observation): component 1: valueBoolean: expected true or false"},
      {R"({"id":"a"})", "no resourceType"},
      {R"([1])", "no JSON object"},
  };
  for (const Case& c : cases) {
    JsonValue doc;
    ASSERT_TRUE(ParseJson(c.json, &doc).ok()) << c.json;
    FhirRowExtractor extractor;
    RowBatch batch(extractor.schema().size());
    int skipped = 0;
    const absl::Status s = extractor.Append(doc, 0, &batch, &skipped);
    EXPECT_FALSE(s.ok()) << c.json;
    EXPECT_NE(std::string(s.message()).find(c.error), std::string::npos) << s.message();
    EXPECT_EQ(batch.size(), 0u) << "nothing of a rejected document";
  }
}

TEST(FhirWriterTest, News2RowsBecomeObservationsThatParseBack) {
  Schema schema({{"patient_id", FieldType::kString},    {"message_id", FieldType::kString},
                 {"observed_at", FieldType::kTimestamp}, {"rr_score", FieldType::kInt},
                 {"spo2_score", FieldType::kInt},       {"air_o2_score", FieldType::kInt},
                 {"sbp_score", FieldType::kInt},        {"hr_score", FieldType::kInt},
                 {"consciousness_score", FieldType::kInt}, {"temp_score", FieldType::kInt},
                 {"news2_total", FieldType::kInt},      {"red_score", FieldType::kBool},
                 {"risk_band", FieldType::kString},     {"spo2_scale", FieldType::kInt},
                 {"missing", FieldType::kInt}});
  auto writer = CreateRecordWriter("fhir", schema);
  ASSERT_TRUE(writer.ok()) << writer.status();
  Row row(schema.size());
  row[0].SetString("NEWS2-0001");
  row[1].SetString("urn:uuid:s5-rr");
  row[2].SetInt(1709308800000);
  for (int i = 3; i < 10; ++i) row[i].SetInt(i == 8 ? 3 : 2);
  row[9].SetNull();  // temperature missing
  row[10].SetInt(13);
  row[11].SetBool(true);
  row[12].SetString("high");
  row[13].SetInt(1);
  row[14].SetInt(1);
  std::string out;
  (*writer)->Write(row, &out);
  ASSERT_EQ(out.back(), '\n');
  JsonValue obs;
  ASSERT_TRUE(ParseJson(out, &obs).ok()) << out;
  EXPECT_EQ(obs.String("resourceType"), "Observation");
  // Not a FHIR id as it is: cleaned, and a hash of the original added.
  EXPECT_EQ(obs.String("id").substr(0, 21), "news2-urn-uuid-s5-rr-");
  EXPECT_EQ(obs.String("id").size(), 37u);
  EXPECT_EQ(obs.String("effectiveDateTime"), "2024-03-01T16:00:00.000Z");
  EXPECT_EQ(obs.Find("valueInteger")->number, 13);
  EXPECT_EQ(obs.Find("code")->Find("coding")->items[0].String("code"), "1104051000000101");
  EXPECT_EQ(obs.Find("subject")->Find("identifier")->String("value"), "NEWS2-0001");
  EXPECT_EQ(obs.Find("derivedFrom")->items[0].String("reference"), "urn:uuid:s5-rr");
  EXPECT_EQ(obs.Find("interpretation")->items[0].String("text"), "clinical risk: high (red score)");
  const JsonValue& components = *obs.Find("component");
  ASSERT_EQ(components.items.size(), 7u);
  EXPECT_EQ(components.items[5].Find("valueInteger")->number, 3);
  EXPECT_EQ(components.items[6].Find("dataAbsentReason")->Find("coding")->items[0].String("code"), "unknown");

  // Read back as a FHIR input, the score is an observation row too.
  FhirRowExtractor extractor;
  RowBatch batch(extractor.schema().size());
  int skipped = 0;
  ASSERT_TRUE(extractor.Append(obs, 0, &batch, &skipped).ok());
  EXPECT_EQ(batch.size(), 8u);

  // An HL7 message id is an identifier, not a reference.
  row[1].SetString("MSG00001");
  out.clear();
  (*writer)->Write(row, &out);
  ASSERT_TRUE(ParseJson(out, &obs).ok());
  EXPECT_EQ(obs.Find("derivedFrom")->items[0].Find("identifier")->String("value"), "MSG00001");
  EXPECT_EQ(obs.String("id"), "news2-MSG00001");

  EXPECT_FALSE(CreateRecordWriter("fhir", Hl7ObservationSchema()).ok());
}

}  // namespace
}  // namespace vstream
