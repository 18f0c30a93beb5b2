#include "runtime/clinical/dedup_function.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"
#include "runtime/row_codec.h"

namespace vstream {

namespace {

class Dedup final : public KeyedProcessFunction {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Create(const ProcessParams& params) {
    RETURN_IF_ERROR(params.CheckKnown({"ttl", "key"}));
    ASSIGN_OR_RETURN(int64_t ttl, params.GetDurationMs("ttl"));
    if (ttl <= 0) return ProcessParams::Error("ttl", "must be > 0");
    ASSIGN_OR_RETURN(std::string key, params.GetString("key", ""));
    std::vector<std::string> fields;
    for (absl::string_view f : absl::StrSplit(key, ',', absl::SkipWhitespace())) {
      fields.emplace_back(f.data(), f.size());
      while (!fields.back().empty() && fields.back().front() == ' ') fields.back().erase(0, 1);
      while (!fields.back().empty() && fields.back().back() == ' ') fields.back().pop_back();
    }
    return std::unique_ptr<KeyedProcessFunction>(new Dedup(ttl, std::move(fields)));
  }

  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const override {
    for (const std::string& f : key_names_) {
      if (input.schema.IndexOf(f) < 0) {
        return ProcessParams::Error("key", absl::StrCat("the input has no field '", f, "'; it has ",
                                                        input.schema.DebugString()));
      }
    }
    // A record goes out as it came in: its key fields are the key's.
    return ProcessOutputSchema{input.schema, input.time_index, input.key_fields};
  }

  absl::Status Open(ProcessSetup& setup) override {
    schema_ = setup.input().schema;
    for (const std::string& f : key_names_) key_fields_.push_back(schema_.IndexOf(f));
    MapStateDescriptor seen;
    seen.name = "seen";
    seen.ttl_ms = ttl_ms_;
    // Nearly every record's key is new: the filter answers most lookups
    // without RocksDB (state/recent_keys_filter.h).
    seen.filter_recent_keys = true;
    ASSIGN_OR_RETURN(seen_, setup.GetMapState(seen));
    return absl::OkStatus();
  }

  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    key_.clear();
    if (!key_fields_.empty()) EncodeKey(schema_, in, key_fields_, &key_);
    ASSIGN_OR_RETURN(StateLookup r, seen_->Get("", key_, &buf_));
    if (r == StateLookup::kFound) return absl::OkStatus();
    RETURN_IF_ERROR(seen_->Put("", key_, ""));
    ctx.Emit() = in;
    return absl::OkStatus();
  }

 private:
  Dedup(int64_t ttl_ms, std::vector<std::string> key_names) : ttl_ms_(ttl_ms), key_names_(std::move(key_names)) {}

  const int64_t ttl_ms_;
  const std::vector<std::string> key_names_;  // empty: the operator's key
  Schema schema_;
  std::vector<int> key_fields_;
  MapState* seen_ = nullptr;
  std::string key_;
  std::string buf_;
};

}  // namespace

void RegisterDedupFunction(ProcessFunctionRegistry& registry) { (void)registry.Register("dedup", &Dedup::Create); }

}  // namespace vstream
