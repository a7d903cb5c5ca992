// Checked file input and output: every file the program writes goes through here, so a full disk, a missing
// permission or a target that is not a regular file is an error that names the file and the OS reason, never a
// "successful" run with empty files. Targets are checked before any work (TargetError: bad input, exit 2); a write
// that fails during the run throws WriteError (exit 1) and leaves nothing half-written.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace dyn {

// An input or output path that cannot work; the message names the flag or key (`what`), the path, why, and what is
// allowed.
struct TargetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A write that failed while the program ran; the message names the file and the OS reason.
struct WriteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file the program will replace at the end (--out): it may not exist yet, but if it does it must be a regular
// file (not a directory, device, FIFO, socket or symlink); its folder must exist and be writable.
void check_output_file(const std::string& path, const std::string& what);
// A folder that will hold new files (run.out_dir): an existing writable directory, else created here (so a folder
// that cannot be created is refused before any work).
void prepare_output_folder(const std::string& path, const std::string& what);
// A file the program reads (--config, a checkpoint): an existing regular file (a symlink to one is fine) it can read.
void check_input_file(const std::string& path, const std::string& what);

// Writes `bytes` to `path` atomically: a temporary file beside it, written whole, fsync'd, renamed over `path`, the
// folder fsync'd. On failure the temporary file is removed, `path` keeps what it held, and WriteError is thrown.
void write_file_atomically(const std::string& path, std::string_view bytes);

// Reads a whole file; TargetError when it cannot.
std::string read_file(const std::string& path, const std::string& what);

// An append-only text file written in whole lines (metrics): each line is one write(2), checked; a failed or short
// write is cut back to the last whole line and throws WriteError.
class LineFile {
 public:
  LineFile() = default;
  // Opens `path` for appending (created if absent); with `keep_bytes` ≥ 0 the file is first cut to that length (a
  // resumed run drops the lines written after its checkpoint).
  explicit LineFile(const std::string& path, int64_t keep_bytes = -1);
  ~LineFile();
  LineFile(const LineFile&) = delete;
  LineFile& operator=(const LineFile&) = delete;
  LineFile(LineFile&& o) noexcept;
  LineFile& operator=(LineFile&& o) noexcept;
  void line(std::string_view text);  // text + '\n'
  void sync();                       // fsync (at checkpoints)
  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

}  // namespace dyn
