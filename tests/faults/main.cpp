// tests/faults/main.cpp: doctest entry point for the fault and durability suites.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
