/* Values that count their own destruction, shared by the C tests that check every
 * destructor runs exactly once and no value is read after it: each value starts
 * with a `counted_t` (a magic word readers check and the destructor poisons, and
 * the value's id), made with `counted_new` and destroyed by `destroy_counted`.
 * Include after defining MAX_VALUES (the most values a test makes). */
#ifndef AMAP_TEST_COUNTED_H
#define AMAP_TEST_COUNTED_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

#define LIVE 0x5AFEC0DEu
#define DEAD 0xDEADDEADu

typedef struct {
    unsigned magic;
    uint32_t id;
} counted_t;

static atomic_uchar destroyed_times[MAX_VALUES];
static atomic_uint created, destroyed;

/* A new value of `size` bytes (starting with a `counted_t`, filled in), counted. */
static void *counted_new(size_t size) {
    unsigned id = atomic_fetch_add(&created, 1);
    CHECK(id < MAX_VALUES);
    counted_t *value = calloc(1, size);
    CHECK(value != NULL);
    value->magic = LIVE;
    value->id = id;
    return value;
}

/* The values' destructor (its ctx is &created): poisons, counts, frees. */
static void destroy_counted(void *data, void *ctx) {
    counted_t *value = data;
    CHECK(ctx == &created);
    CHECK(value->magic == LIVE);
    value->magic = DEAD;
    CHECK(atomic_fetch_add(&destroyed_times[value->id], 1) == 0);
    free(value);
    atomic_fetch_add(&destroyed, 1);
}

#endif
