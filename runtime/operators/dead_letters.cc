#include "runtime/operators/dead_letters.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/dead_letter.h"
#include "spdlog/spdlog.h"

namespace vstream {

DeadLetters::DeadLetters(OperatorCounters& counters, std::string role)
    : counters_(counters), role_(std::move(role)), batch_(DeadLetterSchema().size()) {}

DeadLetters::~DeadLetters() {
  if (file_ != nullptr) std::fclose(file_);
}

void DeadLetters::Add(std::string_view location, std::string_view reason, std::string_view raw) {
  counters_.dead_letters.fetch_add(1, std::memory_order_relaxed);
  Row& row = batch_.Append();
  row[0].SetString(ctx_.vertex_name);
  row[1].SetString(location);
  row[2].SetString(reason);
  row[3].SetString(raw);
  if (batch_.full()) Flush();
}

void DeadLetters::Flush() {
  if (batch_.empty()) return;
  if (output_ != nullptr) {
    output_->Push(batch_);
    batch_.Clear();
    return;
  }
  if (file_ == nullptr) {
    auto dir = std::filesystem::path(ctx_.data_dir.empty() ? ctx_.state_dir : ctx_.data_dir) / "dead-letter" /
               ctx_.job_id;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    auto path = dir / absl::StrCat(ctx_.vertex_name, "-", ctx_.subtask_index, ".jsonl");
    file_ = std::fopen(path.c_str(), "ab");
    spdlog::warn("{} '{}' subtask {}: rejected records go to {}", role_, ctx_.vertex_name, ctx_.subtask_index,
                 path.string());
    auto writer = CreateRecordWriter("jsonl", DeadLetterSchema());
    if (writer.ok()) writer_ = std::move(*writer);
  }
  if (file_ != nullptr && writer_ != nullptr) {
    scratch_.clear();
    for (size_t i = 0; i < batch_.size(); ++i) writer_->Write(batch_[i], &scratch_);
    std::fwrite(scratch_.data(), 1, scratch_.size(), file_);
    std::fflush(file_);
  }
  batch_.Clear();
}

}  // namespace vstream
