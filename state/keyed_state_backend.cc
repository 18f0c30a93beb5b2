#include "state/keyed_state_backend.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/cache.h"

namespace vstream {

namespace {

absl::Status ToStatus(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat(AV(what), ": ", s.ToString()));
  return absl::InternalError(absl::StrCat(AV(what), ": ", s.ToString()));
}

rocksdb::ColumnFamilyOptions CfOptions(const KeyedStateBackendOptions& o) {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = o.write_buffer_bytes;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(o.block_cache_bytes);
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KeyedStateBackend>> KeyedStateBackend::Open(
    const KeyedStateBackendOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("state backend path is empty");
  std::error_code ec;
  if (options.wipe_on_open) std::filesystem::remove_all(options.path, ec);
  std::filesystem::create_directories(options.path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", options.path, ": ", ec.message()));
  rocksdb::Options db_options(rocksdb::DBOptions(), CfOptions(options));
  db_options.create_if_missing = true;
  db_options.max_open_files = 256;
  // The WAL is redundant with checkpoints (a restore rebuilds from a snapshot).
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, &db);
  if (!s.ok()) return ToStatus(s, absl::StrCat("open RocksDB at ", options.path));
  return std::unique_ptr<KeyedStateBackend>(new KeyedStateBackend(options, db));
}

KeyedStateBackend::KeyedStateBackend(KeyedStateBackendOptions options, rocksdb::DB* db)
    : options_(std::move(options)), db_(db) {}

KeyedStateBackend::~KeyedStateBackend() {
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  delete db_;
}

absl::StatusOr<StateId> KeyedStateBackend::RegisterState(const std::string& name) {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return static_cast<StateId>(i);
  }
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  rocksdb::Status s = db_->CreateColumnFamily(CfOptions(options_), name, &handle);
  if (!s.ok()) return ToStatus(s, absl::StrCat("create state '", name, "'"));
  handles_.push_back(handle);
  names_.push_back(name);
  return static_cast<StateId>(handles_.size() - 1);
}

void KeyedStateBackend::ComposeKey(int key_group, std::string_view key) {
  key_buf_.clear();
  key_buf_.push_back(static_cast<char>((key_group >> 8) & 0xff));
  key_buf_.push_back(static_cast<char>(key_group & 0xff));
  key_buf_.append(key.data(), key.size());
}

absl::Status KeyedStateBackend::Get(StateId state, int key_group, std::string_view key,
                                    std::string* value) {
  ComposeKey(key_group, key);
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[state], key_buf_, value);
  if (s.IsNotFound()) return absl::NotFoundError("no value");
  return ToStatus(s, "state get");
}

absl::Status KeyedStateBackend::Put(StateId state, int key_group, std::string_view key,
                                    std::string_view value) {
  ComposeKey(key_group, key);
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return ToStatus(db_->Put(wo, handles_[state], key_buf_, rocksdb::Slice(value.data(), value.size())),
                  "state put");
}

absl::Status KeyedStateBackend::Delete(StateId state, int key_group, std::string_view key) {
  ComposeKey(key_group, key);
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return ToStatus(db_->Delete(wo, handles_[state], key_buf_), "state delete");
}

}  // namespace vstream
