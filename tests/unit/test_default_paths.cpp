// tests/unit/test_default_paths.cpp: the installed binary's plugin directory, relative to the
// binary as the install laid it out (util/default_paths.hpp: plugin_dir_for).
#include <doctest/doctest.h>

#include <filesystem>

#include "tmp_dir.hpp"
#include "util/default_paths.hpp"
#include "util/self_exe.hpp"

TEST_CASE("default_paths: an installed tree moved elsewhere finds its own plugin directory") {
  unit::TmpDir t;
  const std::string sbin = "/usr/local/sbin";
  const std::string plugins = "/usr/local/lib/x86_64-linux-gnu/uvsmtpd/plugins";
  std::filesystem::create_directories(t.dir + "/stage/usr/local/sbin");
  std::filesystem::create_directories(t.dir + plugins);
  std::filesystem::create_directories(t.dir + "/stage" + plugins);
  // the tree under t.dir/stage: its own plugins, not the configured ones
  CHECK(uvs::plugin_dir_for(t.dir + "/stage/usr/local/sbin", sbin, plugins) ==
        t.dir + "/stage" + plugins);
  // at the configured place: the configured directory
  CHECK(uvs::plugin_dir_for(t.dir + "/usr/local/sbin", sbin, plugins) == t.dir + plugins);
  // an absolute sbindir outside the prefix (prefix /usr, sbindir /sbin) still maps
  std::filesystem::create_directories(t.dir + "/root/sbin");
  std::filesystem::create_directories(t.dir + "/root/usr/lib/uvsmtpd/plugins");
  CHECK(uvs::plugin_dir_for(t.dir + "/root/sbin", "/sbin", "/usr/lib/uvsmtpd/plugins") ==
        t.dir + "/root/usr/lib/uvsmtpd/plugins");
}

TEST_CASE(
    "default_paths: a binary on its own, or an unknown location, falls back to the configured "
    "directory") {
  unit::TmpDir t;
  const std::string plugins = "/usr/local/lib/uvsmtpd/plugins";
  // no plugin directory next to the binary (copied to /tmp on its own)
  CHECK(uvs::plugin_dir_for(t.dir, "/usr/local/sbin", plugins) == plugins);
  // the executable's directory unknown (no /proc)
  CHECK(uvs::plugin_dir_for("", "/usr/local/sbin", plugins) == plugins);
}

TEST_CASE("default_paths: self_exe_dir is the directory of the running test binary") {
  const std::string d = uvs::self_exe_dir();
  REQUIRE(!d.empty());
  CHECK(d[0] == '/');
  CHECK(std::filesystem::is_regular_file(d + "/unit_tests"));
}
