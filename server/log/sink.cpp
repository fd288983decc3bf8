// log/sink.cpp: the log destinations (see sink.hpp): one mutex around the descriptor swap and
// each write, so lines from the loop and from worker threads never interleave.
#include "log/sink.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

namespace uvs::log {
namespace {

struct FacilityName {
  const char *name;
  int value;
};
const FacilityName kFacilities[] = {
    {"auth", LOG_AUTH},     {"authpriv", LOG_AUTHPRIV}, {"cron", LOG_CRON},
    {"daemon", LOG_DAEMON}, {"ftp", LOG_FTP},           {"lpr", LOG_LPR},
    {"mail", LOG_MAIL},     {"news", LOG_NEWS},         {"syslog", LOG_SYSLOG},
    {"user", LOG_USER},     {"uucp", LOG_UUCP},         {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},     {"local3", LOG_LOCAL3},
    {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},     {"local6", LOG_LOCAL6},
    {"local7", LOG_LOCAL7},
};

std::mutex g_mutex;
std::atomic<Destination> g_dest{Destination::standard_error};  // written under g_mutex
int g_fd = -1;                                                 // the file destination's descriptor
std::string g_path;
bool g_syslog_open = false;

// Appends to a regular file only: a symbolic link (O_NOFOLLOW: ELOOP) or a device, FIFO or
// directory at the path is refused, so whoever can write the log's directory cannot point the
// server's writes elsewhere.
int open_append(const std::string &path, std::string &err) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
                0640);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    err = "cannot open log file " + path + ": " +
          (errno == ELOOP ? std::string("it is a symbolic link") : std::strerror(errno));
    return -1;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    err = "cannot open log file " + path + ": not a regular file";
    return -1;
  }
  return fd;
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere left to report it
    s.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

bool parse_destination(std::string_view name, Destination &out) {
  if (name == "stderr")
    out = Destination::standard_error;
  else if (name == "file")
    out = Destination::file;
  else if (name == "syslog")
    out = Destination::syslog;
  else
    return false;
  return true;
}

bool syslog_facility(std::string_view name, int &out) {
  for (const auto &f : kFacilities)
    if (name == f.name) {
      out = f.value;
      return true;
    }
  return false;
}

const std::vector<std::string> &syslog_facility_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto &f : kFacilities) v.emplace_back(f.name);
    return v;
  }();
  return names;
}

int syslog_priority(int level) {
  static const int kPriorities[] = {LOG_EMERG,   LOG_ALERT,  LOG_CRIT, LOG_ERR,
                                    LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
  if (level < 0) level = 0;
  if (level > 7) level = 7;
  return kPriorities[level];
}

bool open_sink(Destination d, const std::string &path, int facility, std::string &err) {
  int fd = -1;
  if (d == Destination::file && (fd = open_append(path, err)) < 0) return false;
  if (d == Destination::syslog) openlog("uvsmtpd", LOG_PID | LOG_NDELAY, facility);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_fd >= 0) ::close(g_fd);
  g_fd = fd;
  g_path = d == Destination::file ? path : "";
  if (g_syslog_open && d != Destination::syslog) closelog();
  g_syslog_open = d == Destination::syslog;
  g_dest = d;
  return true;
}

Destination sink_destination() {
  return g_dest;
}

bool probe_log_file(const std::string &path, std::string &err) {
  // Never creates the file (a check run by another user would leave it owned by that user):
  // an existing one must open as a start opens it, a missing one needs a writable directory.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    int fd = open_append(path, err);
    if (fd < 0) return false;
    ::close(fd);
    return true;
  }
  if (errno != ENOENT) {
    err = "cannot open log file " + path + ": " + std::strerror(errno);
    return false;
  }
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    err = "cannot open log file " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

bool reopen_sink(std::string &err) {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_dest != Destination::file) return true;
    path = g_path;
  }
  int fd = open_append(path, err);
  if (fd < 0) return false;
  int old;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    old = g_fd;
    g_fd = fd;
  }
  if (old >= 0) ::close(old);
  return true;
}

void sink_write(int level, std::string_view line) {
  std::lock_guard<std::mutex> lock(g_mutex);
  switch (g_dest) {
    case Destination::standard_error:
      write_all(STDERR_FILENO, line);
      break;
    case Destination::file:
      write_all(g_fd, line);
      break;
    case Destination::syslog:
      if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
      syslog(syslog_priority(level), "%.*s", static_cast<int>(line.size()), line.data());
      break;
  }
}

}  // namespace uvs::log
