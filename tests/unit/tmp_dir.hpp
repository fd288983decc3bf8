// tests/unit/tmp_dir.hpp: a throw-away directory under /tmp for unit tests that read files,
// removed with everything in it when the object goes out of scope.
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

}  // namespace unit
