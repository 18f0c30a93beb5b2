#include "runtime/operators/sinks.h"

#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace vstream {

namespace {
constexpr size_t kFlushBytes = 1 << 20;
std::mutex stdout_mu;  // one line-coherent stdout per process
}  // namespace

FileSink::FileSink(OperatorCounters& counters, Schema schema, std::string dir, std::string format)
    : StreamOperator(counters), schema_(std::move(schema)), dir_(std::move(dir)), format_(std::move(format)) {}

FileSink::~FileSink() {
  if (file_) std::fclose(file_);  // left in progress: the job did not finish
}

absl::Status FileSink::Open(const OperatorContext& ctx) {
  auto writer = CreateRecordWriter(format_, schema_);
  if (!writer.ok()) return writer.status();
  writer_ = std::move(*writer);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create sink directory ", dir_, ": ", ec.message()));
  const std::string name = absl::StrCat("part-", ctx.subtask_index, ".", format_);
  final_path_ = (std::filesystem::path(dir_) / name).string();
  in_progress_path_ = (std::filesystem::path(dir_) / absl::StrCat(".", name, ".inprogress")).string();
  file_ = std::fopen(in_progress_path_.c_str(), "wb");
  if (!file_) return absl::InternalError(absl::StrCat("cannot open ", in_progress_path_));
  buffer_ = writer_->Header();
  return absl::OkStatus();
}

void FileSink::FlushBuffer() {
  if (buffer_.empty() || !status_.ok()) return;
  if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) {
    status_ = absl::InternalError(absl::StrCat("write to ", in_progress_path_, " failed"));
  }
  buffer_.clear();
}

void FileSink::Push(RowBatch& batch) {
  CountIn(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) writer_->Write(batch[i], &buffer_);
  if (buffer_.size() >= kFlushBytes) FlushBuffer();
}

void FileSink::Finish() {
  FlushBuffer();
  if (!file_) return;
  if (std::fclose(file_) != 0 && status_.ok()) status_ = absl::InternalError("close failed");
  file_ = nullptr;
  if (!status_.ok()) return;
  std::error_code ec;
  std::filesystem::rename(in_progress_path_, final_path_, ec);
  if (ec) status_ = absl::InternalError(absl::StrCat("cannot publish ", final_path_, ": ", ec.message()));
}

StdoutSink::StdoutSink(OperatorCounters& counters, Schema schema, std::string format)
    : StreamOperator(counters), schema_(std::move(schema)), format_(std::move(format)) {}

absl::Status StdoutSink::Open(const OperatorContext&) {
  auto writer = CreateRecordWriter(format_, schema_);
  if (!writer.ok()) return writer.status();
  writer_ = std::move(*writer);
  return absl::OkStatus();
}

void StdoutSink::Push(RowBatch& batch) {
  CountIn(batch.size());
  buffer_.clear();
  for (size_t i = 0; i < batch.size(); ++i) writer_->Write(batch[i], &buffer_);
  std::lock_guard<std::mutex> lock(stdout_mu);
  std::fwrite(buffer_.data(), 1, buffer_.size(), stdout);
}

void StdoutSink::Finish() {
  std::lock_guard<std::mutex> lock(stdout_mu);
  std::fflush(stdout);
}

}  // namespace vstream
