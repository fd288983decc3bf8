// tests/sendmail/main.cpp: doctest entry point for the uvsmtpd-sendmail suite.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
