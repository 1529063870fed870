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

#endif
