#include "runtime/clinical/pseudonymize_function.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace vstream {

namespace {

constexpr int64_t kMinLength = 16;
constexpr int64_t kMaxLength = 2 * Sha256::kDigestSize;
constexpr int64_t kDefaultLength = 32;
constexpr size_t kMinKeyBytes = 16;
// A key file larger than this is not a key (a misnamed path, /dev/zero).
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

// Overwrites a key on its way out of scope; the volatile pointer keeps the
// compiler from dropping the stores as dead.
void WipeString(std::string& s) {
  volatile char* p = s.data();
  for (size_t i = 0; i < s.size(); ++i) p[i] = 0;
  s.clear();
}

// The key file's bytes, one trailing "\n" or "\r\n" stripped.
absl::StatusOr<std::string> ReadKeyFile(const std::string& path) {
  const std::string who = absl::StrCat("pseudonymize: key_file ", path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat(who, ": cannot read"));
  std::string key(kMaxKeyFileBytes + 1, '\0');
  const size_t n = std::fread(key.data(), 1, key.size(), f);
  const int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err != 0) {
    WipeString(key);
    return absl::ErrnoToStatus(err, absl::StrCat(who, ": cannot read"));
  }
  if (n > kMaxKeyFileBytes) {
    WipeString(key);
    return absl::FailedPreconditionError(
        absl::StrCat(who, ": longer than ", kMaxKeyFileBytes, " bytes, which is no key"));
  }
  key.resize(n);
  if (!key.empty() && key.back() == '\n') key.pop_back();
  if (!key.empty() && key.back() == '\r') key.pop_back();
  return key;
}

// See pseudonymize_function.h.
class Pseudonymize final : public KeyedProcessFunction {
 public:
  static absl::StatusOr<std::unique_ptr<KeyedProcessFunction>> Create(const ProcessParams& params) {
    // Said before CheckKnown, whose "unknown param" would not say why.
    if (params.Has("key")) {
      return ProcessParams::Error("key",
                                  "the key is never a parameter (the job spec is not secret); give key_file, a file "
                                  "on each TaskManager that holds it, or key_env, an environment variable of theirs");
    }
    RETURN_IF_ERROR(params.CheckKnown({"fields", "key_file", "key_env", "length"}));
    ASSIGN_OR_RETURN(std::string fields_text, params.GetString("fields"));
    std::vector<std::string> fields;
    for (absl::string_view f : absl::StrSplit(fields_text, ',', absl::SkipWhitespace())) {
      fields.emplace_back(f.data(), f.size());
      while (!fields.back().empty() && fields.back().front() == ' ') fields.back().erase(0, 1);
      while (!fields.back().empty() && fields.back().back() == ' ') fields.back().pop_back();
      for (size_t i = 0; i + 1 < fields.size(); ++i) {
        if (fields[i] == fields.back()) {
          return ProcessParams::Error("fields", absl::StrCat("'", fields.back(), "' is named twice"));
        }
      }
    }
    if (fields.empty()) return ProcessParams::Error("fields", "names no field; give the string fields to replace");

    const bool has_file = params.Has("key_file");
    const bool has_env = params.Has("key_env");
    if (has_file && has_env) {
      return ProcessParams::Error("key_env", "give key_file or key_env, not both");
    }
    if (!has_file && !has_env) {
      return absl::InvalidArgumentError(
          "missing the key's source: give key_file (a file on each TaskManager that holds the key) or key_env "
          "(an environment variable of theirs that holds it)");
    }
    const KeySource source = has_file ? KeySource::kFile : KeySource::kEnv;
    const char* source_param = has_file ? "key_file" : "key_env";
    ASSIGN_OR_RETURN(std::string location, params.GetString(source_param));
    if (location.empty()) return ProcessParams::Error(source_param, "must not be empty");
    if (source == KeySource::kEnv && location.find('=') != std::string::npos) {
      return ProcessParams::Error(source_param,
                                  absl::StrCat("'", location, "' is no environment variable name (it has '=')"));
    }

    ASSIGN_OR_RETURN(int64_t length, params.GetInt("length", kDefaultLength));
    if (length < kMinLength || length > kMaxLength) {
      return ProcessParams::Error("length", absl::StrCat("must be from ", kMinLength, " to ", kMaxLength,
                                                         " hex digits, got ", length));
    }
    return std::unique_ptr<KeyedProcessFunction>(
        new Pseudonymize(std::move(fields), source, std::move(location), static_cast<size_t>(length)));
  }

  absl::StatusOr<ProcessOutputSchema> OutputSchema(const ProcessInput& input) const override {
    for (const std::string& f : field_names_) {
      const int i = input.schema.IndexOf(f);
      if (i < 0) {
        return ProcessParams::Error("fields", absl::StrCat("the input has no field '", f, "'; it has ",
                                                           input.schema.DebugString()));
      }
      const FieldType type = input.schema.field(i).type;
      if (type != FieldType::kString) {
        return ProcessParams::Error(
            "fields", absl::StrCat("field '", f, "' is ", FieldTypeName(type),
                                   "; only string fields can be pseudonymized (make it one in a map first: ", f,
                                   " || ''); the input has ", input.schema.DebugString()));
      }
    }
    // No key fields declared: a pseudonymized key field no longer holds the key.
    return ProcessOutputSchema{input.schema, input.time_index};
  }

  // Reads the key here, on the TaskManager, never in the factory or
  // OutputSchema, which also run in the client.
  absl::Status Open(ProcessSetup& setup) override {
    const Schema& in = setup.input().schema;
    replace_.assign(in.size(), false);
    for (const std::string& f : field_names_) {
      const int i = in.IndexOf(f);
      if (i < 0) return absl::InvalidArgumentError(absl::StrCat("pseudonymize: the input has no field '", f, "'"));
      replace_[i] = true;
    }

    std::string key;
    if (source_ == KeySource::kEnv) {
      const char* value = std::getenv(location_.c_str());
      if (value == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat("pseudonymize: key_env ", location_, " is not set"));
      }
      key = value;
    } else {
      ASSIGN_OR_RETURN(key, ReadKeyFile(location_));
    }
    if (key.size() < kMinKeyBytes) {
      const size_t n = key.size();
      WipeString(key);
      return absl::FailedPreconditionError(
          absl::StrCat("pseudonymize: the key in ", source_ == KeySource::kEnv ? "key_env " : "key_file ",
                       location_, " is ", n, " bytes; it must have at least ", kMinKeyBytes,
                       " (use 32 random bytes)"));
    }
    mac_.emplace(key);
    WipeString(key);
    return absl::OkStatus();
  }

  absl::Status ProcessElement(const Row& in, ProcessContext& ctx) override {
    Row& out = ctx.Emit();
    for (size_t f = 0; f < replace_.size(); ++f) {
      if (!replace_[f] || in[f].is_null) {
        out[f] = in[f];  // keeps out[f].s's capacity
        continue;
      }
      DigestToHex(mac_->Mac(in[f].s), length_, hex_);
      out[f].SetString(std::string_view(hex_, length_));
    }
    return absl::OkStatus();
  }

 private:
  enum class KeySource { kFile, kEnv };

  Pseudonymize(std::vector<std::string> field_names, KeySource source, std::string location, size_t length)
      : field_names_(std::move(field_names)), source_(source), location_(std::move(location)), length_(length) {}

  const std::vector<std::string> field_names_;
  const KeySource source_;
  const std::string location_;  // the key file's path or the variable's name
  const size_t length_;         // hex digits kept
  std::vector<bool> replace_;   // per input field: pseudonymize it
  std::optional<HmacSha256Keyed> mac_;  // set by Open
  char hex_[2 * Sha256::kDigestSize] = {};  // the pseudonym being written
};

}  // namespace

void RegisterPseudonymizeFunction(ProcessFunctionRegistry& registry) {
  (void)registry.Register("pseudonymize", &Pseudonymize::Create);
}

}  // namespace vstream
