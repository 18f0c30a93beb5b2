#include "runtime/formats/hl7v2.h"

#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/time_util.h"
#include "gtest/gtest.h"
#include "runtime/tests/shared_data.h"

namespace vstream {
namespace {

struct Split {
  std::vector<std::string> messages;
  std::vector<std::string> errors;  // "line N: reason"
};

Split SplitAll(std::string_view bytes) {
  Split out;
  Hl7Splitter splitter(bytes);
  Hl7Piece piece;
  while (splitter.Next(&piece)) {
    if (piece.error.empty()) {
      out.messages.emplace_back(piece.text);
    } else {
      out.errors.push_back(piece.error);
    }
  }
  return out;
}

std::string Unescaped(const Hl7Message& msg, std::string_view raw) {
  std::string out;
  EXPECT_TRUE(msg.Unescape(raw, &out).ok()) << raw;
  return out;
}

TEST(Hl7MessageTest, ReadsFieldsRepetitionsComponentsAndSubcomponents) {
  const std::string text =
      "MSH|^~\\&|EHR|DEMOHOSP|ENGINE|DEMOHOSP|20240301080300+0000||ORU^R01^ORU_R01|EHR-1|P|2.5.1\r"
      "PID|1||MRN1^^^HOSP&1.2.3&ISO^MR~NHS9^^^NHS^NH||DOE^JOHN\r"
      "OBX|1|NM|8867-4^Heart rate^LN||78|/min^beats/min^UCUM|||||F|||20240301080000+0000\r";
  Hl7Message msg;
  ASSERT_TRUE(msg.Parse(text).ok());
  ASSERT_EQ(msg.segment_count(), 3);
  EXPECT_EQ(msg.Field(0, 1), "|");
  EXPECT_EQ(msg.Field(0, 2), "^~\\&");
  EXPECT_EQ(msg.Get(0, 9, 1), "ORU");
  EXPECT_EQ(msg.Get(0, 9, 2), "R01");
  EXPECT_EQ(msg.Field(0, 10), "EHR-1");
  const int pid = msg.Find("PID");
  ASSERT_EQ(pid, 1);
  EXPECT_EQ(msg.RepetitionCount(msg.Field(pid, 3)), 2);
  EXPECT_EQ(msg.Get(pid, 3, 1), "MRN1");
  EXPECT_EQ(msg.Get(pid, 3, 4), "HOSP&1.2.3&ISO");
  EXPECT_EQ(msg.Get(pid, 3, 4, 2), "1.2.3");
  EXPECT_EQ(msg.Get(pid, 3, 1, 0, 2), "NHS9");
  EXPECT_EQ(msg.Get(pid, 3, 5, 0, 3), "");
  const int obx = msg.Find("OBX");
  EXPECT_EQ(msg.segment_id(obx), "OBX");
  EXPECT_EQ(msg.field_count(obx), 14);
  EXPECT_EQ(msg.Field(obx, 5), "78");
  EXPECT_EQ(msg.Get(obx, 6, 1), "/min");
  EXPECT_EQ(msg.Field(obx, 15), "");
  EXPECT_EQ(msg.Field(-1, 1), "");
  EXPECT_EQ(msg.Find("NTE"), -1);
  EXPECT_EQ(msg.line(obx), 3);
}

TEST(Hl7MessageTest, DecodesEveryEscapeSequence) {
  Hl7Message msg;
  ASSERT_TRUE(msg.Parse("MSH|^~\\&#|A\r").ok());
  EXPECT_EQ(msg.delimiters().truncation, '#');
  EXPECT_EQ(Unescaped(msg, "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\P\\"), "a|b^c&d~e\\f#");
  EXPECT_EQ(Unescaped(msg, "hex \\X41\\ \\X4a4B\\"), "hex A JK");
  EXPECT_EQ(Unescaped(msg, "line\\.br\\break\\.sp 2\\x"), "line\nbreak\n\nx");
  EXPECT_EQ(Unescaped(msg, "\\H\\bold\\N\\ \\.in+4\\\\.ce\\c\\C2842\\\\M2442\\"), "bold c");
  EXPECT_EQ(Unescaped(msg, "site \\Zx1\\ kept"), "site \\Zx1\\ kept");
  std::string out;
  const absl::Status open = msg.Unescape("C:\\temp", &out);
  EXPECT_TRUE(absl::IsInvalidArgument(open));
  EXPECT_NE(open.message().find("no closing"), std::string::npos) << open;
  EXPECT_TRUE(absl::IsInvalidArgument(msg.Unescape("\\X4\\", &out)));
  EXPECT_TRUE(absl::IsInvalidArgument(msg.Unescape("\\XZZ\\", &out)));
}

TEST(Hl7MessageTest, UsesTheDelimitersTheMessageDeclares) {
  Hl7Message msg;
  ASSERT_TRUE(msg.Parse("MSH$%~\\&$GHH LAB\rPID$$$555-44-4444$$EVERYWOMAN%EVE%E%%%L\r").ok());
  EXPECT_EQ(msg.delimiters().field, '$');
  EXPECT_EQ(msg.delimiters().component, '%');
  EXPECT_EQ(msg.Field(0, 3), "GHH LAB");
  EXPECT_EQ(msg.Get(1, 5, 2), "EVE");
  EXPECT_EQ(Unescaped(msg, "a\\F\\b\\S\\c"), "a$b%c");
}

TEST(Hl7MessageTest, AcceptsLfCrlfBlankLinesTrailingSpacesAndAByteOrderMark) {
  Hl7Message msg;
  ASSERT_TRUE(msg.Parse("\xEF\xBB\xBFMSH|^~\\&|A  \r\n\r\nPID|1||X   \nOBX|1\n").ok());
  ASSERT_EQ(msg.segment_count(), 3);
  EXPECT_EQ(msg.Field(0, 3), "A");
  EXPECT_EQ(msg.Field(1, 3), "X");
  EXPECT_EQ(msg.line(1), 3);
  EXPECT_EQ(msg.line(2), 4);
}

TEST(Hl7MessageTest, MalformedMessagesSayWhereAndWhat) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "line 1: a message starts with MSH, not ''"},
      {"PID|1", "line 1: a message starts with MSH, not 'PID'"},
      {"MSH", "line 1: MSH without a field separator (MSH-1)"},
      {"MSHA^~\\&", "the field separator (MSH-1) 'A' must not be a letter"},
      {"MSH|^~|A", "the encoding characters (MSH-2) '^~' must be 4"},
      {"MSH|^~\\\\&|A", "the encoding characters (MSH-2) '^~\\\\&' repeat '\\'"},
      {"MSH|^~\\|&|A", "must be 4 (component, repetition, escape, sub-component)"},
      {"MSH|^~\\&|A\rPI|1", "line 2: 'PI|1' is not a segment id"},
      {"MSH|^~\\&|A\rpid|1", "line 2: 'pid|' is not a segment id"},
      {"MSH|^~\\&|A\rPIDX|1", "line 2: 'PIDX' is not a segment id"},
      {"MSH|^~\\&|A\rMSH|^~\\&|B", "line 2: a second MSH inside one message"},
      {"MSH|^~\\&|A\rBHS|^~\\&|B", "line 2: BHS inside a message"},
  };
  for (const auto& [text, want] : cases) {
    Hl7Message msg;
    const absl::Status s = msg.Parse(text);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << text;
    EXPECT_NE(s.message().find(want), std::string::npos) << "parsing " << text << "\n got: " << s;
    EXPECT_EQ(msg.segment_count(), 0);
  }
  Hl7Message msg;
  const absl::Status s = msg.Parse("MSH|^~\\&|A\r\rOBx|1", 40);
  EXPECT_NE(s.message().find("line 42: 'OBx|' is not a segment id"), std::string::npos) << s;
}

TEST(Hl7SplitterTest, SplitsMessagesAndChecksEnvelopes) {
  const std::string batch =
      "FHS|^~\\&|F\rBHS|^~\\&|B\rMSH|^~\\&|1\rPID|1\rMSH|^~\\&|2\rBTS|2\rBHS|^~\\&|B\rMSH|^~\\&|3\rBTS|1\rFTS|2\r";
  Split got = SplitAll(batch);
  ASSERT_EQ(got.messages.size(), 3u);
  EXPECT_EQ(got.messages[0], "MSH|^~\\&|1\rPID|1");
  EXPECT_EQ(got.messages[2], "MSH|^~\\&|3");
  EXPECT_TRUE(got.errors.empty());

  got = SplitAll("BHS|^~\\&\rMSH|^~\\&|1\rEVN|A04\rBHS|^~\\&\rPID|1\rBTS|1\rMSH|^~\\&|after\r");
  ASSERT_EQ(got.errors.size(), 2u);
  EXPECT_EQ(got.errors[0],
            "line 4: BHS inside the batch begun at line 1 (a batch ends with BTS before the next begins)");
  EXPECT_EQ(got.errors[1],
            "line 5: segment 'PID' outside any message in the batch begun at line 4 (a message starts with MSH)");
  ASSERT_EQ(got.messages.size(), 1u) << "a message after a bad batch is read";
  EXPECT_EQ(got.messages[0], "MSH|^~\\&|after");

  got = SplitAll("EVN|A04\rPID|1\rMSH|^~\\&|1\rBTS|1\rBHS|^~\\&\rMSH|^~\\&|2");
  ASSERT_EQ(got.errors.size(), 3u);
  EXPECT_EQ(got.errors[0], "line 1: segment 'EVN' outside any message (a message starts with MSH)");
  EXPECT_EQ(got.errors[1], "line 4: BTS without a BHS before it");
  EXPECT_EQ(got.errors[2], "the batch begun at line 5 has no BTS (it is cut short)");
  EXPECT_EQ(got.messages.size(), 1u);

  got = SplitAll("FHS|^~\\&\rMSH|^~\\&|1\r");
  EXPECT_EQ(got.messages.size(), 1u);
  ASSERT_EQ(got.errors.size(), 1u);
  EXPECT_EQ(got.errors[0], "the file begun at line 1 has no FTS (it is cut short)");

  got = SplitAll("\xEF\xBB\xBFMSH|^~\\&|1\n\nPID|1\r\nMSH|^~\\&|2");
  ASSERT_EQ(got.messages.size(), 2u);
  EXPECT_EQ(got.messages[0], "MSH|^~\\&|1\n\nPID|1");

  EXPECT_TRUE(SplitAll("").messages.empty());
  EXPECT_TRUE(SplitAll("\r\n\r\n").errors.empty());
}

TEST(Hl7TimestampTest, ReadsEveryPrecisionAndOffset) {
  struct Case {
    std::string text;
    int default_offset;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"2024", 0, "2024-01-01T00:00:00.000Z"},
      {"202403", 0, "2024-03-01T00:00:00.000Z"},
      {"20240301", 0, "2024-03-01T00:00:00.000Z"},
      {"2024030109", 0, "2024-03-01T09:00:00.000Z"},
      {"202403010930", 0, "2024-03-01T09:30:00.000Z"},
      {"202403010930", 60, "2024-03-01T08:30:00.000Z"},
      {"20240301093015", 0, "2024-03-01T09:30:15.000Z"},
      {"20240301093015.1", 0, "2024-03-01T09:30:15.100Z"},
      {"20240301090000.1234+0000", 0, "2024-03-01T09:00:00.123Z"},
      {"20240301100000+0100", 0, "2024-03-01T09:00:00.000Z"},
      {"20240301100000-0530", 60, "2024-03-01T15:30:00.000Z"},
      {"20240229", 0, "2024-02-29T00:00:00.000Z"},
  };
  for (const Case& c : cases) {
    int64_t ms = 0;
    ASSERT_TRUE(ParseHl7Timestamp(c.text, c.default_offset, &ms).ok()) << c.text;
    EXPECT_EQ(FormatTimestamp(ms), c.want) << c.text;
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "no 4-digit year"},
      {"196203520", "the digits after the year come in pairs"},
      {"20241301", "month out of range"},
      {"20230229", "day out of range"},
      {"2024030124", "hour out of range"},
      {"20240301.5", "a fraction of a second needs the seconds"},
      {"20240301000000.", "1 to 4 digits"},
      {"20240301+01", "a time-zone offset is 4 digits"},
      {"20240301 ", "unexpected ' '"},
  };
  for (const auto& [text, want] : bad) {
    int64_t ms = 0;
    const absl::Status s = ParseHl7Timestamp(text, 0, &ms);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << text;
    EXPECT_NE(s.message().find(want), std::string::npos) << text << ": " << s;
  }
}

// Every file of the corpus splits into messages that parse, or into pieces
// rejected with a reason, and the files with a known shape have it.
TEST(Hl7CorpusTest, EveryFileParsesOrIsRejectedWithAReason) {
  REQUIRE_SHARED_DATA();
  // file -> {messages that parse, pieces or messages rejected}
  const std::map<std::string, std::pair<int, int>> expected = {
      {"authored/scenario_patient1_news2_scale1.hl7", {7, 0}},
      {"authored/scenario_patient2_news2_scale2_copd.hl7", {6, 0}},
      {"authored/pcd01_monitor_stream_patient1.hl7", {14, 0}},
      {"authored/edge_cases.hl7", {11, 0}},
      {"authored/edge_crlf_segment_terminators.hl7", {1, 0}},
      {"python-hl7/batch_BHS_BTS_ADT_A04.hl7", {1, 0}},
      {"python-hl7/file_FHS_FTS_one_batch.hl7", {1, 0}},
      {"python-hl7/file_FHS_two_batches.hl7", {3, 0}},
      {"python-hl7/malformed_batch_nested_BHS.hl7", {0, 2}},
      {"python-hl7/malformed_file_no_MSH.hl7", {0, 1}},
      {"python-hl7/nonstandard_delimiters.hl7", {1, 0}},
      {"linuxforhealth/sample_unix.hl7", {0, 1}},  // MSH-2 '^~\\&' repeats '\'
      {"linuxforhealth/sample_win.hl7", {0, 1}},
      {"linuxforhealth/ORU-multiline.hl7", {1, 0}},
  };
  int files = 0;
  std::map<std::string, std::pair<int, int>> seen;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(SharedDataDir() + "/hl7v2")) {
    if (entry.path().extension() != ".hl7") continue;
    ++files;
    const std::string name =
        std::filesystem::relative(entry.path(), SharedDataDir() + "/hl7v2").generic_string();
    const std::string bytes = ReadSharedFile("hl7v2/" + name);
    int parsed = 0, rejected = 0;
    Hl7Splitter splitter(bytes);
    Hl7Piece piece;
    Hl7Message msg;
    while (splitter.Next(&piece)) {
      if (!piece.error.empty()) {
        ++rejected;
        std::cerr << name << ": rejected: " << piece.error << "\n";
        continue;
      }
      const absl::Status s = msg.Parse(piece.text, piece.line);
      if (s.ok()) {
        ++parsed;
        EXPECT_EQ(msg.segment_id(0), "MSH") << name;
      } else {
        ++rejected;
        std::cerr << name << ": rejected: " << s.message() << "\n";
        EXPECT_EQ(s.message().rfind("line ", 0), 0u) << name << ": " << s;
      }
    }
    seen[name] = {parsed, rejected};
    EXPECT_GT(parsed + rejected, 0) << name;
  }
  EXPECT_GE(files, 35) << "the corpus has more .hl7 files than that";
  for (const auto& [name, want] : expected) {
    ASSERT_TRUE(seen.count(name)) << name << " is not in the corpus";
    EXPECT_EQ(seen[name], want) << name << ": {parsed, rejected}";
  }
}

TEST(Hl7CorpusTest, EdgeCaseEscapesDecodeAsTheNotesSay) {
  REQUIRE_SHARED_DATA();
  const std::string bytes = ReadSharedFile("hl7v2/authored/edge_cases.hl7");
  Hl7Splitter splitter(bytes);
  Hl7Piece piece;
  ASSERT_TRUE(splitter.Next(&piece));
  Hl7Message msg;
  ASSERT_TRUE(msg.Parse(piece.text, piece.line).ok());
  EXPECT_EQ(Unescaped(msg, msg.Field(msg.Find("NTE"), 3)),
            "Pipe | caret ^ amp & tilde ~ backslash \\ hex A line\nbreak");
}

// The parser never crashes and never reads outside its input, whatever the
// bytes (tests/fuzz has the coverage-guided fuzzer; this runs everywhere).
TEST(Hl7MessageTest, RandomMutationsOfRealMessagesNeverCrash) {
  std::vector<std::string> seeds = {
      "MSH|^~\\&|EHR|H|E|H|20240301080300+0000||ORU^R01|1|P|2.5.1\rPID|1||M^^^H^MR\r"
      "OBX|1|NM|8867-4^HR^LN||78|/min|||||F|||20240301080000\rNTE|1||\\F\\\\X41\\\\.br\\",
      "BHS|^~\\&\rMSH|^~\\&|1\rBTS|1\rFHS|^~\\&\rFTS|0"};
  if (HaveSharedData()) seeds.push_back(ReadSharedFile("hl7v2/authored/edge_cases.hl7"));
  std::mt19937_64 rng(11);
  Hl7Message msg;
  std::string out;
  for (int round = 0; round < 20000; ++round) {
    std::string text = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = rng() % text.size();
      switch (rng() % 4) {
        case 0: text[at] = static_cast<char>(rng()); break;
        case 1: text.erase(at, 1 + rng() % 16); break;
        case 2: text.insert(at, 1, "|^~\\&\r\nX#"[rng() % 9]); break;
        default: text.resize(at); break;
      }
    }
    Hl7Splitter splitter(text);
    Hl7Piece piece;
    while (splitter.Next(&piece)) {
      if (!piece.error.empty() || !msg.Parse(piece.text, piece.line).ok()) continue;
      for (int s = 0; s < msg.segment_count(); ++s) {
        for (int f = 0; f <= msg.field_count(s) + 1; ++f) {
          (void)msg.Unescape(msg.Get(s, f, 1, 1), &out);
          int64_t ms;
          (void)ParseHl7Timestamp(msg.Field(s, f), 0, &ms);
        }
      }
    }
  }
}

}  // namespace
}  // namespace vstream
