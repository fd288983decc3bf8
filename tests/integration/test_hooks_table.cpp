// tests/integration/test_hooks_table.cpp: placeholder
#include <doctest/doctest.h>
#include "harness.hpp"
