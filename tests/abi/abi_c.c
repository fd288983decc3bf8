/* tests/abi/abi_c.c: the plugin header compiled as C (C11, and C99 without the signature pins) with -Wall -Wextra -Werror -pedantic, plus the ABI pins. */
#include "uvsmtpd/plugin.h"

#include "abi_pins.h"
#include "abi_runtime.h"

int main(void) {
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
  return run_abi_checks("C11");
#else
  return run_abi_checks("C99");
#endif
}
