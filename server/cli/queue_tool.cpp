// cli/queue_tool.cpp: `uvsmtpd queue list|show|delete|hold|release|flush`: finds the queue
// directory (--queue-dir, or the queue/outbound line of the configuration's plugins file),
// becomes the queue's owner when run as root, and works through queue::QueueDir, whose
// operations are atomic renames under each entry's lock (docs/queue.md).
#include "cli/queue_tool.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <grp.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "config/plugin_lines.hpp"
#include "queue/control_notify.hpp"
#include "queue/queue_dir.hpp"

namespace uvs::cli {

namespace {

void usage(FILE *f) {
  fprintf(f,
          "usage: uvsmtpd queue [--config DIR | --queue-dir DIR] COMMAND\n"
          "  list          every message: id, size, age, next try, sender, last error and the\n"
          "                recipients still pending\n"
          "  show ID       the envelope and the header section of one message\n"
          "  delete ID     remove a message\n"
          "  hold ID       keep a message from being delivered until it is released\n"
          "  release ID    undo hold\n"
          "  flush [ID]    make one message (or every message not held) due now\n"
          "  --config DIR, -c DIR  the configuration directory whose plugins file names the\n"
          "                queue (its queue/outbound line)\n"
          "  --queue-dir DIR       the queue directory itself\n");
}

std::string utc(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  tm g{};
  gmtime_r(&tt, &g);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &g);
  return buf;
}

std::string age(int64_t secs) {
  if (secs < 0) secs = 0;
  char buf[32];
  if (secs < 120)
    snprintf(buf, sizeof buf, "%llds", static_cast<long long>(secs));
  else if (secs < 7200)
    snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(secs / 60));
  else if (secs < 172800)
    snprintf(buf, sizeof buf, "%lldh", static_cast<long long>(secs / 3600));
  else
    snprintf(buf, sizeof buf, "%lldd", static_cast<long long>(secs / 86400));
  return buf;
}

// Control characters and bytes above 126 as \xHH: the tool prints what clients sent.
std::string shown(const std::string &s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 32 && c < 127) {
      out += static_cast<char>(c);
    } else {
      char b[8];
      snprintf(b, sizeof b, "\\x%02X", c);
      out += b;
    }
  }
  return out;
}

// Tells a running server's delivery engine about a flush (its control socket), best effort:
// without a server running, the entries are due when it starts.
void notify_engine(const queue::QueueDir &q, const std::string &msg) {
  (void)queue::control_send(q.root(), msg);
}

// The queue directory of the first queue/outbound line in <config_dir>/plugins.
bool dir_from_config(const std::string &config_dir, std::string &dir, std::string &err) {
  std::vector<config::PluginLine> lines;
  std::string file = config_dir + "/plugins";
  if (!config::parse_plugins_file(file, lines, err)) return false;
  for (const auto &l : lines) {
    if (l.module != "queue/outbound") continue;
    if (l.args.size() != 1) {
      err = l.file + ":" + std::to_string(l.line) + ": usage: queue/outbound <queue dir>";
      return false;
    }
    dir = l.args[0];
    return true;
  }
  err = file + ": no queue/outbound line (give the directory with --queue-dir)";
  return false;
}

// Run as root: become the queue directory's owner, so that the files the tool writes belong to
// the user the server runs as (and nothing else is touched with root's rights).
bool become_owner(const std::string &dir, std::string &err) {
  if (geteuid() != 0) return true;
  struct stat sb {};
  if (stat(dir.c_str(), &sb) != 0) {
    err = dir + ": " + strerror(errno);
    return false;
  }
  if (sb.st_uid == 0) return true;
  if (setgroups(0, nullptr) != 0 || setgid(sb.st_gid) != 0 || setuid(sb.st_uid) != 0) {
    err = "cannot become the owner of " + dir + " (uid " + std::to_string(sb.st_uid) +
          "): " + strerror(errno);
    return false;
  }
  return true;
}

int not_found(const queue::QueueDir &q, const std::string &id) {
  fprintf(stderr, "uvsmtpd queue: no message %s in %s\n", shown(id).c_str(), q.root().c_str());
  return 1;
}

int fail(int rc, const queue::QueueDir &q, const std::string &id, const std::string &err) {
  if (rc == -ENOENT) return not_found(q, id);
  fprintf(stderr, "uvsmtpd queue: %s: %s\n", shown(id).c_str(), err.c_str());
  return 1;
}

int cmd_list(queue::QueueDir &q) {
  queue::ScanResult r = q.scan(false);
  int64_t now = time(nullptr);
  size_t pending = 0, shown_count = 0, damaged = 0;
  if (r.entries.empty()) {
    printf("The queue is empty (%s).\n", q.root().c_str());
  } else {
    printf("%-16s %10s %5s  %-21s %s\n", "QUEUE ID", "SIZE", "AGE", "NEXT TRY", "SENDER");
  }
  for (const auto &ent : r.entries) {
    queue::Envelope e;
    bool held = false;
    std::string err;
    int rc = q.load(ent.id, e, held, err);
    if (rc == -ENOENT) continue;  // delivered or deleted since the scan
    if (rc < 0) {
      ++damaged;
      printf("%-16s (damaged: %s)\n", ent.id, err.c_str());
      continue;
    }
    ++shown_count;
    std::string next = held ? "held" : ent.next_try <= now ? "now" : utc(ent.next_try);
    printf("%-16s %10lld %5s  %-21s <%s>\n", e.id.c_str(), static_cast<long long>(e.size),
           age(now - e.arrival).c_str(), next.c_str(), shown(e.sender).c_str());
    if (!e.last_error.empty()) printf("    (%s)\n", shown(e.last_error).c_str());
    for (const auto &rc2 : e.rcpts) {
      if (rc2.state != queue::RcptState::pending) continue;
      ++pending;
      printf("    %s\n", shown(rc2.address).c_str());
    }
  }
  if (!r.entries.empty())
    printf("-- %zu message(s), %zu pending recipient(s), %zu held\n", shown_count, pending, r.held);
  if (r.temp_files) printf("-- %zu message(s) being written (tmp/)\n", r.temp_files);
  if (r.lone_envelopes || r.problem_count)
    fprintf(stderr,
            "uvsmtpd queue: %zu envelope(s) without a message, %zu other problem(s): "
            "the next server start sorts them out\n",
            r.lone_envelopes, r.problem_count);
  if (damaged) fprintf(stderr, "uvsmtpd queue: %zu damaged envelope(s)\n", damaged);
  return damaged ? 1 : 0;
}

int cmd_show(queue::QueueDir &q, const std::string &id) {
  queue::Envelope e;
  bool held = false;
  std::string err;
  int rc = q.load(id, e, held, err);
  if (rc < 0) return fail(rc, q, id, err);
  int64_t now = time(nullptr);
  printf("id: %s\n", e.id.c_str());
  printf("state: %s\n", held ? "held" : "waiting");
  printf("arrival: %s (%s ago)\n", utc(e.arrival).c_str(), age(now - e.arrival).c_str());
  printf("size: %lld\n", static_cast<long long>(e.size));
  printf("sender: <%s>\n", shown(e.sender).c_str());
  printf("client: %s [%s] helo=%s\n",
         e.client_name.empty() ? "unknown" : shown(e.client_name).c_str(),
         shown(e.client_ip).c_str(), e.helo.empty() ? "-" : shown(e.helo).c_str());
  if (!e.auth_user.empty()) printf("auth user: %s\n", shown(e.auth_user).c_str());
  printf("protocol: %s%s%s\n", e.protocol.empty() ? "-" : shown(e.protocol).c_str(),
         e.smtputf8 ? " SMTPUTF8" : "", e.body_8bitmime ? " BODY=8BITMIME" : "");
  printf("attempts: %d\n", e.attempts);
  printf("next try: %s\n", e.next_try <= now ? "now" : utc(e.next_try).c_str());
  if (!e.last_error.empty()) printf("last error: %s\n", shown(e.last_error).c_str());
  for (const auto &r : e.rcpts) {
    printf("recipient: %s %s", shown(r.address).c_str(),
           std::string(queue::rcpt_state_name(r.state)).c_str());
    if (r.status) printf(" %d %s", r.status, shown(r.enhanced).c_str());
    if (!r.remote_mta.empty()) printf(" via %s", shown(r.remote_mta).c_str());
    if (!r.diagnostic.empty()) printf(" (%s)", shown(r.diagnostic).c_str());
    if (!r.orcpt.empty()) printf(" orcpt=%s", shown(r.orcpt).c_str());
    printf("\n");
  }
  // The header section of the message file.
  FILE *m = fopen(q.msg_path(id).c_str(), "rb");
  if (!m) {
    fprintf(stderr, "uvsmtpd queue: %s: %s\n", q.msg_path(id).c_str(), strerror(errno));
    return 1;
  }
  printf("\n");
  // Up to the empty line that ends the header section (at most 1 MiB of it), CRLF shown as LF.
  std::string hdr;
  char buf[4096];
  size_t n = 0;
  while (hdr.size() < (1u << 20) && (n = fread(buf, 1, sizeof buf, m)) > 0) {
    hdr.append(buf, n);
    if (hdr.find("\r\n\r\n") != std::string::npos || hdr.find("\n\n") != std::string::npos) break;
  }
  size_t end = std::min(hdr.find("\r\n\r\n"), hdr.find("\n\n"));
  if (end != std::string::npos) hdr.resize(end);
  std::string out;
  for (size_t i = 0; i < hdr.size(); ++i)
    if (!(hdr[i] == '\r' && i + 1 < hdr.size() && hdr[i + 1] == '\n')) out += hdr[i];
  printf("%s\n", out.c_str());
  fclose(m);
  return 0;
}

}  // namespace

int queue_main(int argc, char **argv, const std::string &default_config_dir) {
  std::string config_dir = default_config_dir, queue_dir;
  std::vector<std::string> words;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" || a == "-c" || a == "--queue-dir") {
      if (i + 1 >= argc) {
        fprintf(stderr, "uvsmtpd queue: %s needs a value\n", a.c_str());
        return 2;
      }
      (a == "--queue-dir" ? queue_dir : config_dir) = argv[++i];
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a.size() > 1 && a[0] == '-') {
      fprintf(stderr, "uvsmtpd queue: unknown option '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    } else {
      words.push_back(a);
    }
  }
  if (words.empty()) {
    usage(stderr);
    return 2;
  }
  const std::string cmd = words[0];
  bool needs_id = cmd == "show" || cmd == "delete" || cmd == "hold" || cmd == "release";
  bool known = needs_id || cmd == "list" || cmd == "flush";
  if (!known) {
    fprintf(stderr, "uvsmtpd queue: unknown command '%s'\n", shown(cmd).c_str());
    usage(stderr);
    return 2;
  }
  size_t max_words = needs_id || cmd == "flush" ? 2 : 1;
  if ((needs_id && words.size() != 2) || words.size() > max_words) {
    fprintf(stderr, "uvsmtpd queue: %s %s\n", cmd.c_str(),
            needs_id ? "needs one queue id" : "takes no more arguments");
    return 2;
  }
  std::string err;
  if (queue_dir.empty() && !dir_from_config(config_dir, queue_dir, err)) {
    fprintf(stderr, "uvsmtpd queue: %s\n", err.c_str());
    return 2;
  }
  if (!become_owner(queue_dir, err)) {
    fprintf(stderr, "uvsmtpd queue: %s\n", err.c_str());
    return 2;
  }
  queue::QueueDir q(queue_dir);
  if (!q.open(false, err) || !q.lock_shared(err)) {
    fprintf(stderr, "uvsmtpd queue: %s\n", err.c_str());
    return 2;
  }
  std::string id = words.size() > 1 ? words[1] : "";
  if (!id.empty() && !queue::valid_id(id)) return not_found(q, id);
  if (cmd == "list") return cmd_list(q);
  if (cmd == "show") return cmd_show(q, id);
  int rc = 0;
  if (cmd == "delete") {
    rc = q.remove(id, err);
    if (rc == 0) printf("%s: deleted\n", id.c_str());
  } else if (cmd == "hold" || cmd == "release") {
    rc = q.set_hold(id, cmd == "hold", err);
    if (rc == 0) printf("%s: %s\n", id.c_str(), cmd == "hold" ? "held" : "released");
  } else {  // flush
    int64_t now = time(nullptr);
    auto due_now = [now](queue::Envelope &e) { e.next_try = now; };
    if (!id.empty()) {
      rc = q.update(id, due_now, err);
      if (rc == 0) {
        printf("%s: due now\n", id.c_str());
        notify_engine(q, "flush " + id);
      }
    } else {
      queue::ScanResult r = q.scan(false);
      size_t done = 0, failed = 0;
      for (const auto &ent : r.entries) {
        if (ent.state != queue::EntryState::waiting) continue;
        int one = q.update(ent.id, due_now, err);
        if (one == 0)
          ++done;
        else if (one != -ENOENT) {
          ++failed;
          fprintf(stderr, "uvsmtpd queue: %s: %s\n", ent.id, err.c_str());
        }
      }
      printf("%zu message(s) due now%s\n", done,
             r.held ? (", " + std::to_string(r.held) + " held left as they are").c_str() : "");
      notify_engine(q, "flush");
      return failed ? 1 : 0;
    }
  }
  return rc < 0 ? fail(rc, q, id, err) : 0;
}

}  // namespace uvs::cli
