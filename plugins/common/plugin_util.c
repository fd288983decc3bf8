/* plugins/common/plugin_util.c: notes, immunity, clock and argument helpers (plugin_util.h). */
#define _POSIX_C_SOURCE 200809L
#include "plugin_util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int pu_truthy(const char *v) {
  return v && *v && strcmp(v, "0") != 0;
}

const char *pu_immune_reason(const uvs_api *api, const uvs_call *c) {
  if (api->is_immune(c) <= 0) return NULL;
  if (api->relay_client(c) > 0) return "relay client";
  if (pu_truthy(api->note_get(c, UVS_NOTE_CONNECTION, "whitelisthost"))) return "whitelisted host";
  if (pu_truthy(api->note_get(c, UVS_NOTE_TRANSACTION, "whitelistsender")))
    return "whitelisted sender";
  return "immune";
}

uint64_t pu_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double pu_parse_seconds(const char *s) {
  int digits = 0, dots = 0;
  if (!s || !*s || strlen(s) > 32) return -1;
  for (const char *p = s; *p; ++p) {
    if (*p >= '0' && *p <= '9')
      ++digits;
    else if (*p != '.' || ++dots > 1)
      return -1;
  }
  return digits ? strtod(s, NULL) : -1;
}

int pu_reject_type_parse(const char *s, pu_reject_type *out) {
  if (!strcasecmp(s, "perm") || !strcasecmp(s, "hard"))
    *out = PU_RT_PERM;
  else if (!strcasecmp(s, "temp") || !strcasecmp(s, "soft"))
    *out = PU_RT_TEMP;
  else if (!strcasecmp(s, "disconnect"))
    *out = PU_RT_DISCONNECT;
  else if (!strcasecmp(s, "temp_disconnect"))
    *out = PU_RT_TEMP_DISCONNECT;
  else
    return -1;
  return 0;
}

const char *pu_reject_type_name(pu_reject_type t) {
  static const char *const names[] = {"perm", "temp", "disconnect", "temp_disconnect"};
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "perm";
}
