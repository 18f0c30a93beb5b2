#pragma once
// The file source for formats whose records are documents, many per file:
// `hl7v2` (HL7 v2 messages, bare or in batch BHS/BTS and file FHS/FTS
// envelopes) and `fhir` (FHIR R4 resources: a file of one resource or
// Bundle, or, for names ending .ndjson or .jsonl, one per line). It reads
// one file or every regular file of a directory (in name order; names
// starting with '.' are skipped). Subtask i of p reads the files i, i + p,
// i + 2p, ... of that list, so a single file is read by subtask 0 alone.
// Each file is read whole into memory.
//
// Each document becomes rows: hl7v2 as the spec's hl7_rows says
// (runtime/formats/hl7v2_rows.h: observation rows per OBX of an ORU, or
// admission-event rows per ADT); fhir the same observation rows from
// Observations (runtime/formats/fhir.h). A piece of a file that is no
// document, a document that does not parse and one with a malformed part
// each go whole to the dead letters, with "path:line" and the reason; other
// message or resource types (ACKs, queries, Patients) are skipped and
// counted in the log line at the end.
//
// Position (for checkpoints): "<hl7|fhir> offset=O files=N file=NAME", the
// byte offset of the next document in the file being read, and how many
// files the subtask has. Files before NAME in the list are done. A restore
// re-splits that file and skips the documents before O. The directory must
// not change while a job reads it: a restore that finds another number of
// files fails (DataLoss) rather than skip or repeat documents.
//
// received_at is the context's clock (the system clock by default) when the
// batch was read.
//
// Task thread only.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/jobgraph.pb.h"
#include "runtime/formats/fhir.h"
#include "runtime/formats/hl7v2.h"
#include "runtime/formats/json_value.h"
#include "runtime/formats/hl7v2_rows.h"
#include "runtime/operators/dead_letters.h"
#include "runtime/operators/sources.h"

namespace vstream {

class DocumentFileSource : public SourceOperator {
 public:
  // `schema` must be the rows' (hl7_rows for hl7v2; the job builder sets it).
  DocumentFileSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec);
  absl::Status Open(const OperatorContext& ctx) override;
  SourceStatus Produce() override;
  std::string SnapshotOperatorState(int64_t) override;
  absl::Status RestoreOperatorState(std::string_view state) override;

  // Documents per Produce call, at most: one batch unpaced; paced
  // (max_rate), what the rate limiter grants, in as many batches as it takes.
  static constexpr size_t kMessagesPerBatch = 256;

 private:
  // Reads files_[file_] into bytes_ and starts splitting it.
  absl::Status LoadFile();
  // The next piece of the file; false at its end.
  bool NextPiece();
  // The rows of piece_, or why there are none.
  absl::Status AppendRows(int64_t now, bool* skipped);
  void DeadLetter(int line, std::string_view reason, std::string_view raw);
  void LogSummary();

  const Schema schema_;
  const proto::SourceSpec spec_;
  OperatorContext ctx_;
  Hl7RowExtractor extractor_;
  std::vector<std::string> files_;  // this subtask's, in order
  size_t file_ = 0;                 // files_[file_] is read now (or next)
  bool loaded_ = false;             // bytes_ holds files_[file_]
  std::string bytes_;
  const bool fhir_;       // format fhir, else hl7v2
  std::string position_prefix_;  // "hl7" or "fhir"
  std::optional<Hl7Splitter> splitter_;
  bool lines_ = false;    // fhir: one resource per line
  size_t scan_ = 0;       // fhir: where the next piece starts in bytes_
  int scan_line_ = 1;
  FhirRowExtractor fhir_extractor_;
  JsonValue document_;
  int64_t offset_ = 0;   // of the next piece in bytes_
  int64_t skip_to_ = 0;  // after a restore: pieces before it were read
  Hl7Message message_;
  Hl7Piece piece_;
  RowBatch batch_;
  DeadLetters dead_letters_;
  std::unique_ptr<RateLimiter> limiter_;  // messages/s
  int64_t messages_ = 0;
  int64_t skipped_ = 0;
  int64_t rejected_ = 0;
  int64_t rows_ = 0;
  bool summarized_ = false;
};

}  // namespace vstream
