// tests/logging/main.cpp: doctest entry point for the logging suite.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
