#include "state/checkpoint_storage.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "common/status_macros.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

absl::Status IoError(std::string_view what, const fs::path& path, int err) {
  return absl::InternalError(absl::StrCat(AV(what), " ", path.string(), ": ", std::strerror(err)));
}

// Paths are relative to the storage's root and stay under it: restores and
// deletes take them from metadata read back from storage, and a corrupt or
// crafted one ("/etc/x", "../../x") must not reach a file elsewhere.
absl::Status CheckUnderRoot(const std::string& path) {
  const fs::path p(path);
  if (p.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint storage path '", path, "' is absolute; paths are relative to the storage's root"));
  }
  for (const fs::path& part : p) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint storage path '", path, "' has a '..': paths stay under the storage's root"));
    }
  }
  return absl::OkStatus();
}

// Writes `data` (or the contents of `from`) to a temporary file beside
// `target`, syncs it and renames it into place.
class FileCheckpointStorage : public CheckpointStorage {
 public:
  explicit FileCheckpointStorage(fs::path root) : root_(std::move(root)), uri_("file://" + root_.string()) {}

  const std::string& uri() const override { return uri_; }

  absl::Status Upload(const std::string& local_file, const std::string& path) override {
    fs::path target, tmp;
    if (absl::Status s = Prepare(path, &target, &tmp); !s.ok()) return s;
    std::error_code ec;
    fs::copy_file(local_file, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot copy ", local_file, " to ", tmp.string(), ": ", ec.message()));
    const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoError("cannot open", tmp, errno);
    return SyncAndRename(fd, tmp, target);
  }

  absl::Status Download(const std::string& path, const std::string& local_file) override {
    ASSIGN_OR_RETURN(const fs::path from, Resolve(path));
    std::error_code ec;
    fs::copy_file(from, local_file, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return ec == std::errc::no_such_file_or_directory
                 ? absl::NotFoundError(absl::StrCat("no ", from.string(), " in checkpoint storage"))
                 : absl::InternalError(absl::StrCat("cannot copy ", from.string(), ": ", ec.message()));
    }
    return absl::OkStatus();
  }

  absl::Status Write(const std::string& path, std::string_view data) override {
    fs::path target, tmp;
    if (absl::Status s = Prepare(path, &target, &tmp); !s.ok()) return s;
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("cannot create", tmp, errno);
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return IoError("cannot write", tmp, err);
      }
      done += static_cast<size_t>(n);
    }
    return SyncAndRename(fd, tmp, target);
  }

  absl::StatusOr<std::string> Read(const std::string& path) override {
    ASSIGN_OR_RETURN(const fs::path from, Resolve(path));
    std::ifstream in(from, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("no ", from.string(), " in checkpoint storage"));
    std::ostringstream buf;
    buf << in.rdbuf();
    return buf.str();
  }

  absl::Status Exists(const std::string& path) override {
    ASSIGN_OR_RETURN(const fs::path target, Resolve(path));
    std::error_code ec;
    if (fs::exists(target, ec)) return absl::OkStatus();
    return absl::NotFoundError(absl::StrCat("no ", target.string(), " in checkpoint storage"));
  }

  absl::Status Delete(const std::string& path) override {
    // Everything, checkpoints and shared files alike, is under the root.
    if (path.empty()) return absl::InvalidArgumentError("refusing to delete the root of checkpoint storage");
    ASSIGN_OR_RETURN(const fs::path target, Resolve(path));
    std::error_code ec;
    fs::remove_all(target, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot delete ", target.string(), ": ", ec.message()));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> List(const std::string& dir) override {
    ASSIGN_OR_RETURN(const fs::path from, Resolve(dir));
    std::vector<std::string> names;
    std::error_code ec;
    fs::directory_iterator it(from, ec);
    if (ec) {
      if (ec == std::errc::no_such_file_or_directory) return names;
      return absl::InternalError(absl::StrCat("cannot list ", from.string(), ": ", ec.message()));
    }
    for (const auto& entry : it) {
      const std::string name = entry.path().filename().string();
      if (name.find(".tmp-") == std::string::npos) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  // The file or directory `path` names under the root (empty: the root).
  absl::StatusOr<fs::path> Resolve(const std::string& path) const {
    RETURN_IF_ERROR(CheckUnderRoot(path));
    return path.empty() ? root_ : root_ / path;
  }

  // The target of `path`, its directory created, and a temporary name beside it.
  absl::Status Prepare(const std::string& path, fs::path* target, fs::path* tmp) {
    ASSIGN_OR_RETURN(*target, Resolve(path));
    std::error_code ec;
    fs::create_directories(target->parent_path(), ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", target->parent_path().string(), ": ", ec.message()));
    *tmp = target->string() + absl::StrCat(".tmp-", ::getpid(), "-", counter_.fetch_add(1));
    return absl::OkStatus();
  }

  // Makes the temporary file durable, then gives it its name (closes fd).
  static absl::Status SyncAndRename(int fd, const fs::path& tmp, const fs::path& target) {
    if (::fsync(fd) != 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return IoError("cannot sync", tmp, err);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      return IoError("cannot rename into", target, err);
    }
    // The rename is durable once the directory is.
    const int dir_fd = ::open(target.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
    return absl::OkStatus();
  }

  const fs::path root_;
  const std::string uri_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace

std::string CheckpointStorage::LocalPath(std::string_view uri) {
  if (uri.substr(0, 7) == "file://") uri.remove_prefix(7);
  if (uri.empty() || uri.front() != '/') return std::string();
  return std::string(uri);
}

absl::StatusOr<std::unique_ptr<CheckpointStorage>> CheckpointStorage::Open(std::string_view uri) {
  std::string_view path = uri;
  if (path.substr(0, 7) == "file://") path.remove_prefix(7);
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint storage '", AV(uri), "': expected file:///ABSOLUTE/DIR or an absolute path"));
  }
  std::error_code ec;
  fs::create_directories(fs::path(path), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create checkpoint storage ", AV(path), ": ", ec.message()));
  return std::unique_ptr<CheckpointStorage>(new FileCheckpointStorage(fs::path(path)));
}

}  // namespace vstream
