#include "jobmanager/completed_checkpoint_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace vstream {
namespace {

namespace fs = std::filesystem;

absl::Status IoError(const char* what, const std::string& path, int err) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

}  // namespace

CompletedCheckpointStore::CompletedCheckpointStore(std::string path) : path_(std::move(path)) {}

absl::StatusOr<proto::CompletedCheckpointList> CompletedCheckpointStore::Load() const {
  proto::CompletedCheckpointList list;
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path_, ec)) return list;
    return absl::InternalError(absl::StrCat("cannot read ", path_));
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!list.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("cannot parse the completed checkpoints in ", path_));
  }
  return list;
}

absl::Status CompletedCheckpointStore::Store(const proto::CompletedCheckpointList& checkpoints) {
  const fs::path target(path_);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", target.parent_path().string(), ": ", ec.message()));
  const std::string tmp = path_ + ".tmp";
  const std::string bytes = checkpoints.SerializeAsString();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot create", tmp, errno);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return IoError("cannot write", tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return IoError("cannot sync", tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot rename into", path_, err);
  }
  // The rename is durable once the directory is.
  const std::string dir = target.parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

}  // namespace vstream
