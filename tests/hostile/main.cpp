// tests/hostile/main.cpp: doctest main of the hostile suites; caps the servers' ASan quarantine.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

int main(int argc, char **argv) {
  // Under ASan freed blocks stay in a quarantine (256 MiB by default), so a server's RSS grows
  // with whatever it allocated and freed. The children read ASAN_OPTIONS at exec; this process
  // has read its own already.
  const char *env = getenv("ASAN_OPTIONS");
  std::string opts = env ? env : "";
  if (opts.find("quarantine_size_mb") == std::string::npos) {
    opts += std::string(opts.empty() ? "" : ":") + "quarantine_size_mb=16";
    setenv("ASAN_OPTIONS", opts.c_str(), 1);
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
