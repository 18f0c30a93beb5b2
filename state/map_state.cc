#include "state/map_state.h"

#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/write_batch.h"
#include "state/state_key.h"
#include "state/state_value_format.h"

namespace vstream {

namespace {

std::string_view View(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// Logs the deletes of a written batch (Clear's).
class LogDeletes final : public rocksdb::WriteBatch::Handler {
 public:
  LogDeletes(StateLog& log, std::string_view cf) : log_(log), cf_(cf) {}
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice& key) override {
    log_.AddDelete(cf_, View(key));
    return rocksdb::Status::OK();
  }

 private:
  StateLog& log_;
  std::string_view cf_;
};

}  // namespace

MapState::~MapState() = default;

void MapState::ReleaseScan() { scan_.reset(); }

void MapState::ComposeEntryKey(std::string_view ns, std::string_view user_key) {
  ComposeKey(ns);
  key_.append(user_key.data(), user_key.size());
}

absl::Status MapState::FilterRecentKeys(bool restored, size_t max_bytes) {
  if (recent_keys_ != nullptr) return absl::OkStatus();
  auto filter = std::make_unique<RecentKeysFilter>(name_, behavior_->ttl_ms, max_bytes);
  if (restored) {
    rocksdb::ReadOptions ro = ctx_.read_options;
    ro.total_order_seek = true;  // every key (the prefix filter is per key)
    std::unique_ptr<rocksdb::Iterator> it(ctx_.db->NewIterator(ro, cf_));
    const int64_t now = NowIfTimed();
    for (it->SeekToFirst(); it->Valid() && filter->on(); it->Next()) {
      std::string_view value(it->value().data(), it->value().size());
      int64_t write_ms = 0;
      if (!SplitTimedValue(value, &write_ms, &value)) {
        return absl::DataLossError(absl::StrCat("map state '", name_, "': value shorter than its TTL header"));
      }
      if (Expired(write_ms, now)) continue;
      filter->Add(HashKeyBytes(std::string_view(it->key().data(), it->key().size())), write_ms, now);
    }
    if (!it->status().ok()) return FromRocksStatus(it->status(), absl::StrCat("scan map state '", name_, "'"));
  }
  recent_keys_ = std::move(filter);
  return absl::OkStatus();
}

absl::Status MapState::WriteHeldPuts() {
  if (held_.Count() == 0) return absl::OkStatus();
  const rocksdb::Status s = ctx_.db->Write(ctx_.write_options, &held_);
  // Kept on a failure: Puts that returned OK are not lost, a later call
  // writes them again (all Puts: again is harmless), and a snapshot fails
  // until one does.
  if (!s.ok()) return FromRocksStatus(s, absl::StrCat("write state '", name_, "'"));
  held_.Clear();
  return absl::OkStatus();
}

absl::Status MapState::Put(std::string_view ns, std::string_view user_key, std::string_view value) {
  ComposeEntryKey(ns, user_key);
  const int64_t now = NowIfTimed();
  if (recent_keys_ == nullptr) return PutStored(StoredForm(value, now));
  recent_keys_->Add(EntryHash(), now, now);
  const rocksdb::Slice stored = StoredForm(value, now);
  const rocksdb::Status s = held_.Put(cf_, rocks_key(), stored);
  if (!s.ok()) return FromRocksStatus(s, absl::StrCat("write state '", name_, "'"));
  if (log_ != nullptr) log_->AddPut(name_, View(rocks_key()), View(stored));
  return held_.Count() >= kMaxHeldPuts ? WriteHeldPuts() : absl::OkStatus();
}

absl::StatusOr<StateLookup> MapState::Get(std::string_view ns, std::string_view user_key,
                                          std::string* value) {
  ComposeEntryKey(ns, user_key);
  const int64_t now = NowIfTimed();
  if (recent_keys_ != nullptr && !recent_keys_->MayContain(EntryHash(), now)) {
    ++filtered_reads_;
    return StateLookup::kAbsent;
  }
  RETURN_IF_ERROR(WriteHeldPuts());
  std::string_view payload;
  absl::StatusOr<StateLookup> r = ReadPayload(now, &payload);
  if (r.ok() && *r == StateLookup::kFound) value->assign(payload.data(), payload.size());
  return r;
}

absl::Status MapState::Remove(std::string_view ns, std::string_view user_key) {
  RETURN_IF_ERROR(WriteHeldPuts());  // a held Put of the entry goes first
  ComposeEntryKey(ns, user_key);
  RETURN_IF_ERROR(DeleteStored());
  if (log_ != nullptr) log_->AddDelete(name_, View(rocks_key()));
  return absl::OkStatus();
}

absl::Status MapState::Scan(std::string_view ns,
                            const std::function<bool(std::string_view user_key, std::string_view value)>& fn) {
  return ForEachInRange(ns, std::string_view(), std::string_view(), fn);
}

absl::Status MapState::ForEachInRange(
    std::string_view ns, std::string_view from, std::string_view to,
    absl::FunctionRef<bool(std::string_view user_key, std::string_view value)> fn) {
  RETURN_IF_ERROR(WriteHeldPuts());
  ComposeKey(ns);
  const size_t prefix_size = key_.size() - 2;  // rocks_key() leaves out the state id
  // fn may use this MapState (a process function's ForEach may Get, or
  // scan again): key_ is only the seek target, and the prefix and bound
  // the loop checks are copies, the members' for the outermost scan (no
  // allocation once grown), a nested scan's own.
  const bool outer = !scanning_;
  std::string nested_prefix, nested_upper;
  std::string& prefix_bytes = outer ? scan_prefix_ : nested_prefix;
  std::string& upper_bytes = outer ? upper_bound_ : nested_upper;
  prefix_bytes.assign(key_.data() + 2, prefix_size);
  // No iterate_upper_bound (the kept iterator serves every range): the end
  // of the prefix ends one key's entries (the prefix filter applies), and
  // prefix + `to` is checked below.
  const bool bounded = !to.empty();
  if (bounded) {
    upper_bytes.assign(prefix_bytes);
    upper_bytes.append(to.data(), to.size());
  }
  key_.append(from.data(), from.size());
  const rocksdb::Slice prefix(prefix_bytes);
  const rocksdb::Slice upper(upper_bytes);
  auto new_iterator = [&] {
    rocksdb::ReadOptions ro = ctx_.read_options;
    ro.prefix_same_as_start = true;
    return ctx_.db->NewIterator(ro, cf_);
  };
  // A nested scan gets an iterator of its own: the kept one is the outer
  // scan's.
  std::unique_ptr<rocksdb::Iterator> nested;
  if (outer) {
    if (scan_ != nullptr && !scan_->Refresh().ok()) scan_.reset();
    if (scan_ == nullptr) scan_.reset(new_iterator());
  } else {
    nested.reset(new_iterator());
  }
  rocksdb::Iterator* it = outer ? scan_.get() : nested.get();
  scanning_ = true;
  absl::Cleanup done = [&] {
    if (outer) scanning_ = false;
  };
  const int64_t now = NowIfTimed();
  for (it->Seek(rocks_key()); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (bounded && it->key().compare(upper) >= 0) break;
    std::string_view value(it->value().data(), it->value().size());
    if (behavior_->timed()) {
      int64_t write_ms = 0;
      if (!SplitTimedValue(value, &write_ms, &value)) {
        return absl::DataLossError(absl::StrCat("map state '", name_, "': value shorter than its TTL header"));
      }
      if (Expired(write_ms, now)) continue;
    }
    const rocksdb::Slice raw_key = it->key();
    if (!fn(std::string_view(raw_key.data() + prefix_size, raw_key.size() - prefix_size), value)) break;
  }
  if (!it->status().ok()) {
    absl::Status s = FromRocksStatus(it->status(), absl::StrCat("scan map state '", name_, "'"));
    if (outer) scan_.reset();  // the next scan starts afresh
    return s;
  }
  return absl::OkStatus();
}

absl::Status MapState::ForEach(
    std::string_view ns,
    const std::function<void(std::string_view user_key, std::string_view value)>& fn) {
  return Scan(ns, [&](std::string_view user_key, std::string_view value) {
    fn(user_key, value);
    return true;
  });
}

absl::StatusOr<bool> MapState::IsEmpty(std::string_view ns) {
  bool empty = true;
  absl::Status s = Scan(ns, [&](std::string_view, std::string_view) {
    empty = false;
    return false;
  });
  if (!s.ok()) return s;
  return empty;
}

absl::Status MapState::Clear(std::string_view ns) {
  RETURN_IF_ERROR(WriteHeldPuts());
  rocksdb::WriteBatch batch;
  // Expired entries go too: Scan skips them, so delete by raw range instead.
  ComposeKey(ns);
  const rocksdb::Slice prefix = rocks_key();
  rocksdb::ReadOptions ro = ctx_.read_options;
  ro.prefix_same_as_start = true;  // one key's entries: the prefix filter applies
  std::unique_ptr<rocksdb::Iterator> it(ctx_.db->NewIterator(ro, cf_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    batch.Delete(cf_, it->key());
  }
  if (!it->status().ok()) return FromRocksStatus(it->status(), absl::StrCat("scan map state '", name_, "'"));
  it.reset();
  if (batch.Count() == 0) return absl::OkStatus();
  RETURN_IF_ERROR(FromRocksStatus(ctx_.db->Write(ctx_.write_options, &batch),
                                  absl::StrCat("clear map state '", name_, "'")));
  if (log_ != nullptr) {
    LogDeletes logged(*log_, name_);
    RETURN_IF_ERROR(FromRocksStatus(batch.Iterate(&logged), absl::StrCat("log clearing map state '", name_, "'")));
  }
  return absl::OkStatus();
}

}  // namespace vstream
