#include "runtime/formats/hl7v2_rows.h"

#include <string>
#include <vector>

#include "common/time_util.h"
#include "gtest/gtest.h"
#include "runtime/tests/shared_data.h"

namespace vstream {
namespace {

constexpr int64_t kReceived = 1709300000000;

struct Extracted {
  RowBatch rows;
  int skipped = 0;
  std::vector<std::string> errors;
};

Extracted ExtractAll(std::string_view bytes, Hl7Rows kind, Hl7RowsOptions options = {}) {
  Hl7RowExtractor extractor(kind, options);
  Extracted out;
  out.rows.set_width(extractor.schema().size());
  Hl7Splitter splitter(bytes);
  Hl7Piece piece;
  Hl7Message msg;
  while (splitter.Next(&piece)) {
    if (!piece.error.empty()) {
      out.errors.push_back(piece.error);
      continue;
    }
    if (absl::Status s = msg.Parse(piece.text, piece.line); !s.ok()) {
      out.errors.emplace_back(s.message());
      continue;
    }
    bool skipped = false;
    if (absl::Status s = extractor.Append(msg, kReceived, &out.rows, &skipped); !s.ok()) {
      out.errors.emplace_back(s.message());
    }
    out.skipped += skipped;
  }
  return out;
}

// The value of field `name` of row `i`, as text ("null" when null).
std::string Get(const Extracted& e, Hl7Rows kind, size_t i, const std::string& name) {
  const Schema schema = kind == Hl7Rows::kObservations ? Hl7ObservationSchema() : Hl7AdmissionSchema();
  const int f = schema.IndexOf(name);
  EXPECT_GE(f, 0) << name;
  return DatumToString(e.rows[i][f], schema.field(f).type);
}

constexpr Hl7Rows kObs = Hl7Rows::kObservations;
constexpr Hl7Rows kAdm = Hl7Rows::kAdmissions;

TEST(Hl7RowsTest, AnOruBecomesOneRowPerObx) {
  const std::string text =
      "MSH|^~\\&|EHR|DEMOHOSP^1.2^ISO|E|H|20240301080300+0000||ORU^R01^ORU_R01|EHR-1|P|2.5.1\r"
      "PID|1||NEWS2-0001^^^DEMOHOSP^MR~X^^^NHS||DOE\r"
      "OBR|1|||85353-1^Vitals^LN|||20240301080000+0000\r"
      "OBX|1|NM|9279-1^Respiratory rate^LN||16|/min^breaths/min^UCUM|||||F|||20240301080100+0000\r"
      "OBX|2|CWE|80288-4^Level of consciousness^LN||248234008^Mentally alert^SCT||||||F\r"
      "OBX|3|SN|8867-4^Heart rate^LN||>^200|/min|||||F|||||||MON-7^^EUI\r"
      "OBX|4|SN|2339-0^Glucose^LN||^182|mg/dl|||||F\r"
      "OBX|5|ST|X^Note^L||a \\T\\ b|||||||\"\"\r";
  const Extracted e = ExtractAll(text, kObs);
  ASSERT_TRUE(e.errors.empty()) << e.errors[0];
  ASSERT_EQ(e.rows.size(), 5u);
  EXPECT_EQ(Get(e, kObs, 0, "message_id"), "EHR-1");
  EXPECT_EQ(Get(e, kObs, 0, "set_id"), "1");
  EXPECT_EQ(Get(e, kObs, 0, "message_type"), "ORU^R01");
  EXPECT_EQ(Get(e, kObs, 0, "sending_facility"), "DEMOHOSP");
  EXPECT_EQ(Get(e, kObs, 0, "patient_id"), "NEWS2-0001");
  EXPECT_EQ(Get(e, kObs, 0, "patient_id_authority"), "DEMOHOSP");
  EXPECT_EQ(Get(e, kObs, 0, "code"), "9279-1");
  EXPECT_EQ(Get(e, kObs, 0, "code_system"), "LN");
  EXPECT_EQ(Get(e, kObs, 0, "code_text"), "Respiratory rate");
  EXPECT_EQ(Get(e, kObs, 0, "value_type"), "NM");
  EXPECT_EQ(Get(e, kObs, 0, "value"), "16");
  EXPECT_EQ(Get(e, kObs, 0, "value_text"), "16");
  EXPECT_EQ(Get(e, kObs, 0, "unit"), "/min");
  EXPECT_EQ(Get(e, kObs, 0, "status"), "F");
  EXPECT_EQ(Get(e, kObs, 0, "observed_at"), "2024-03-01T08:01:00.000Z") << "OBX-14";
  EXPECT_EQ(Get(e, kObs, 0, "device"), "null");
  EXPECT_EQ(Get(e, kObs, 0, "received_at"), FormatTimestamp(kReceived));
  EXPECT_EQ(Get(e, kObs, 1, "value"), "null");
  EXPECT_EQ(Get(e, kObs, 1, "value_text"), "248234008");
  EXPECT_EQ(Get(e, kObs, 1, "observed_at"), "2024-03-01T08:00:00.000Z") << "OBR-7 without OBX-14";
  EXPECT_EQ(Get(e, kObs, 2, "value"), "null") << "a comparator is no plain number";
  EXPECT_EQ(Get(e, kObs, 2, "value_text"), ">200");
  EXPECT_EQ(Get(e, kObs, 2, "device"), "MON-7");
  EXPECT_EQ(Get(e, kObs, 3, "value"), "182");
  EXPECT_EQ(Get(e, kObs, 4, "value_text"), "a & b");
  EXPECT_EQ(Get(e, kObs, 4, "status"), "null") << "an explicit null";
}

TEST(Hl7RowsTest, AMalformedPartRejectsTheWholeMessageSayingWhere) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M1|P|2.5\rPID|1||P1\rOBX|1|NM|X||12|\rOBX|2|NM|Y||abc",
       "line 4: OBX-5: 'abc' is not a number (OBX-2 is NM)"},
      {"MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M1|P|2.5\rPID|1||P1\rOBX|1|NM|X||1||||||F|||2024030",
       "line 3: OBX-14: '2024030' is not an HL7 timestamp"},
      {"MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M1|P|2.5\rOBX|1|NM|X||1", "line 2: OBX before any PID"},
      {"MSH|^~\\&|A|B|C|D|20240301||ORU^R01||P|2.5\rPID|1||P1\rOBX|1|NM|X||1", "MSH-10: the message control id is empty"},
      {"MSH|^~\\&|A|B|C|D|||ORU^R01|M1|P|2.5\rPID|1||P1\rOBX|1|NM|X||1", "line 3: no observation time"},
      {"MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M1|P|2.5\rPID|1||\"\"\rOBX|1|NM|X||1", "line 2: PID-3: no patient"},
      {"MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M1|P|2.5\rPID|1||P1\rOBX|x|NM|X||1", "OBX-1: the set id 'x'"},
      {"MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M1|P|2.5\rPID|1||P1\rOBX|1|ST|X||C:\\temp", "OBX-5: the escape sequence"},
  };
  for (const auto& [text, want] : cases) {
    const Extracted e = ExtractAll(text, kObs);
    ASSERT_EQ(e.errors.size(), 1u) << text;
    EXPECT_NE(e.errors[0].find(want), std::string::npos) << e.errors[0];
    EXPECT_EQ(e.rows.size(), 0u) << "no row of a rejected message: " << text;
  }
}

TEST(Hl7RowsTest, ReusedRowsKeepNothingOfTheirLastValues) {
  Hl7RowExtractor extractor(kObs, {});
  RowBatch batch(extractor.schema().size());
  Hl7Message msg;
  bool skipped = false;
  ASSERT_TRUE(msg.Parse("MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M1|P|2.5\rPID|1||P1\r"
                        "OBX|1|ST|X||a long text that stays in the reused string||||||F\rOBX||NM|Y||5")
                  .ok());
  ASSERT_TRUE(extractor.Append(msg, 0, &batch, &skipped).ok());
  const int text = extractor.schema().IndexOf("value_text");
  const int last = extractor.schema().IndexOf("last_in_message");
  const int set_id = extractor.schema().IndexOf("set_id");
  EXPECT_EQ(batch[0][last].i, 0);
  EXPECT_EQ(batch[1][last].i, 1) << "the message's last OBX";
  EXPECT_EQ(batch[1][set_id].i, 2) << "an empty OBX-1 is the OBX's place";
  batch.Clear();
  ASSERT_TRUE(msg.Parse("MSH|^~\\&|A|B|C|D|20240301||ORU^R01|M2|P|2.5\rPID|1||P1\rOBX|1|SN|Z||^120").ok());
  ASSERT_TRUE(extractor.Append(msg, 0, &batch, &skipped).ok());
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0][text].s, "120");
  EXPECT_EQ(batch[0][last].i, 1);
}

TEST(Hl7RowsTest, TheLocationJoinsDecodedComponentsWithCarets) {
  Hl7RowExtractor extractor(kAdm, {});
  RowBatch batch(extractor.schema().size());
  Hl7Message msg;
  bool skipped = false;
  ASSERT_TRUE(msg.Parse("MSH$%~\\&$A$B$C$D$20240301$$ADT%A01$M1$P$2.5\rPID$1$$P1\rPV1$1$I$WARD\\S\\7%12%%H").ok());
  ASSERT_TRUE(extractor.Append(msg, 0, &batch, &skipped).ok());
  EXPECT_EQ(batch[0][extractor.schema().IndexOf("location")].s, "WARD%7^12^^H");
}

TEST(Hl7RowsTest, OtherMessageTypesAreSkipped) {
  const std::string ack = "MSH|^~\\&|A|B|C|D|20240301||ACK^R01|M1|P|2.5\rMSA|AA|X";
  EXPECT_EQ(ExtractAll(ack, kObs).skipped, 1);
  EXPECT_EQ(ExtractAll(ack, kAdm).skipped, 1);
  const std::string a04 = "MSH|^~\\&|A|B|C|D|20240301||ADT^A04|M1|P|2.5\rPID|1||P1";
  EXPECT_EQ(ExtractAll(a04, kAdm).skipped, 1) << "registration is no admission event";
}

TEST(Hl7RowsTest, ScenarioFilesGiveEveryObservationAndAdmissionEvent) {
  REQUIRE_SHARED_DATA();
  const std::string bytes = ReadSharedFile("hl7v2/authored/scenario_patient1_news2_scale1.hl7");
  const Extracted obs = ExtractAll(bytes, kObs);
  EXPECT_TRUE(obs.errors.empty());
  EXPECT_EQ(obs.skipped, 2) << "the A01 and the A02";
  ASSERT_EQ(obs.rows.size(), 45u) << "5 observation sets of 9";
  EXPECT_EQ(Get(obs, kObs, 0, "message_id"), "EHR-0001001");
  EXPECT_EQ(Get(obs, kObs, 0, "observed_at"), "2024-03-01T08:00:00.000Z");
  EXPECT_EQ(Get(obs, kObs, 44, "message_id"), "EHR-0001005");
  for (size_t i = 0; i < obs.rows.size(); ++i) EXPECT_EQ(Get(obs, kObs, i, "patient_id"), "NEWS2-0001");

  const Extracted adm = ExtractAll(bytes, kAdm);
  EXPECT_TRUE(adm.errors.empty());
  ASSERT_EQ(adm.rows.size(), 2u);
  EXPECT_EQ(Get(adm, kAdm, 0, "event"), "A01");
  EXPECT_EQ(Get(adm, kAdm, 0, "event_at"), "2024-03-01T07:40:00.000Z");
  EXPECT_EQ(Get(adm, kAdm, 0, "location"), "WARD7^12^B^DEMOHOSP");
  EXPECT_EQ(Get(adm, kAdm, 0, "visit_id"), "V0001");
  EXPECT_EQ(Get(adm, kAdm, 0, "patient_class"), "I");
  EXPECT_EQ(Get(adm, kAdm, 1, "event"), "A02");
}

TEST(Hl7RowsTest, EdgeCasesKeepTheirTimesUnitsAndPatients) {
  REQUIRE_SHARED_DATA();
  const Extracted e = ExtractAll(ReadSharedFile("hl7v2/authored/edge_cases.hl7"), kObs, {.default_offset_minutes = 60});
  EXPECT_TRUE(e.errors.empty()) << e.errors[0];
  // EDGE-0001 (1), -0002 (1), -0003 (1), -0004 (3), -0006 (2 + 1).
  ASSERT_EQ(e.rows.size(), 9u);
  EXPECT_EQ(Get(e, kObs, 1, "status"), "C");
  EXPECT_EQ(Get(e, kObs, 2, "status"), "W");
  EXPECT_EQ(Get(e, kObs, 3, "observed_at"), "2024-03-01T09:00:00.000Z") << "+0100";
  EXPECT_EQ(Get(e, kObs, 4, "observed_at"), "2024-03-01T08:00:00.000Z") << "no zone: the default, +0100";
  EXPECT_EQ(Get(e, kObs, 4, "unit"), "[degF]");
  EXPECT_EQ(Get(e, kObs, 5, "observed_at"), "2024-03-01T09:00:00.123Z");
  EXPECT_EQ(Get(e, kObs, 5, "value_text"), ">200");
  EXPECT_EQ(Get(e, kObs, 6, "patient_id"), "NEWS2-0001");
  EXPECT_EQ(Get(e, kObs, 8, "patient_id"), "NEWS2-0002") << "the second PID of the message";
  EXPECT_EQ(e.skipped, 6) << "the A08 and five ACKs";
}

TEST(Hl7RowsTest, EveryCorpusMessageGivesRowsIsSkippedOrSaysWhy) {
  REQUIRE_SHARED_DATA();
  size_t rows = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(SharedDataDir() + "/hl7v2")) {
    if (entry.path().extension() != ".hl7") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    for (Hl7Rows kind : {kObs, kAdm}) {
      const Extracted e = ExtractAll(bytes, kind);
      for (const std::string& error : e.errors) EXPECT_FALSE(error.empty()) << entry.path();
      rows += e.rows.size();
    }
  }
  EXPECT_GT(rows, 700u);
}

}  // namespace
}  // namespace vstream
