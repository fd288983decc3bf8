// tests/integration/test_plugin_host.cpp: placeholder
#include <doctest/doctest.h>
#include "harness.hpp"
