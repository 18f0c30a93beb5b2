// Bad input gets a one-line error naming file:line:column and what was
// expected, and nothing starts: each case runs the real `vstream` binary.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "tests/test_cluster.h"

namespace vstream::testing {
namespace {

class CliErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.File("vitals.csv"), "patient_id,ts,hr,spo2,rr\nP1,1700000000000,80,97,14\n");
  }

  // Runs `vstream submit` on a job whose text is `yaml` (with $DIR replaced)
  // against a JobManager address where nothing listens.
  CommandResult Submit(const std::string& yaml) {
    const std::string path = dir_.File("job.yaml");
    WriteFile(path, absl::StrReplaceAll(yaml, {{"$DIR", dir_.path()}}));
    return RunCommand({BinPath("vstream"), "submit", path, "--jobmanager", ClosedAddress()}, dir_.path(),
                      std::chrono::seconds(30));
  }

  // An address on loopback with nothing listening.
  static std::string ClosedAddress() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  }

  // The error is one line that starts with "vstream: <job.yaml>:LINE:COL:".
  void ExpectSpecError(const CommandResult& r, int line, int col, const std::string& fragment) {
    EXPECT_EQ(r.exit_code, 2) << r.err;
    const std::string where = absl::StrCat("vstream: ", dir_.File("job.yaml"), ":", line, ":", col, ": ");
    EXPECT_EQ(r.err.rfind(where, 0), 0u) << "expected to start with '" << where << "', got: " << r.err;
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    EXPECT_TRUE(r.out.empty()) << "no job id: nothing was submitted: " << r.out;
  }

  TempDir dir_{"cli"};
};

constexpr char kGood[] = R"(name: t
sources:
  - name: vitals
    connector: file
    path: $DIR/vitals.csv
    format: csv
    schema: {patient_id: string, ts: timestamp, hr: int, spo2: int, rr: int}
operators:
  - name: valid
    type: filter
    input: vitals
    where: "hr > 0"
sinks:
  - name: out
    connector: stdout
    input: valid
)";

TEST_F(CliErrorsTest, YamlSyntaxError) {
  ExpectSpecError(Submit("name: t\nsources:\n  - name: [unclosed\n"), 4, 1, "");
}

TEST_F(CliErrorsTest, UnknownOperatorType) {
  std::string job = absl::StrReplaceAll(kGood, {{"type: filter", "type: fliter"}});
  ExpectSpecError(Submit(job), 10, 11, "unknown operator type 'fliter'");
}

TEST_F(CliErrorsTest, UnknownField) {
  std::string job = absl::StrReplaceAll(kGood, {{"where: \"hr > 0\"", "wher: \"hr > 0\""}});
  ExpectSpecError(Submit(job), 12, 5, "unknown field 'wher'");
}

TEST_F(CliErrorsTest, ExpressionTypeError) {
  // `hr + 1` is an int where the filter needs a bool; the column points into the expression.
  std::string job = absl::StrReplaceAll(kGood, {{"where: \"hr > 0\"", "where: \"hr + 1\""}});
  CommandResult r = Submit(job);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind(absl::StrCat("vstream: ", dir_.File("job.yaml"), ":12:"), 0), 0u) << r.err;
  EXPECT_NE(r.err.find("bool"), std::string::npos) << r.err;
}

TEST_F(CliErrorsTest, UnknownFieldInExpression) {
  std::string job = absl::StrReplaceAll(kGood, {{"where: \"hr > 0\"", "where: \"hr > 0 AND spo3 > 1\""}});
  // "where: \"" starts at column 5; the expression at column 13; `spo3` at offset 11.
  ExpectSpecError(Submit(job), 12, 24, "spo3");
}

TEST_F(CliErrorsTest, MissingInputFile) {
  std::string job = absl::StrReplaceAll(kGood, {{"vitals.csv", "nope.csv"}});
  ExpectSpecError(Submit(job), 5, 11, "does not exist");
}

TEST_F(CliErrorsTest, UnreachableJobManager) {
  CommandResult r = Submit(kGood);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot reach the JobManager at 127.0.0.1:"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(CliErrorsTest, UnknownCommandAndMissingFile) {
  CommandResult r = RunCommand({BinPath("vstream"), "sumbit"}, dir_.path(), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'sumbit'"), std::string::npos) << r.err;
  r = RunCommand({BinPath("vstream"), "submit", dir_.File("absent.yaml")}, dir_.path(), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("absent.yaml"), std::string::npos) << r.err;
}

// `vstream plan` compiles a spec and prints its tasks and exchanges without
// a JobManager; a bad spec is the same one-line error as for submit.
TEST_F(CliErrorsTest, PlanPrintsTasksAndExchangesOrTheSpecError) {
  CommandResult r = RunCommand({BinPath("vstream"), "plan", std::string(VSTREAM_SOURCE_DIR) +
                                                               "/examples/icu-early-warning.yaml", "--parallelism", "3"},
                               dir_.path(), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The dedup and everything keyed by patient behind it run in one task,
  // behind the source's exchange, the only one.
  EXPECT_NE(r.out.find("            3  unique, news2, qsofa,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  ward -> unique: hash [patient_id]; all 19 fields\n"), std::string::npos) << r.out;
  // Keyed by patient and more: grouped by patient, in that task too.
  EXPECT_NE(r.out.find("\nGROUPED  (keyed by more fields than the input is partitioned by: key groups from those "
                       "alone)\n  pattern_alerts: key [patient_id, pattern] grouped by [patient_id]\n"
                       "  vitals_5min: key [patient_id, code] grouped by [patient_id]\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("-> vitals_5min"), std::string::npos) << "chained, not an exchange: " << r.out;
  EXPECT_EQ(r.out.find("-> pattern_alerts"), std::string::npos) << "chained, not an exchange: " << r.out;
  EXPECT_EQ(r.out.find("unique -> news2"), std::string::npos) << "chained, not an exchange: " << r.out;
  // The union of the two patterns joins their task.
  EXPECT_NE(r.out.find("desaturation, heart_rate_rise, patterns,"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("-> patterns"), std::string::npos) << "chained, not an exchange: " << r.out;
  EXPECT_EQ(r.out.find("PROJECTED SOURCES"), std::string::npos) << "no nexmark source: " << r.out;

  // Nexmark q3 reads nothing of a bid but its type and time.
  const std::string q3 = dir_.File("q3.yaml");
  WriteFile(q3, absl::StrReplaceAll(ReadFile(std::string(VSTREAM_SOURCE_DIR) + "/bench/workloads/q3.yaml"),
                                    {{"count: COUNT", "count: 1000"}}));
  r = RunCommand({BinPath("vstream"), "plan", q3}, dir_.path(), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\nPROJECTED SOURCES  (make only the fields the job reads; the others are null)\n"
                       "  events: 9 of 27 fields: event_type, person_id, person_name, person_city, person_state, "
                       "auction_id, auction_seller, auction_category, date_time\n"),
            std::string::npos)
      << r.out;

  const std::string path = dir_.File("job.yaml");
  WriteFile(path, absl::StrReplaceAll(absl::StrReplaceAll(kGood, {{"$DIR", dir_.path()}}), {{"type: filter", "type: fliter"}}));
  ExpectSpecError(RunCommand({BinPath("vstream"), "plan", path}, dir_.path(), std::chrono::seconds(30)), 10, 11,
                  "unknown operator type 'fliter'");
}

}  // namespace
}  // namespace vstream::testing
