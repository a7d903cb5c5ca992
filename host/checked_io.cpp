// Checked file input and output (POSIX): target checks, atomic replacement, whole-line appends.
#include "host/checked_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace dyn {

namespace {

namespace fs = std::filesystem;

std::string os_reason(int err) { return std::strerror(err); }

// What a non-regular file is, for the messages.
std::string kind_of(const struct stat& st) {
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  return "not a regular file";
}

std::string folder_of(const std::string& path) {
  const fs::path p = fs::path(path).parent_path();
  return p.empty() ? std::string(".") : p.string();
}

void check_writable_folder(const std::string& folder, const std::string& what, const std::string& path) {
  struct stat st {};
  if (stat(folder.c_str(), &st) != 0)
    throw TargetError(what + " '" + path + "': folder '" + folder + "' does not exist (" + os_reason(errno) +
                      "); allowed: a path in an existing, writable folder");
  if (!S_ISDIR(st.st_mode))
    throw TargetError(what + " '" + path + "': '" + folder + "' is " + kind_of(st) +
                      ", not a folder; allowed: a path in an existing, writable folder");
  if (access(folder.c_str(), W_OK | X_OK) != 0)
    throw TargetError(what + " '" + path + "': folder '" + folder + "' is not writable (" + os_reason(errno) +
                      "); allowed: a path in an existing, writable folder");
}

// write(2) all of `bytes`, retrying on EINTR and short writes; returns 0 or the errno.
int write_all(int fd, const char* bytes, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, bytes, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    bytes += w;
    n -= size_t(w);
  }
  return 0;
}

}  // namespace

void check_output_file(const std::string& path, const std::string& what) {
  if (path.empty()) throw TargetError(what + ": empty path; allowed: a file path in an existing, writable folder");
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw TargetError(what + " '" + path + "' is " + kind_of(st) +
                      "; allowed: a regular file (replaced) or a new file in an existing, writable folder");
  check_writable_folder(folder_of(path), what, path);
}

void prepare_output_folder(const std::string& path, const std::string& what) {
  if (path.empty()) throw TargetError(what + ": empty path; allowed: a writable folder, or one that can be created");
  std::error_code made;
  fs::create_directories(path, made);
  struct stat st {};
  if (made || stat(path.c_str(), &st) != 0)
    throw TargetError(what + " '" + path + "': cannot create it (" + (made ? made.message() : os_reason(errno)) +
                      "); allowed: a writable folder, or one that can be created");
  if (!S_ISDIR(st.st_mode))
    throw TargetError(what + " '" + path + "' is " + kind_of(st) + "; allowed: a writable folder");
  if (access(path.c_str(), W_OK | X_OK) != 0)
    throw TargetError(what + " '" + path + "' is not writable (" + os_reason(errno) + "); allowed: a writable folder");
}

void check_input_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw TargetError(what + " '" + path + "': cannot open (" + os_reason(errno) + "); allowed: a readable file");
  if (!S_ISREG(st.st_mode))
    throw TargetError(what + " '" + path + "' is " + kind_of(st) + "; allowed: a readable regular file");
  if (access(path.c_str(), R_OK) != 0)
    throw TargetError(what + " '" + path + "': cannot read (" + os_reason(errno) + "); allowed: a readable file");
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  const std::string folder = folder_of(path);
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = mkstemp(tmp.data());
  if (fd < 0) throw WriteError("cannot create a temporary file beside '" + path + "': " + os_reason(errno));
  int err = write_all(fd, bytes.data(), bytes.size());
  if (!err && fsync(fd) != 0) err = errno;
  if (!err && fchmod(fd, 0644) != 0) err = errno;
  if (close(fd) != 0 && !err) err = errno;
  if (!err && rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err) {
    unlink(tmp.c_str());
    throw WriteError("cannot write '" + path + "': " + os_reason(err) + " (its previous content is kept)");
  }
  const int dir = open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {  // the rename itself made durable; a folder that cannot be opened for fsync is not an error
    fsync(dir);
    close(dir);
  }
}

std::string read_file(const std::string& path, const std::string& what) {
  check_input_file(path, what);
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) throw TargetError(what + " '" + path + "': cannot open (" + os_reason(errno) + ")");
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      close(fd);
      throw TargetError(what + " '" + path + "': cannot read (" + os_reason(err) + ")");
    }
    if (r == 0) break;
    out.append(buf, size_t(r));
  }
  close(fd);
  return out;
}

LineFile::LineFile(const std::string& path, int64_t keep_bytes) : path_(path) {
  fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw WriteError("cannot open '" + path + "' for writing: " + os_reason(errno));
  struct stat st {};
  if (fstat(fd_, &st) != 0) throw WriteError("cannot stat '" + path + "': " + os_reason(errno));
  size_ = int64_t(st.st_size);
  if (keep_bytes >= 0 && keep_bytes != size_) {
    if (keep_bytes > size_)
      throw WriteError("'" + path + "' holds " + std::to_string(size_) + " bytes, fewer than the " +
                       std::to_string(keep_bytes) + " its checkpoint recorded");
    if (ftruncate(fd_, keep_bytes) != 0) throw WriteError("cannot cut '" + path + "': " + os_reason(errno));
    size_ = keep_bytes;
  }
}

LineFile::~LineFile() {
  if (fd_ >= 0) close(fd_);
}

LineFile::LineFile(LineFile&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_), size_(o.size_) { o.fd_ = -1; }

LineFile& LineFile::operator=(LineFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    size_ = o.size_;
    o.fd_ = -1;
  }
  return *this;
}

void LineFile::line(std::string_view text) {
  std::string whole(text);
  whole += '\n';
  const int err = write_all(fd_, whole.data(), whole.size());
  if (err) {
    (void)!ftruncate(fd_, size_);  // back to the last whole line
    throw WriteError("cannot write '" + path_ + "': " + os_reason(err));
  }
  size_ += int64_t(whole.size());
}

void LineFile::sync() {
  if (fsync(fd_) != 0) throw WriteError("cannot write '" + path_ + "' to disk: " + os_reason(errno));
}

}  // namespace dyn
