#include "state/list_state.h"

#include "absl/strings/str_cat.h"
#include "state/state_value_format.h"

namespace vstream {

absl::Status ListState::Add(std::string_view ns, std::string_view value) {
  ComposeKey(ns);
  write_buf_.clear();
  AppendListElement(value, behavior_->timed(), NowIfTimed(), &write_buf_);
  return MergeStored(rocksdb::Slice(write_buf_));
}

absl::Status ListState::Update(std::string_view ns, const std::vector<std::string>& values) {
  ComposeKey(ns);
  if (values.empty()) return DeleteStored();
  const int64_t now = NowIfTimed();
  write_buf_.clear();
  for (const std::string& v : values) AppendListElement(v, behavior_->timed(), now, &write_buf_);
  return PutStored(rocksdb::Slice(write_buf_));
}

absl::Status ListState::ForEach(std::string_view ns,
                                const std::function<void(std::string_view)>& fn) {
  ComposeKey(ns);
  const int64_t now = NowIfTimed();
  read_buf_.Reset();
  rocksdb::Status s = ctx_.db->Get(ctx_.read_options, cf_, rocks_key(), &read_buf_);
  if (s.IsNotFound()) return absl::OkStatus();
  if (!s.ok()) return FromRocksStatus(s, absl::StrCat("read list state '", name_, "'"));
  ListElementReader reader(std::string_view(read_buf_.data(), read_buf_.size()),
                           behavior_->timed());
  std::string_view element;
  int64_t write_ms = 0;
  while (reader.Next(&element, &write_ms)) {
    if (!Expired(write_ms, now)) fn(element);
  }
  if (!reader.ok()) return absl::DataLossError(absl::StrCat("list state '", name_, "' is malformed"));
  return absl::OkStatus();
}

absl::StatusOr<StateLookup> ListState::Get(std::string_view ns, std::vector<std::string>* values) {
  size_t n = 0;
  absl::Status s = ForEach(ns, [&](std::string_view element) {
    if (n == values->size()) values->emplace_back();
    (*values)[n++].assign(element.data(), element.size());
  });
  if (!s.ok()) return s;
  values->resize(n);
  return n == 0 ? StateLookup::kAbsent : StateLookup::kFound;
}

absl::Status ListState::Clear(std::string_view ns) {
  ComposeKey(ns);
  return DeleteStored();
}

}  // namespace vstream
