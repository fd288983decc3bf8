// tests/abi/abi_cpp.cpp: the plugin header compiled as C++ (C++20 and C++17) with -Wall -Wextra -Werror -pedantic, plus the ABI pins.
#include "uvsmtpd/plugin.h"

#include "abi_pins.h"
#include "abi_runtime.h"

int main() { return run_abi_checks(__cplusplus >= 202002L ? "C++20" : "C++17"); }
