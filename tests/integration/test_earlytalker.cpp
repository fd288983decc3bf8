// tests/integration/test_earlytalker.cpp: placeholder
#include <doctest/doctest.h>
#include "harness.hpp"
