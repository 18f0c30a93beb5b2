// HL7 v2 parsing throughput on one thread: the real messages of
// ../shared/data/hl7v2/authored (ORU^R01 from an EHR and from an IHE PCD-01
// bedside monitor, ADTs, ACKs) repeated to MESSAGES messages in one buffer,
// then read three ways, each timed on the thread's CPU clock:
//   split   Hl7Splitter: messages and envelopes found
//   parse   + Hl7Message::Parse: segments and fields
//   rows    + Hl7RowExtractor: observation rows (one per OBX of an ORU)
// Prints messages/s per core, MB/s and rows/s. bench/hl7_bench.sh runs it.
//
//   hl7_bench [MESSAGES (default 500000)] [SHARED_DATA (default ../shared/data)]

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/formats/hl7v2.h"
#include "runtime/formats/hl7v2_rows.h"

namespace {

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const long messages = argc > 1 ? std::atol(argv[1]) : 500000;
  const std::string shared = argc > 2 ? argv[2] : "../shared/data";
  const std::string dir = shared + "/hl7v2/authored";
  if (messages <= 0 || !std::filesystem::is_directory(dir)) {
    std::fprintf(stderr, "usage: hl7_bench [MESSAGES > 0] [SHARED_DATA]\nneeds the corpus in %s\n", dir.c_str());
    return 2;
  }
  // The corpus's messages, each ending in CR.
  std::vector<std::string> corpus;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".hl7") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    vstream::Hl7Splitter splitter(bytes);
    vstream::Hl7Piece piece;
    vstream::Hl7Message msg;
    while (splitter.Next(&piece)) {
      if (piece.error.empty() && msg.Parse(piece.text, piece.line).ok()) {
        std::string m(piece.text);
        for (char& c : m) {
          if (c == '\n') c = '\r';
        }
        corpus.push_back(m + "\r");
      }
    }
  }
  std::string stream;
  for (long i = 0; i < messages; ++i) stream += corpus[static_cast<size_t>(i) % corpus.size()];
  std::printf("input     %ld messages (the %zu of %s, repeated), %.1f MB\n", messages, corpus.size(), dir.c_str(),
              static_cast<double>(stream.size()) / 1e6);

  for (int mode = 0; mode < 3; ++mode) {
    vstream::Hl7RowExtractor extractor(vstream::Hl7Rows::kObservations, {});
    vstream::RowBatch batch(extractor.schema().size());
    vstream::Hl7Message msg;
    vstream::Hl7Piece piece;
    long found = 0, rows = 0, bad = 0;
    const double start = ThreadCpuSeconds();
    vstream::Hl7Splitter splitter(stream);
    while (splitter.Next(&piece)) {
      ++found;
      if (mode == 0) continue;
      if (!msg.Parse(piece.text, piece.line).ok()) {
        ++bad;
        continue;
      }
      if (mode == 1) continue;
      bool skipped = false;
      if (!extractor.Append(msg, 0, &batch, &skipped).ok()) ++bad;
      if (batch.size() >= vstream::RowBatch::kDefaultCapacity) {
        rows += static_cast<long>(batch.size());
        batch.Clear();
      }
    }
    rows += static_cast<long>(batch.size());
    const double secs = ThreadCpuSeconds() - start;
    static const char* kNames[] = {"split", "parse", "rows"};
    std::printf("%-9s %9.0f messages/s per core  %7.1f MB/s  %10.0f rows/s  (%ld messages, %ld rows, %ld rejected, "
                "%.3f CPU s)\n",
                kNames[mode], static_cast<double>(found) / secs, static_cast<double>(stream.size()) / 1e6 / secs,
                static_cast<double>(rows) / secs, found, rows, bad, secs);
  }
  return 0;
}
