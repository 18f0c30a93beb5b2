#include "runtime/operators/hl7_source.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
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

Hl7FileSource::Hl7FileSource(OperatorCounters& counters, Schema schema, const proto::SourceSpec& spec)
    : SourceOperator(counters),
      schema_(std::move(schema)),
      spec_(spec),
      extractor_(RowsOf(spec), Hl7RowsOptions{.default_offset_minutes = spec.hl7_default_offset_minutes()}),
      batch_(schema_.size()),
      dead_letters_(counters, "source") {}

absl::Status Hl7FileSource::Open(const OperatorContext& ctx) {
  ctx_ = ctx;
  dead_letters_.Open(ctx);
  dead_letters_.set_output(dead_letter_output_);
  limiter_ = std::make_unique<RateLimiter>(spec_.max_rate());
  if (schema_.size() != extractor_.schema().size()) {
    return absl::InvalidArgumentError(absl::StrCat("source '", ctx.vertex_name, "': an hl7v2 source has the schema ",
                                                   extractor_.schema().DebugString(), ", not ",
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

std::string Hl7FileSource::SnapshotOperatorState(int64_t) {
  if (file_ >= files_.size()) return absl::StrCat("hl7 done files=", files_.size());
  return absl::StrCat("hl7 offset=", loaded_ ? offset_ : skip_to_, " files=", files_.size(), " file=",
                      files_[file_]);
}

absl::Status Hl7FileSource::RestoreOperatorState(std::string_view state) {
  // "hl7 offset=O files=N file=PATH" or "hl7 done files=N". N is the number
  // of this subtask's files: a directory that changed since the checkpoint
  // would shift which file is whose, and messages would be skipped or read
  // twice, so that is an error.
  auto bad = [&] {
    return absl::DataLossError(
        absl::StrCat("source position '", AV(state), "' is not 'hl7 offset=N files=N file=PATH' or 'hl7 done files=N'"));
  };
  auto number = [](std::string_view text, int64_t* out) {
    auto r = std::from_chars(text.data(), text.data() + text.size(), *out);
    return r.ec == std::errc() && r.ptr == text.data() + text.size() && *out >= 0;
  };
  int64_t offset = 0, count = -1;
  std::string_view name;
  if (state.substr(0, 15) == "hl7 done files=") {
    if (!number(state.substr(15), &count)) return bad();
  } else {
    constexpr std::string_view kOffset = "hl7 offset=", kFiles = " files=", kFile = " file=";
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

absl::Status Hl7FileSource::LoadFile() {
  const std::string& path = files_[file_];
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open input file ", path));
  bytes_.assign(std::istreambuf_iterator<char>(in), {});
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  splitter_.emplace(bytes_);
  loaded_ = true;
  offset_ = 0;
  return absl::OkStatus();
}

void Hl7FileSource::DeadLetter(int line, std::string_view reason, std::string_view raw) {
  ++rejected_;
  dead_letters_.Add(absl::StrCat(files_[file_], ":", line), reason, raw);
}

SourceStatus Hl7FileSource::Produce() {
  batch_.Clear();
  size_t want = limiter_->Acquire(kMessagesPerBatch);
  const int64_t now = ctx_.clock != nullptr ? ctx_.clock->NowMillis() : NowMillis();
  while (want > 0 && file_ < files_.size() && !batch_.full()) {
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
    if (!splitter_->Next(&piece_)) {
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
    if (absl::Status s = message_.Parse(piece_.text, piece_.line); !s.ok()) {
      DeadLetter(piece_.line, SV(s.message()), piece_.text);
      continue;
    }
    const size_t before = batch_.size();
    bool skipped = false;
    if (absl::Status s = extractor_.Append(message_, now, &batch_, &skipped); !s.ok()) {
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

void Hl7FileSource::LogSummary() {
  if (summarized_) return;
  summarized_ = true;
  // Counts only: messages may identify patients.
  spdlog::info("source '{}' subtask {}: {} HL7 pieces from {} files: {} rows, {} rejected (dead letters), {} "
               "messages of other types skipped",
               ctx_.vertex_name, ctx_.subtask_index, messages_, files_.size(), rows_, rejected_, skipped_);
}

}  // namespace vstream
