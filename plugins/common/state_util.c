/* plugins/common/state_util.c: see state_util.h. */
#define _POSIX_C_SOURCE 200809L
#include "state_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ipnet.h"
#include "plugin_util.h"

int su_fail_parse(const char *s, int *closed) {
  if (!s) return -1;
  if (!strcasecmp(s, "open")) {
    *closed = 0;
    return 0;
  }
  if (!strcasecmp(s, "closed")) {
    *closed = 1;
    return 0;
  }
  return -1;
}

int su_args_even(const uvs_api *api, uvs_plugin *self, const char *example) {
  int argc = api->plugin_argc(self);
  if (argc % 2 == 0) return 0;
  api->set_errorf(self, "odd number of arguments (%d): arguments are key value pairs, e.g. '%s'",
                  argc, example);
  return -EINVAL;
}

int su_duration_arg(const uvs_api *api, uvs_plugin *self, const char *key, const char *val,
                    int days, int zero_ok, double max, uint64_t *ms) {
  double v = pu_parse_seconds(val);
  if (v < 0 || v > max || (v == 0 && !zero_ok)) {
    api->set_errorf(self, "bad value '%s' for '%s': expected %s from %s to %g", val, key,
                    days ? "days" : "seconds", zero_ok ? "0" : "more than 0", max);
    return -EINVAL;
  }
  *ms = (uint64_t)(v * (days ? 86400000.0 : 1000.0) + 0.5);
  return 0;
}

int su_fail_arg(const uvs_api *api, uvs_plugin *self, const char *val, int *closed) {
  if (su_fail_parse(val, closed) == 0) return 0;
  api->set_errorf(self, "bad value '%s' for 'state-fail': expected open or closed", val);
  return -EINVAL;
}

void *su_state_new(const uvs_api *api, uvs_plugin *self, int has_kv, const char *kv_member,
                   size_t size, int (*parse)(void *state, uvs_plugin *self), int *rc) {
  if (!has_kv) {
    api->set_errorf(self, "needs uvsmtpd plugin ABI 1.5 (%s)", kv_member);
    *rc = -ENOSYS;
    return NULL;
  }
  void *st = calloc(1, size);
  if (!st) {
    *rc = -ENOMEM;
    return NULL;
  }
  *rc = parse(st, self);
  if (*rc != 0) {
    free(st);
    return NULL;
  }
  return st;
}

int su_client_key(const char *peer_ip, int exact, char *out, size_t cap) {
  ipnet_addr a;
  if (ipnet_addr_parse(peer_ip, &a) != 0) return -1;
  char text[INET6_ADDRSTRLEN];
  if (a.family == 4) {
    if (!exact) a.b[3] = 0;
    if (!inet_ntop(AF_INET, a.b, text, sizeof text)) return -1;
  } else {
    if (!exact) memset(a.b + 8, 0, 8);
    if (!inet_ntop(AF_INET6, a.b, text, sizeof text)) return -1;
  }
  size_t n = strlen(text);
  const char *suffix = exact ? "" : a.family == 4 ? "/24" : "/64";
  if (n + strlen(suffix) + 1 > cap) return -1;
  memcpy(out, text, n);
  strcpy(out + n, suffix);
  return (int)strlen(out);
}

uint64_t su_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void su_lower(char *s) {
  for (; *s; ++s)
    if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

uint64_t su_hash64(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; ++s) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}
