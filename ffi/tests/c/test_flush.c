/* Values that outlive their map: a value C still holds when the map is freed is
 * destroyed after its last release without any further call into the library (the
 * background thread does it within a few passes), and `amap_flush` destroys
 * everything released, for programs about to exit. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "amap.h"
#include "check.h"

#define K(s) ((const uint8_t *)(s))

static atomic_int destroyed;

static void count_dtor(void *data, void *ctx) {
    (void)ctx;
    free(data);
    atomic_fetch_add(&destroyed, 1);
}

static void *payload(int v) {
    int *p = malloc(sizeof *p);
    CHECK(p != NULL);
    *p = v;
    return p;
}

static amap_t *map_in(uint32_t mode) {
    amap_options_t options;
    CHECK_OK(amap_options_init(&options));
    options.reclaim_mode = mode;
    amap_t *map = NULL;
    CHECK_OK(amap_new_with(&options, &map));
    return map;
}

/* No library call while waiting: only the counter is read. 10 s is a correctness
 * deadline far above the documented bound (a few passes, at most 16 ms apart). */
static int destroyed_within_ms(int want, int ms) {
    for (int i = 0; i < ms; i++) {
        if (atomic_load(&destroyed) >= want) return 1;
        usleep(1000);
    }
    return atomic_load(&destroyed) >= want;
}

static void released_after_free_without_another_call(uint32_t mode) {
    atomic_store(&destroyed, 0);
    amap_t *map = map_in(mode);
    CHECK_OK(amap_insert(map, K("held"), 4, payload(1), count_dtor, NULL));
    amap_value_t *v = NULL;
    CHECK_OK(amap_get(map, K("held"), 4, &v));
    amap_free(map);
    CHECK(*(int *)amap_value_data(v) == 1);
    CHECK_OK(amap_value_release(v));
    CHECK(destroyed_within_ms(1, 10000));
}

static void flush_destroys_everything_released(uint32_t mode) {
    atomic_store(&destroyed, 0);
    amap_t *map = map_in(mode);
    char key[16];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        CHECK_OK(amap_insert(map, K(key), (size_t)n, payload(i), count_dtor, NULL));
    }
    amap_value_t *held = NULL;
    CHECK_OK(amap_get(map, K("k7"), 2, &held));
    CHECK_OK(amap_remove(map, K("k8"), 2)); /* doomed: waits for a grace period */
    /* With a live map: that map's reclaimer (manual mode: passes on this thread). */
    CHECK_OK(amap_flush(map, 10000));
    CHECK(atomic_load(&destroyed) == 1);
    amap_free(map);
    CHECK_OK(amap_value_release(held));
    /* NULL: the process-wide reclaimer, which also finishes freed manual maps. */
    CHECK_OK(amap_flush(NULL, 10000));
    CHECK(atomic_load(&destroyed) == 100);
}

/* An open read section holds every grace period up: flush times out, then
 * succeeds once the section ends. */
static void flush_times_out_behind_a_read_section(void) {
    atomic_store(&destroyed, 0);
    amap_t *map = map_in(AMAP_RECLAIM_MANUAL);
    amap_t *other = amap_new();
    CHECK(other != NULL);
    CHECK_OK(amap_insert(map, K("x"), 1, payload(1), count_dtor, NULL));
    amap_read_t *read = NULL;
    CHECK_OK(amap_read_begin(other, &read));
    CHECK_OK(amap_remove(map, K("x"), 1));
    CHECK_STATUS(amap_flush(map, 100), AMAP_TIMED_OUT);
    CHECK(atomic_load(&destroyed) == 0);
    amap_read_end(read);
    CHECK_OK(amap_flush(map, 10000));
    CHECK(atomic_load(&destroyed) == 1);
    amap_free(map);
    amap_free(other);
}

/* A destructor run by the reclaimer that asks for a flush of that same reclaimer:
 * it would wait for itself, and gets a status of its own at once. */
static atomic_int flush_status_inside = -1;

static void flushing_dtor(void *data, void *ctx) {
    (void)data;
    atomic_store(&flush_status_inside, (int)amap_flush((const amap_t *)ctx, 10000));
    atomic_fetch_add(&destroyed, 1);
}

static void flush_from_a_destructor_would_deadlock(uint32_t mode) {
    atomic_store(&destroyed, 0);
    atomic_store(&flush_status_inside, -1);
    amap_t *map = map_in(mode);
    /* background: the dtor runs on the process-wide thread, whose flush is asked
     * (ctx NULL); manual: on this thread, in a pass of the map's reclaimer. */
    void *ctx = mode == AMAP_RECLAIM_MANUAL ? (void *)map : NULL;
    CHECK_OK(amap_insert(map, K("f"), 1, NULL, flushing_dtor, ctx));
    CHECK_OK(amap_remove(map, K("f"), 1));
    CHECK_OK(amap_flush(map, 10000));
    CHECK(atomic_load(&destroyed) == 1);
    CHECK(atomic_load(&flush_status_inside) == AMAP_WOULD_DEADLOCK);
    CHECK(strcmp(amap_status_str(AMAP_WOULD_DEADLOCK),
                 "would wait for itself (called from a destructor the same reclaimer runs, or in a read section begun before the clear)") == 0);
    amap_free(map);
}

/* The data a read section lent stays valid until the section ends, even if the key
 * is removed and everything released is flushed meanwhile: the section's pin holds
 * the value's grace period. */
static void borrowed_data_outlives_a_remove_and_a_flush(void) {
    atomic_store(&destroyed, 0);
    amap_t *map = map_in(AMAP_RECLAIM_MANUAL);
    CHECK_OK(amap_insert(map, K("lent"), 4, payload(42), count_dtor, NULL));
    amap_read_t *read = NULL;
    CHECK_OK(amap_read_begin(map, &read));
    void *data = NULL;
    CHECK_OK(amap_read_get(read, K("lent"), 4, &data));
    CHECK_OK(amap_remove(map, K("lent"), 4));
    CHECK_STATUS(amap_flush(map, 100), AMAP_TIMED_OUT);
    CHECK(atomic_load(&destroyed) == 0);
    CHECK(*(int *)data == 42);
    amap_read_end(read);
    CHECK_OK(amap_flush(map, 10000));
    CHECK(atomic_load(&destroyed) == 1);
    amap_free(map);
}

int main(void) {
    released_after_free_without_another_call(AMAP_RECLAIM_BACKGROUND);
    released_after_free_without_another_call(AMAP_RECLAIM_MANUAL);
    flush_destroys_everything_released(AMAP_RECLAIM_BACKGROUND);
    flush_destroys_everything_released(AMAP_RECLAIM_MANUAL);
    flush_times_out_behind_a_read_section();
    flush_from_a_destructor_would_deadlock(AMAP_RECLAIM_BACKGROUND);
    flush_from_a_destructor_would_deadlock(AMAP_RECLAIM_MANUAL);
    borrowed_data_outlives_a_remove_and_a_flush();
    /* Nothing left for a leak checker. */
    CHECK_OK(amap_flush(NULL, 10000));
    puts("test_flush: ok");
    return 0;
}
