// fuzz/fuzz_plugin_lines.cpp: the conf/plugins parser (server/config/plugin_lines.hpp).
// Input: the main file, optionally followed by a NUL byte and the text of an include target.
// In a per-process scratch directory: plugins (the main file), extra and plugins.d/10-extra (both
// the include text), plugins.d/.hidden (junk that must be skipped) and plugins.d/sub/ (a
// directory that must be skipped). The dictionary has "$include extra", "$include plugins.d".
// To stay inside the scratch directory, inputs whose $include target is absolute or contains
// ".." are skipped.
// Invariants: failure leaves no lines and the error is "<file>:<line>: <message>" naming a file
// that was read and a line it has; on success every entry is a valid module name (with an optional
// ":N"), instances are unique, and file/line point at a line whose words are instance + args.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/plugin_lines.hpp"
#include "fuzz_common.hpp"

namespace {

constexpr std::string_view kSpace = " \t\r\n\f\v";

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return out;
}

std::vector<std::string> words_of(std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

// True if some $include in `text` could leave the scratch directory.
bool escapes(std::string_view text) {
  for (std::string_view line : lines_of(text)) {
    size_t at = line.find("$include");
    while (at != std::string_view::npos) {
      const std::string_view target = trim(line.substr(at + 8));
      if ((!target.empty() && target.front() == '/') || target.find("..") != std::string_view::npos)
        return true;
      at = line.find("$include", at + 1);
    }
  }
  return false;
}

bool read_file(const std::string &path, std::string &out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

bool valid_module(std::string_view m) {
  if (m.empty()) return false;
  size_t start = 0;
  for (;;) {
    const size_t slash = m.find('/', start);
    const std::string_view seg = m.substr(start, slash == std::string_view::npos ? m.npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    for (char c : seg)
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '-'))
        return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

void check_error(const std::string &err, const std::string &ctx) {
  // "<path>:<line>: <message>"; paths in the scratch directory contain no ':'.
  const size_t colon = err.find(':', fuzz::scratch_dir().size());
  FUZZ_CHECK(colon != std::string::npos, "error without file: " + err + ctx);
  const std::string file = err.substr(0, colon);
  FUZZ_CHECK(fuzz::has_file_line_prefix(err, file), "error not <file>:<line>: " + err + ctx);
  std::string text;
  FUZZ_CHECK(read_file(file, text), "error names a file that cannot be read: " + err + ctx);
  const size_t line = std::stoul(err.substr(colon + 1));
  FUZZ_CHECK(line >= 1 && line <= lines_of(text).size(),
             "error line beyond the end of its file: " + err + ctx);
  FUZZ_CHECK(err.find('\n') == std::string::npos, "multi-line error: " + fuzz::esc(err) + ctx);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view in(reinterpret_cast<const char *>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view main_text = in.substr(0, nul);
  const std::string_view inc_text = nul == std::string_view::npos ? std::string_view{} : in.substr(nul + 1);
  if (escapes(main_text) || escapes(inc_text)) return 0;

  const std::string &dir = fuzz::scratch_dir();
  static const bool setup = [&] {
    ::mkdir((dir + "/plugins.d").c_str(), 0700);
    ::mkdir((dir + "/plugins.d/sub").c_str(), 0700);
    fuzz::write_file(dir + "/plugins.d/.hidden", "bad\x01name\n");
    fuzz::write_file(dir + "/plugins.d/sub/99-never", "never\n");
    return true;
  }();
  (void)setup;
  const std::string main_path = dir + "/plugins";
  fuzz::write_file(main_path, main_text);
  fuzz::write_file(dir + "/extra", inc_text);
  fuzz::write_file(dir + "/plugins.d/10-extra", inc_text);

  const std::string ctx = "\n  main=\"" + fuzz::esc(main_text) + "\"\n  inc=\"" + fuzz::esc(inc_text) + "\"";
  std::vector<uvs::config::PluginLine> out;
  std::string err;
  const bool ok = uvs::config::parse_plugins_file(main_path, out, err);
  if (!ok) {
    FUZZ_CHECK(out.empty(), "lines left after a failure" + ctx);
    check_error(err, ctx);
    return 0;
  }
  FUZZ_CHECK(err.empty(), "error text on success" + ctx);
  std::set<std::string> seen;
  for (const auto &pl : out) {
    const std::string where = pl.file + ":" + std::to_string(pl.line) + " '" + pl.instance + "'" + ctx;
    FUZZ_CHECK(seen.insert(pl.instance).second, "duplicate instance " + where);
    FUZZ_CHECK(valid_module(pl.module), "bad module name " + where);
    if (pl.instance != pl.module) {
      FUZZ_CHECK(pl.instance.size() > pl.module.size() + 1 &&
                     pl.instance.compare(0, pl.module.size(), pl.module) == 0 &&
                     pl.instance[pl.module.size()] == ':',
                 "instance is not module:N " + where);
      const std::string num = pl.instance.substr(pl.module.size() + 1);
      FUZZ_CHECK(num.size() <= 9 && num.find_first_not_of("0123456789") == std::string::npos,
                 "instance suffix is not digits " + where);
    }
    for (const auto &a : pl.args)
      FUZZ_CHECK(!a.empty() && a.find_first_of(" \t") == std::string::npos, "bad arg " + where);
    std::string text;
    FUZZ_CHECK(read_file(pl.file, text), "entry names an unreadable file " + where);
    const auto lines = lines_of(text);
    FUZZ_CHECK(pl.line >= 1 && static_cast<size_t>(pl.line) <= lines.size(), "line out of range " + where);
    const std::vector<std::string> words = words_of(trim(lines[pl.line - 1]));
    std::vector<std::string> expect{pl.instance};
    expect.insert(expect.end(), pl.args.begin(), pl.args.end());
    FUZZ_CHECK(words == expect, "file:line does not hold this entry " + where);
    for (const auto &w : words)
      for (char c : w)
        FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) < 0x7F,
                   "control or non-ASCII byte accepted " + where);
  }
  return 0;
}
