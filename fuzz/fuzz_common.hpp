// fuzz/fuzz_common.hpp: helpers shared by the fuzz targets (checks, byte splitting, temp files).
// Every target is a pure function of its input: no sockets, no event loop, no global state that
// survives an input except a per-process scratch directory.
#pragma once
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

// A violated invariant aborts: libFuzzer reports it as a crash and saves the input, the replay
// test fails.
#define FUZZ_CHECK(cond, what)                                                              \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "FUZZ CHECK FAILED %s:%d: %s\n  %s\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                              \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace fuzz {

// Printable rendering of bytes for check messages.
inline std::string esc(std::string_view s, size_t max = 200) {
  std::string r;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      r += "\\r";
    } else if (c == '\n') {
      r += "\\n";
    } else if (c < 0x20 || c >= 0x7F || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      r += buf;
    } else {
      r += static_cast<char>(c);
    }
  }
  if (s.size() > max) r += "...";
  return r;
}

// Consumes bytes from the front of the fuzzer input (control bytes), the rest is payload.
class Bytes {
 public:
  Bytes(const uint8_t *data, size_t size) : p_(data), n_(size) {}
  uint8_t take() {  // 0 when exhausted
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  std::string_view rest() const { return {reinterpret_cast<const char *>(p_), n_}; }

 private:
  const uint8_t *p_;
  size_t n_;
};

// Per-process scratch directory: created on first use, removed with its contents at exit.
// On tmpfs (/dev/shm) when there is one: rewriting a file in place on ext4 costs a writeback per
// input (auto_da_alloc), which made the config targets ~10x slower. FUZZ_TMPDIR overrides.
inline const std::string &scratch_dir() {
  static const std::string dir = [] {
    std::string base;
    if (const char *t = std::getenv("FUZZ_TMPDIR"); t != nullptr && *t != '\0') {
      base = t;
    } else if (::access("/dev/shm", W_OK | X_OK) == 0) {
      base = "/dev/shm";
    } else if (const char *t2 = std::getenv("TMPDIR"); t2 != nullptr && *t2 != '\0') {
      base = t2;
    } else {
      base = "/tmp";
    }
    // Directories left by processes that died without running atexit (libFuzzer's _Exit on a
    // crash or timeout, -merge children) are named after their pid: remove the ones whose
    // process is gone.
    std::error_code ec;
    for (const auto &e : std::filesystem::directory_iterator(base, ec)) {
      const std::string name = e.path().filename().string();
      long pid = 0;
      if (std::sscanf(name.c_str(), "uvs-fuzz-%ld-", &pid) == 1 && pid > 0 &&
          ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        std::error_code ignored;
        std::filesystem::remove_all(e.path(), ignored);
      }
    }
    std::string tmpl = base + "/uvs-fuzz-" + std::to_string(::getpid()) + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    return tmpl;
  }();
  static const bool cleanup_registered = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return true;
  }();
  (void)cleanup_registered;
  return dir;
}

// Replaces the file (a new inode, not a truncate-and-rewrite).
inline void write_file(const std::string &path, std::string_view data) {
  ::unlink(path.c_str());
  FILE *f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::perror(path.c_str());
    std::abort();
  }
  if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size()) std::abort();
  std::fclose(f);
}

inline bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(0, p.size()) == p;
}

// "<prefix>:<digits>: " at the start of err, with prefix one of the given file names.
inline bool has_file_line_prefix(std::string_view err, std::string_view file) {
  if (!starts_with(err, file)) return false;
  std::string_view r = err.substr(file.size());
  if (r.empty() || r[0] != ':') return false;
  r.remove_prefix(1);
  size_t d = 0;
  while (d < r.size() && r[d] >= '0' && r[d] <= '9') ++d;
  if (d == 0 || (d > 1 && r[0] == '0') || (d == 1 && r[0] == '0')) return false;  // line >= 1
  r.remove_prefix(d);
  return starts_with(r, ": ") && r.size() > 2;
}

}  // namespace fuzz
