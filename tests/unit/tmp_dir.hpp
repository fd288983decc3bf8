// tests/unit/tmp_dir.hpp: files for unit tests that read files: a throw-away directory under
// /tmp, removed with everything in it when the object goes out of scope, and the shipped
// uvsmtpd.toml.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace unit {

struct TmpDir {
  std::string dir;
  TmpDir() {
    char tmpl[] = "/tmp/uvs_unit_XXXXXX";
    char *d = ::mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    dir = d;
  }
  ~TmpDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  TmpDir(const TmpDir &) = delete;
  TmpDir &operator=(const TmpDir &) = delete;
  // Writes `content` to dir/rel (parent directories made); returns the path.
  std::string write(const std::string &rel, const std::string &content) const {
    std::string p = dir + "/" + rel;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream f(p, std::ios::binary);
    f << content;
    return p;
  }
  std::string mkdir(const std::string &rel) const {
    std::string p = dir + "/" + rel;
    std::filesystem::create_directories(p);
    return p;
  }
};

// The path of the shipped conf/uvsmtpd.toml seen from where the unit tests run ("" if not
// found; the caller skips then).
inline std::string shipped_toml() {
  namespace fs = std::filesystem;
  for (const fs::path &c : {fs::path("conf/uvsmtpd.toml"), fs::path("../../conf/uvsmtpd.toml"),
                            fs::path(__FILE__).parent_path() / "../../conf/uvsmtpd.toml"})
    if (fs::exists(c)) return c.string();
  return "";
}

}  // namespace unit
