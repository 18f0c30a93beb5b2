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
  if (file_ >= files_.size()) return "hl7 done";
  return absl::StrCat("hl7 offset=", loaded_ ? offset_ : skip_to_, " file=", files_[file_]);
}

absl::Status Hl7FileSource::RestoreOperatorState(std::string_view state) {
  if (state == "hl7 done") {
    file_ = files_.size();
    return absl::OkStatus();
  }
  constexpr std::string_view kPrefix = "hl7 offset=";
  const size_t file_at = state.find(" file=");
  int64_t offset = -1;
  if (state.substr(0, kPrefix.size()) == kPrefix && file_at != std::string_view::npos) {
    const char* begin = state.data() + kPrefix.size();
    const char* end = state.data() + file_at;
    auto r = std::from_chars(begin, end, offset);
    if (r.ec != std::errc() || r.ptr != end) offset = -1;
  }
  if (offset < 0) {
    return absl::DataLossError(absl::StrCat("source position '", AV(state), "' is not 'hl7 offset=N file=PATH'"));
  }
  const std::string_view name = state.substr(file_at + 6);
  auto it = std::find(files_.begin(), files_.end(), name);
  if (it == files_.end()) {
    return absl::DataLossError(absl::StrCat("source position names ", AV(name),
                                            ", which is not one of this subtask's files (restoring at another "
                                            "parallelism, or was it removed?)"));
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
    const int64_t next = at + static_cast<int64_t>(piece_.text.size());
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
