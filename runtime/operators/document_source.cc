#include "runtime/operators/document_source.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"
#include "state/state_clock.h"

namespace vstream {

namespace {

Hl7Rows RowsOf(const proto::SourceSpec& spec) {
  return spec.hl7_rows() == "admissions" ? Hl7Rows::kAdmissions : Hl7Rows::kObservations;
}

std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace

DocumentFileSource::DocumentFileSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec)
    : SourceOperator(counters),
      schema_(std::move(schema)),
      spec_(spec),
      extractor_(RowsOf(spec), Hl7RowsOptions{.default_offset_minutes = spec.hl7_default_offset_minutes()}),
      fhir_(spec.format() == "fhir"),
      position_prefix_(fhir_ ? "fhir" : "hl7"),
      batch_(schema_.size()),
      dead_letters_(counters, "source") {}

absl::Status DocumentFileSource::Open(const OperatorContext& ctx) {
  ctx_ = ctx;
  dead_letters_.Open(ctx);
  dead_letters_.set_output(dead_letter_output_);
  limiter_ = std::make_unique<RateLimiter>(spec_.max_rate(), ctx_.clock);
  const Schema& rows = fhir_ ? fhir_extractor_.schema() : extractor_.schema();
  if (schema_.DebugString() != rows.DebugString()) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "': a ", spec_.format(),
                                                   " source has the schema ", rows.DebugString(), ", not ",
                                                   schema_.DebugString()));
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> all;
  if (fs::is_directory(spec_.path(), ec)) {
    for (const auto& entry : fs::directory_iterator(spec_.path(), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.empty() || name[0] == '.' || !entry.is_regular_file(ec)) continue;
      all.push_back(entry.path().string());
    }
    if (ec) return absl::InternalError(absl::StrCat("cannot list ", spec_.path(), ": ", ec.message()));
    std::sort(all.begin(), all.end());
  } else if (fs::is_regular_file(spec_.path(), ec)) {
    all.push_back(spec_.path());
  } else {
    return absl::NotFoundError(absl::StrCat("no input file or directory ", spec_.path()));
  }
  for (size_t i = static_cast<size_t>(ctx.subtask_index); i < all.size(); i += static_cast<size_t>(ctx.parallelism)) {
    files_.push_back(std::move(all[i]));
  }
  return absl::OkStatus();
}

std::string DocumentFileSource::SnapshotOperatorState(int64_t) {
  if (file_ >= files_.size()) return absl::StrCat(position_prefix_, " done files=", files_.size());
  return absl::StrCat(position_prefix_, " offset=", loaded_ ? offset_ : skip_to_, " files=", files_.size(), " file=",
                      files_[file_]);
}

absl::Status DocumentFileSource::RestoreOperatorState(std::string_view state) {
  // "<p> offset=O files=N file=PATH" or "<p> done files=N" (p: hl7 or fhir). N is the number
  // of this subtask's files: a directory that changed since the checkpoint
  // would shift which file is whose, and messages would be skipped or read
  // twice, so that is an error.
  auto bad = [&] {
    return absl::DataLossError(absl::StrCat("source position '", AV(state), "' is not '", position_prefix_,
                                            " offset=N files=N file=PATH' or '", position_prefix_, " done files=N'"));
  };
  auto number = [](std::string_view text, int64_t* out) {
    auto r = std::from_chars(text.data(), text.data() + text.size(), *out);
    return r.ec == std::errc() && r.ptr == text.data() + text.size() && *out >= 0;
  };
  int64_t offset = 0, count = -1;
  std::string_view name;
  const std::string done = position_prefix_ + " done files=", offset_key = position_prefix_ + " offset=";
  if (state.substr(0, done.size()) == done) {
    if (!number(state.substr(done.size()), &count)) return bad();
  } else {
    const std::string_view kOffset = offset_key;
    constexpr std::string_view kFiles = " files=", kFile = " file=";
    if (state.substr(0, kOffset.size()) != kOffset) return bad();
    const size_t files_at = state.find(kFiles);
    const size_t file_at = state.find(kFile, files_at == std::string_view::npos ? 0 : files_at + 1);
    if (files_at == std::string_view::npos || file_at == std::string_view::npos ||
        !number(state.substr(kOffset.size(), files_at - kOffset.size()), &offset) ||
        !number(state.substr(files_at + kFiles.size(), file_at - files_at - kFiles.size()), &count)) {
      return bad();
    }
    name = state.substr(file_at + kFile.size());
  }
  if (count != static_cast<int64_t>(files_.size())) {
    return absl::DataLossError(absl::StrCat(
        "the checkpoint was taken over ", count, " input files of this subtask, and ", spec_.path(), " now gives it ",
        files_.size(), ": the input directory must not change while a job reads it (or restoring at another "
        "parallelism?)"));
  }
  if (name.empty()) {
    file_ = files_.size();
    return absl::OkStatus();
  }
  auto it = std::find(files_.begin(), files_.end(), name);
  if (it == files_.end()) {
    return absl::DataLossError(absl::StrCat("the checkpoint names input file ", AV(name),
                                            ", which is not one of this subtask's files now (was it renamed?)"));
  }
  file_ = static_cast<size_t>(it - files_.begin());
  loaded_ = false;
  skip_to_ = offset;
  return absl::OkStatus();
}

absl::Status DocumentFileSource::LoadFile() {
  const std::string& path = files_[file_];
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open input file ", path));
  bytes_.assign(std::istreambuf_iterator<char>(in), {});
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  if (fhir_) {
    const std::string_view name = std::string_view(path).substr(path.rfind('/') + 1);
    lines_ = name.ends_with(".ndjson") || name.ends_with(".jsonl");
    scan_ = 0;
    scan_line_ = 1;
  } else {
    splitter_.emplace(bytes_);
  }
  loaded_ = true;
  offset_ = 0;
  return absl::OkStatus();
}

void DocumentFileSource::DeadLetter(int line, std::string_view reason, std::string_view raw) {
  ++rejected_;
  dead_letters_.Add(absl::StrCat(files_[file_], ":", line), reason, raw);
}

SourceStatus DocumentFileSource::Produce() {
  batch_.Clear();
  // The flush deadline is on the steady clock: not for a test's clock.
  size_t want = AcquirePaced(*limiter_, kMessagesPerBatch, ctx_.clock == nullptr);
  const int64_t now = ctx_.clock != nullptr ? ctx_.clock->NowMillis() : NowMillis();
  while (want > 0 && file_ < files_.size()) {
    if (batch_.full()) {
      // Unpaced, a call makes one batch. Paced, it makes the whole grant
      // (the limiter counts it as made), a batch at a time.
      if (!limiter_->paced()) break;
      EmitBatch(batch_, /*more=*/true);
      batch_.Clear();
    }
    if (!loaded_) {
      if (absl::Status s = LoadFile(); !s.ok()) {
        // The file went away or cannot be read: say so in the dead letters
        // (nothing of it was read) and go on with the next.
        DeadLetter(0, SV(s.message()), "");
        ++file_;
        skip_to_ = 0;
        continue;
      }
    }
    if (!NextPiece()) {
      loaded_ = false;
      ++file_;
      skip_to_ = 0;
      continue;
    }
    const int64_t at = piece_.text.data() - bytes_.data();
    // The position after this piece; past the end for the empty piece at
    // the end (a file without FTS), so that a restore does not repeat it.
    const int64_t next = at + std::max<int64_t>(static_cast<int64_t>(piece_.text.size()), piece_.text.empty());
    if (at < skip_to_) continue;  // read before the restored position
    offset_ = next;
    --want;
    ++messages_;
    if (!piece_.error.empty()) {
      DeadLetter(piece_.line, piece_.error, piece_.text);
      continue;
    }
    const size_t before = batch_.size();
    bool skipped = false;
    if (absl::Status s = AppendRows(now, &skipped); !s.ok()) {
      DeadLetter(piece_.line, SV(s.message()), piece_.text);
      continue;
    }
    skipped_ += skipped;
    rows_ += static_cast<int64_t>(batch_.size() - before);
  }
  EmitBatch(batch_);
  dead_letters_.Flush();
  if (file_ < files_.size()) return SourceStatus::kMoreAvailable;
  LogSummary();
  return SourceStatus::kEnd;
}

bool DocumentFileSource::NextPiece() {
  if (!fhir_) return splitter_->Next(&piece_);
  // FHIR: the whole file, or each non-blank line of an .ndjson/.jsonl file.
  piece_.error.clear();
  const std::string_view bytes = bytes_;
  while (scan_ < bytes.size()) {
    const size_t end = lines_ ? std::min(bytes.find('\n', scan_), bytes.size()) : bytes.size();
    const std::string_view text = bytes.substr(scan_, end - scan_);
    const int line = scan_line_;
    scan_line_ += static_cast<int>(std::count(text.begin(), text.end(), '\n')) + (end < bytes.size());
    scan_ = end + (end < bytes.size());
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) continue;  // blank
    piece_.text = text;
    piece_.line = line;
    return true;
  }
  return false;
}

absl::Status DocumentFileSource::AppendRows(int64_t now, bool* skipped) {
  if (fhir_) {
    RETURN_IF_ERROR(ParseJson(piece_.text, &document_, piece_.line));
    int skipped_resources = 0;
    RETURN_IF_ERROR(fhir_extractor_.Append(document_, now, &batch_, &skipped_resources));
    skipped_ += skipped_resources;
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(message_.Parse(piece_.text, piece_.line));
  return extractor_.Append(message_, now, &batch_, skipped);
}

void DocumentFileSource::LogSummary() {
  if (summarized_) return;
  summarized_ = true;
  // Counts only: messages may identify patients.
  spdlog::info("source '{}' subtask {}: {} {} pieces from {} files: {} rows, {} rejected (dead letters), {} "
               "{} of other types skipped",
               ctx_.vertex_name, ctx_.subtask_index, messages_, fhir_ ? "FHIR" : "HL7", files_.size(), rows_, rejected_,
               skipped_, fhir_ ? "resources" : "messages");
}

}  // namespace vstream
