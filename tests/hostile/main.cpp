// tests/hostile/main.cpp: doctest entry point of the hostile-input suites.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
