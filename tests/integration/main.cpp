// tests/integration/main.cpp: doctest entry point for the integration suite.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
