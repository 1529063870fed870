/* Tiny assertion helpers for the C tests: print where and why, then abort. */
#ifndef AMAP_TEST_CHECK_H
#define AMAP_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

#define CHECK_STATUS(call, expected)                                             \
    do {                                                                         \
        amap_status_t got_ = (call);                                             \
        if (got_ != (expected)) {                                                \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n", __FILE__, \
                    __LINE__, #call, (int)got_, amap_status_str(got_), #expected); \
            abort();                                                             \
        }                                                                        \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, AMAP_OK)

/* After a storm: clears the map, then reclaims until no retired generation and no
 * pending value is left (checked), for at most about `max_ms` milliseconds. The map's
 * final statistics go to `*stats`. Needs <unistd.h> (usleep) and amap.h. */
static inline void clear_and_drain(amap_t *map, int max_ms, amap_stats_t *stats) {
    CHECK_OK(amap_clear_async(map, NULL));
    for (int i = 0; i < max_ms; i++) {
        CHECK_OK(amap_reclaim(map, NULL));
        CHECK_OK(amap_stats(map, stats));
        if (stats->retired_generations == 0 && stats->pending_values == 0) break;
        usleep(1000);
    }
    CHECK(stats->retired_generations == 0 && stats->pending_values == 0);
}

#endif
