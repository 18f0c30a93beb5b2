#include "runtime/clinical/pseudonymize_function.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/operators/process_operator.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- SHA-256 and HMAC-SHA256 -------------------------------------------------

std::string Hex(std::string_view data) { return DigestToHex(Sha256::Hash(data)); }

TEST(Sha256Test, MatchesTheFips180_4Examples) {
  EXPECT_EQ(Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(std::string(1'000'000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, IncrementalUpdatesGiveTheSameDigestAndFinalStartsAgain) {
  // One million 'a' in pieces that straddle block boundaries unevenly.
  const std::string a(1'000'000, 'a');
  Sha256 h;
  for (size_t at = 0, piece = 1; at < a.size(); at += piece, piece = piece % 131 + 1) {
    h.Update(std::string_view(a).substr(at, piece));
  }
  EXPECT_EQ(DigestToHex(h.Final()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  h.Update("abc");
  EXPECT_EQ(DigestToHex(h.Final()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // The padding's edge cases: 55 bytes fit one block, 56 need two.
  for (size_t n : {55u, 56u, 63u, 64u, 65u}) {
    Sha256 whole;
    whole.Update(std::string(n, 'x'));
    Sha256 split;
    split.Update(std::string(n / 2, 'x'));
    split.Update(std::string(n - n / 2, 'x'));
    EXPECT_EQ(whole.Final(), split.Final()) << n;
  }
}

TEST(HmacSha256Test, MatchesRfc4231) {
  // Test case 1.
  EXPECT_EQ(DigestToHex(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Test case 2: a key shorter than the digest.
  EXPECT_EQ(DigestToHex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than a block is hashed first.
  const std::string long_key(131, '\xaa');
  EXPECT_EQ(DigestToHex(HmacSha256(long_key, "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // Test case 7: and data longer than a block.
  EXPECT_EQ(DigestToHex(HmacSha256(long_key,
                                   "This is a test using a larger than block-size key and a larger than block-size "
                                   "data. The key needs to be hashed before being used by the HMAC algorithm.")),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST(HmacSha256Test, TheKeyedFormGivesTheSameMacsMessageAfterMessage) {
  const HmacSha256Keyed jefe("Jefe");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(DigestToHex(jefe.Mac("what do ya want for nothing?")),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_EQ(jefe.Mac(std::string(200, 'm')), HmacSha256("Jefe", std::string(200, 'm')));
  }
  char hex[16];
  DigestToHex(jefe.Mac("what do ya want for nothing?"), sizeof(hex), hex);
  EXPECT_EQ(std::string_view(hex, sizeof(hex)), "5bdcc146bf60754e");
}

// ---- the pseudonymize process function ---------------------------------------

// Input: {patient_id, mrn, ts (event time), hr, ward}, keyed by patient_id.
const Schema kVitals({{"patient_id", FieldType::kString},
                      {"mrn", FieldType::kString},
                      {"ts", FieldType::kTimestamp},
                      {"hr", FieldType::kInt},
                      {"ward", FieldType::kString}});
constexpr int kTimeIndex = 2;

constexpr char kKeyEnv[] = "VSTREAM_PSEUDONYMIZE_TEST_KEY";
constexpr char kKey[] = "0123456789abcdef0123456789abcdef";  // 32 bytes
constexpr char kNull[] = "(null)";

// Output rows, each field as DatumToString writes it, or kNull.
class Collect : public Output {
 public:
  explicit Collect(Schema schema) : schema_(std::move(schema)) {}
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      std::vector<std::string> row;
      for (size_t f = 0; f < schema_.size(); ++f) {
        row.push_back(batch[i][f].is_null ? kNull : DatumToString(batch[i][f], schema_.field(f).type));
      }
      rows.push_back(std::move(row));
    }
  }
  void Finish() override {}
  void PushWatermark(int64_t) override {}
  std::vector<std::vector<std::string>> rows;

 private:
  Schema schema_;
};

// One reading; a null pointer is a null field.
struct Reading {
  const char* patient_id;
  const char* mrn;
  int64_t ts;
  int64_t hr;
  const char* ward;
};

// The first `length` hex digits of HMAC-SHA256(key, value), computed apart
// from the function.
std::string Expected(std::string_view key, std::string_view value, size_t length = 32) {
  return DigestToHex(HmacSha256(key, value)).substr(0, length);
}

// Runs pseudonymize as a TaskManager does: made by its factory, typed by
// OutputSchema, in a ProcessOperator keyed by patient_id.
class PseudonymizeTest : public ::testing::Test {
 protected:
  PseudonymizeTest() { RegisterPseudonymizeFunction(registry_); }

  void TearDown() override {
    op_.reset();  // closes RocksDB
    for (const std::string& dir : dirs_) fs::remove_all(dir);
    ::unsetenv(kKeyEnv);
  }

  // The factory's, OutputSchema's or Open's error, else OK and ready for
  // Push. A second Start is a new operator, as after a restart.
  absl::Status Start(ProcessParams::Map params) {
    op_.reset();
    ASSIGN_OR_RETURN(std::unique_ptr<KeyedProcessFunction> fn,
                     registry_.Create("pseudonymize", ProcessParams(params)));
    ASSIGN_OR_RETURN(ProcessOutputSchema schema, fn->OutputSchema(ProcessInput{kVitals, {0}, kTimeIndex}));
    output_ = schema;
    proto::ProcessSpec spec;
    spec.set_function("pseudonymize");
    spec.add_key_by("patient_id");
    spec.set_time_field_index(kTimeIndex);
    for (const auto& [k, v] : params) (*spec.mutable_params())[k] = v;
    out_ = std::make_unique<Collect>(schema.schema);
    op_ = std::make_unique<ProcessOperator>(counters_, kVitals, schema.schema, spec, std::move(fn));
    op_->set_output(out_.get());
    OperatorContext ctx;
    ctx.job_id = "job";
    ctx.vertex_name = "pseudonyms";
    ctx.state_dir = TempPath(absl::StrCat("state-", ++runs_));
    ctx.data_dir = TempPath(absl::StrCat("data-", runs_));
    return op_->Open(ctx);
  }

  // Pushes `readings` as one batch; returns the rows the batch gave.
  std::vector<std::vector<std::string>> Push(const std::vector<Reading>& readings) {
    RowBatch batch(kVitals.size());
    for (const Reading& r : readings) {
      Row& row = batch.Append();
      auto set = [](Datum& d, const char* s) {
        if (s == nullptr) {
          d.SetNull();
        } else {
          d.SetString(s);
        }
      };
      set(row[0], r.patient_id);
      set(row[1], r.mrn);
      row[2].SetInt(r.ts);
      row[3].SetInt(r.hr);
      set(row[4], r.ward);
    }
    const size_t before = out_->rows.size();
    op_->Push(batch);
    EXPECT_TRUE(op_->status().ok()) << op_->status();
    return std::vector<std::vector<std::string>>(out_->rows.begin() + static_cast<std::ptrdiff_t>(before),
                                                 out_->rows.end());
  }

  // A path in the test's own temporary directory.
  std::string TempPath(const std::string& name) {
    auto p = fs::temp_directory_path() / absl::StrCat("vstream-pseudonymize-", ::getpid(), "-",
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                                      "-", name);
    fs::remove_all(p);
    dirs_.push_back(p.string());
    return p.string();
  }

  // A key file holding `bytes`.
  std::string KeyFile(const std::string& bytes) {
    const std::string path = TempPath(absl::StrCat("key-", ++runs_));
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  ProcessFunctionRegistry registry_;
  OperatorCounters counters_;
  ProcessOutputSchema output_;
  std::unique_ptr<Collect> out_;
  std::unique_ptr<ProcessOperator> op_;
  std::vector<std::string> dirs_;
  int runs_ = 0;
};

TEST_F(PseudonymizeTest, ReplacesTheChosenFieldsByTheirKeyedHashAndKeepsTheRest) {
  ::setenv(kKeyEnv, kKey, 1);
  ASSERT_TRUE(Start({{"fields", "patient_id, mrn"}, {"key_env", kKeyEnv}}).ok());
  EXPECT_EQ(output_.schema.DebugString(), kVitals.DebugString());
  EXPECT_EQ(output_.time_index, kTimeIndex);

  const auto rows = Push({
      {"p1", "MRN-1", 1000, 80, "icu"},
      {"p2", "MRN-2", 2000, 90, "ward 7"},
      {"p1", nullptr, 3000, 85, nullptr},  // nulls stay null, chosen or not
      {"MRN-1", "p1", 4000, 70, "icu"},    // a value gets one pseudonym, in any field
  });
  ASSERT_EQ(rows.size(), 4u);
  const std::string p1 = Expected(kKey, "p1");
  const std::string mrn1 = Expected(kKey, "MRN-1");
  EXPECT_EQ(rows[0], (std::vector<std::string>{p1, mrn1, "1970-01-01T00:00:01.000Z", "80", "icu"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{Expected(kKey, "p2"), Expected(kKey, "MRN-2"),
                                               "1970-01-01T00:00:02.000Z", "90", "ward 7"}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{p1, kNull, "1970-01-01T00:00:03.000Z", "85", kNull}));
  EXPECT_EQ(rows[3][0], mrn1);
  EXPECT_EQ(rows[3][1], p1);
  EXPECT_NE(p1, Expected(kKey, "p2"));
  // A fixed answer: a pseudonym may never change between versions, or
  // pseudonymized data sets could no longer be joined.
  EXPECT_EQ(p1, "3744dd8e688a4f3a212e73d03c765df5");
}

TEST_F(PseudonymizeTest, AKeyFileGivesTheSamePseudonymsAfterARestartAndAnotherKeyOthers) {
  ::setenv(kKeyEnv, kKey, 1);
  ASSERT_TRUE(Start({{"fields", "patient_id"}, {"key_env", kKeyEnv}}).ok());
  const auto first = Push({{"p1", "MRN-1", 1000, 80, "icu"}});

  // A new operator (a restart), the same key from a file with a newline.
  const std::string file = KeyFile(absl::StrCat(kKey, "\n"));
  ASSERT_TRUE(Start({{"fields", "patient_id"}, {"key_file", file}}).ok());
  EXPECT_EQ(Push({{"p1", "MRN-1", 1000, 80, "icu"}}), first);

  // Another key.
  const std::string other = KeyFile("fedcba9876543210fedcba9876543210\r\n");
  ASSERT_TRUE(Start({{"fields", "patient_id"}, {"key_file", other}}).ok());
  const auto rekeyed = Push({{"p1", "MRN-1", 1000, 80, "icu"}});
  ASSERT_EQ(rekeyed.size(), 1u);
  EXPECT_NE(rekeyed[0][0], first[0][0]);
  EXPECT_EQ(rekeyed[0][0], Expected("fedcba9876543210fedcba9876543210", "p1"));
  EXPECT_EQ(rekeyed[0][1], "MRN-1");  // not chosen
}

TEST_F(PseudonymizeTest, LengthKeepsAPrefixOfTheDigest) {
  ::setenv(kKeyEnv, kKey, 1);
  for (int length : {16, 40, 64}) {
    ASSERT_TRUE(Start({{"fields", "patient_id"}, {"key_env", kKeyEnv}, {"length", std::to_string(length)}}).ok());
    const auto rows = Push({{"p1", "MRN-1", 1000, 80, "icu"}});
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0][0], Expected(kKey, "p1", length));
  }
}

TEST_F(PseudonymizeTest, FieldsMustBeStringFieldsOfTheInput) {
  ::setenv(kKeyEnv, kKey, 1);
  absl::Status unknown = Start({{"fields", "patient_id,name"}, {"key_env", kKeyEnv}});
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(unknown.message(),
            "param 'fields': the input has no field 'name'; it has {patient_id: string, mrn: string, ts: timestamp, "
            "hr: int, ward: string}");
  EXPECT_EQ(ParamOfError(unknown), "fields");

  absl::Status not_string = Start({{"fields", "hr"}, {"key_env", kKeyEnv}});
  EXPECT_EQ(not_string.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(not_string.message()), HasSubstr("field 'hr' is int; only string fields"));
  EXPECT_THAT(std::string(not_string.message()), HasSubstr(kVitals.DebugString()));

  EXPECT_EQ(Start({{"fields", "mrn,mrn"}, {"key_env", kKeyEnv}}).message(), "param 'fields': 'mrn' is named twice");
  EXPECT_EQ(Start({{"fields", " , "}, {"key_env", kKeyEnv}}).message(),
            "param 'fields': names no field; give the string fields to replace");
  EXPECT_EQ(Start({{"key_env", kKeyEnv}}).message(), "missing required param 'fields'");
}

TEST_F(PseudonymizeTest, TheKeyComesFromExactlyOneOfAFileAndAnEnvironmentVariable) {
  absl::Status both = Start({{"fields", "patient_id"}, {"key_env", kKeyEnv}, {"key_file", "/k"}});
  EXPECT_EQ(both.message(), "param 'key_env': give key_file or key_env, not both");
  EXPECT_EQ(ParamOfError(both), "key_env");

  absl::Status neither = Start({{"fields", "patient_id"}});
  EXPECT_EQ(neither.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(neither.message()), HasSubstr("give key_file"));
  EXPECT_THAT(std::string(neither.message()), HasSubstr("or key_env"));

  // The key itself is refused, without repeating it.
  absl::Status key = Start({{"fields", "patient_id"}, {"key", "hunter2hunter2hunter2"}});
  EXPECT_EQ(ParamOfError(key), "key");
  EXPECT_THAT(std::string(key.message()), HasSubstr("the key is never a parameter"));
  EXPECT_THAT(std::string(key.message()), Not(HasSubstr("hunter2")));

  EXPECT_EQ(Start({{"fields", "patient_id"}, {"key_env", ""}}).message(), "param 'key_env': must not be empty");
  EXPECT_EQ(Start({{"fields", "patient_id"}, {"key_env", kKeyEnv}, {"length", "15"}}).message(),
            "param 'length': must be from 16 to 64 hex digits, got 15");
  EXPECT_EQ(Start({{"fields", "patient_id"}, {"key_env", kKeyEnv}, {"length", "65"}}).message(),
            "param 'length': must be from 16 to 64 hex digits, got 65");
}

TEST_F(PseudonymizeTest, TheKeyIsReadWhenTheTaskOpensNotWhenTheJobIsCompiled) {
  ::unsetenv(kKeyEnv);
  // The client: the factory and OutputSchema need no key.
  auto fn = registry_.Create("pseudonymize", ProcessParams(ProcessParams::Map{{"fields", "patient_id"}, {"key_env", kKeyEnv}}));
  ASSERT_TRUE(fn.ok()) << fn.status();
  EXPECT_TRUE((*fn)->OutputSchema(ProcessInput{kVitals, {0}, kTimeIndex}).ok());
  // The TaskManager: Open does.
  absl::Status unset = Start({{"fields", "patient_id"}, {"key_env", kKeyEnv}});
  EXPECT_EQ(unset.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(unset.message()),
              HasSubstr("pseudonymize: key_env VSTREAM_PSEUDONYMIZE_TEST_KEY is not set"));
}

TEST_F(PseudonymizeTest, AShortOrUnreadableKeyFailsTheTask) {
  ::setenv(kKeyEnv, "fifteen bytes!!", 1);
  absl::Status short_env = Start({{"fields", "patient_id"}, {"key_env", kKeyEnv}});
  EXPECT_EQ(short_env.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(short_env.message()),
              HasSubstr("pseudonymize: the key in key_env VSTREAM_PSEUDONYMIZE_TEST_KEY is 15 bytes; it must have at "
                        "least 16"));
  EXPECT_THAT(std::string(short_env.message()), Not(HasSubstr("fifteen")));

  ::setenv(kKeyEnv, "", 1);
  EXPECT_THAT(std::string(Start({{"fields", "patient_id"}, {"key_env", kKeyEnv}}).message()), HasSubstr("is 0 bytes"));

  // The stripped newline does not count.
  const std::string short_file = KeyFile("0123456789abcde\n");
  absl::Status short_key = Start({{"fields", "patient_id"}, {"key_file", short_file}});
  EXPECT_THAT(std::string(short_key.message()), HasSubstr(absl::StrCat("key_file ", short_file, " is 15 bytes")));

  const std::string missing = TempPath("no-such-key");
  absl::Status unreadable = Start({{"fields", "patient_id"}, {"key_file", missing}});
  EXPECT_EQ(unreadable.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unreadable.message()),
              HasSubstr(absl::StrCat("pseudonymize: key_file ", missing, ": cannot read: No such file or directory")));

  const std::string dir = TempPath("a-directory");
  fs::create_directories(dir);
  EXPECT_THAT(std::string(Start({{"fields", "patient_id"}, {"key_file", dir}}).message()), HasSubstr("cannot read"));
}

}  // namespace
}  // namespace vstream
