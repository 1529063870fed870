/* C torture: a poisoned, recycled pool of values under C reader threads (retains,
 * read sections and walks of them), a writer, a clearer with bursts of 1,000 clears
 * and reloads (batches published by amap_replace, or freed unpublished), a snapshot
 * walker, a reader that stalls 300 ms inside a read section, and threads that exit
 * (pthread_exit) while holding retained values, released by their cleanup handler.
 * Some destructors are slow.
 *
 * Every value owns one of 100 recycled pool slots, which records the value's stamp
 * while it lives and is poisoned by its destructor: readers check the slot on every
 * access, so a use after free shows as a wrong stamp even without a sanitizer (and
 * ASan / valgrind see the freed item as well). At the end: created == destroyed,
 * the pool is all free, nothing is pending, and the map's stats agree.
 *
 * AMAP_TORTURE_MS sets the run's length (default 2000; release checks: 60000). */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "amap.h"
#include "check.h"

#define SLOTS 100
#define POISON UINT64_MAX
#define KEYS 32
#define HELD 4

typedef struct {
    unsigned slot;
    uint64_t stamp;
    int slow;
} item_t;

static _Atomic uint64_t owner[SLOTS];
static unsigned free_slots[SLOTS];
static unsigned n_free;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t next_stamp = 1;
static atomic_ulong created, destroyed;
static atomic_ulong unpublished; /* values of batches freed unpublished: not the map's */
static atomic_int stop;
static amap_t *map;

static void destroy_item(void *data, void *ctx) {
    (void)ctx;
    item_t *item = data;
    uint64_t was = atomic_exchange(&owner[item->slot], POISON);
    CHECK(was == item->stamp); /* never destroyed twice, never corrupted */
    pthread_mutex_lock(&pool_lock);
    free_slots[n_free++] = item->slot;
    pthread_mutex_unlock(&pool_lock);
    if (item->slow) usleep(50);
    free(item);
    atomic_fetch_add(&destroyed, 1);
}

static item_t *make_item(uint64_t seed) {
    pthread_mutex_lock(&pool_lock);
    if (n_free == 0) {
        pthread_mutex_unlock(&pool_lock);
        return NULL;
    }
    unsigned slot = free_slots[--n_free];
    pthread_mutex_unlock(&pool_lock);
    item_t *item = malloc(sizeof *item);
    CHECK(item != NULL);
    item->slot = slot;
    item->stamp = atomic_fetch_add(&next_stamp, 1);
    item->slow = seed % 53 == 0;
    CHECK(atomic_exchange(&owner[slot], item->stamp) == POISON);
    atomic_fetch_add(&created, 1);
    return item;
}

static void check_item(const void *data) {
    const item_t *item = data;
    CHECK(atomic_load(&owner[item->slot]) == item->stamp);
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void key_of(uint64_t k, uint8_t key[1]) { key[0] = (uint8_t)(k % KEYS); }

/* A walk of a read section: checks each value and keeps the first few data
 * pointers, which stay valid (and are checked again) until the section ends. */
typedef struct {
    const void *kept[4];
    unsigned n;
} walked_t;

static int32_t walk_section(const uint8_t *key, size_t len, void *data, void *user) {
    walked_t *w = user;
    CHECK(len == 1 && key[0] < KEYS);
    check_item(data);
    if (w->n < 4) w->kept[w->n++] = data;
    return 0;
}

static void *reader(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9E3779B97F4A7C15ull | 1;
    amap_value_t *held[HELD] = {0};
    int stall = (uintptr_t)arg == 1;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint8_t key[1];
        key_of(rnd(&seed), key);
        amap_value_t *v;
        if (amap_get(map, key, 1, &v) == AMAP_OK) {
            check_item(amap_value_data(v));
            unsigned i = rnd(&seed) % HELD;
            if (held[i]) {
                check_item(amap_value_data(held[i]));
                CHECK_OK(amap_value_release(held[i]));
            }
            held[i] = v;
        }
        amap_read_t *read;
        CHECK_OK(amap_read_begin(map, &read));
        void *data;
        if (amap_read_get(read, key, 1, &data) == AMAP_OK) check_item(data);
        if (rnd(&seed) % 8 == 0) {
            walked_t w = {{0}, 0};
            CHECK_OK(amap_read_for_each(read, walk_section, &w));
            usleep(100); /* removes, clears and replaces happen meanwhile */
            for (unsigned i = 0; i < w.n; i++) check_item(w.kept[i]);
        }
        if (stall) { /* once, a 300 ms stall inside the read section */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - t0.tv_sec >= 1) {
                stall = 0;
                usleep(300000);
                if (amap_read_get(read, key, 1, &data) == AMAP_OK) check_item(data);
            }
        }
        amap_read_end(read);
    }
    for (unsigned i = 0; i < HELD; i++) {
        if (held[i]) {
            check_item(amap_value_data(held[i]));
            CHECK_OK(amap_value_release(held[i]));
        }
    }
    return NULL;
}

static void *writer(void *arg) {
    (void)arg;
    uint64_t seed = 77;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint8_t key[1];
        key_of(rnd(&seed), key);
        if (rnd(&seed) % 3 == 0) {
            amap_status_t s = amap_remove(map, key, 1);
            CHECK(s == AMAP_OK || s == AMAP_NOT_FOUND);
        } else {
            item_t *item = make_item(rnd(&seed));
            if (item) CHECK_OK(amap_insert(map, key, 1, item, destroy_item, NULL));
        }
    }
    return NULL;
}

static void *clearer(void *arg) {
    (void)arg;
    uint64_t seed = 99;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (rnd(&seed) % 100 == 0) {
            for (int i = 0; i < 1000; i++) CHECK_OK(amap_clear_async(map, NULL));
        } else {
            amap_ticket_t *ticket = NULL;
            if (rnd(&seed) % 4 == 0) { /* a reload: a batch of new values, published whole */
                amap_batch_t *batch;
                CHECK_OK(amap_batch_new(map, &batch));
                size_t len = 0;
                for (int i = 0; i < 8; i++) {
                    item_t *item = make_item(rnd(&seed));
                    uint8_t key[1];
                    key_of(rnd(&seed), key);
                    if (item) CHECK_OK(amap_batch_insert(batch, key, 1, item, destroy_item, NULL));
                }
                CHECK_OK(amap_batch_len(batch, &len));
                if (rnd(&seed) % 4 == 0) {
                    unsigned long before = atomic_load(&destroyed);
                    amap_batch_free(batch); /* never published: destroyed here, at once */
                    CHECK(atomic_load(&destroyed) - before >= len);
                    atomic_fetch_add(&unpublished, len);
                    CHECK_OK(amap_clear_async(map, &ticket));
                } else {
                    CHECK_OK(amap_replace(map, batch, &ticket));
                }
            } else {
                CHECK_OK(amap_clear_async(map, &ticket));
            }
            if (rnd(&seed) % 32 == 0) {
                amap_status_t s = amap_ticket_wait(ticket, 20);
                CHECK(s == AMAP_OK || s == AMAP_TIMED_OUT);
            }
            amap_ticket_free(ticket);
            usleep(300);
        }
    }
    return NULL;
}

static int32_t walk(const uint8_t *key, size_t len, const amap_value_t *value, void *user) {
    (void)key, (void)user;
    CHECK(len == 1);
    check_item(amap_value_data(value));
    return 0;
}

static void *walker(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        amap_snapshot_t *snap;
        CHECK_OK(amap_snapshot(map, &snap));
        CHECK_OK(amap_snapshot_foreach(snap, walk, NULL));
        amap_snapshot_release(snap);
    }
    return NULL;
}

/* A thread that exits while holding retained values; its cleanup handler releases them. */
static void release_all(void *arg) {
    amap_value_t **held = arg;
    for (unsigned i = 0; i < KEYS; i++) {
        if (held[i]) CHECK_OK(amap_value_release(held[i]));
    }
}

static void *exiting_holder(void *arg) {
    (void)arg;
    amap_value_t *held[KEYS] = {0};
    pthread_cleanup_push(release_all, held);
    for (unsigned k = 0; k < KEYS; k++) {
        uint8_t key[1] = {(uint8_t)k};
        if (amap_get(map, key, 1, &held[k]) != AMAP_OK) held[k] = NULL;
    }
    usleep(1000);
    pthread_exit(NULL); /* runs release_all */
    pthread_cleanup_pop(0);
    return NULL;
}

int main(void) {
    const char *ms_env = getenv("AMAP_TORTURE_MS");
    long run_ms = ms_env ? atol(ms_env) : 2000;
    for (unsigned i = 0; i < SLOTS; i++) {
        atomic_store(&owner[i], POISON);
        free_slots[i] = i;
    }
    n_free = SLOTS;
    map = amap_new();
    CHECK(map != NULL);

    pthread_t threads[8];
    int n = 0;
    for (uintptr_t r = 1; r <= 4; r++) CHECK(pthread_create(&threads[n++], NULL, reader, (void *)r) == 0);
    CHECK(pthread_create(&threads[n++], NULL, writer, NULL) == 0);
    CHECK(pthread_create(&threads[n++], NULL, clearer, NULL) == 0);
    CHECK(pthread_create(&threads[n++], NULL, walker, NULL) == 0);

    long exits = 0;
    for (long waited = 0; waited < run_ms; waited += 50) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, exiting_holder, NULL) == 0);
        CHECK(pthread_join(t, NULL) == 0);
        exits++;
        usleep(50000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < n; i++) CHECK(pthread_join(threads[i], NULL) == 0);

    amap_stats_t stats;
    clear_and_drain(map, 20000, &stats);
    unsigned long made = atomic_load(&created), gone = atomic_load(&destroyed);
    CHECK(made == gone);
    CHECK(stats.reclaimed_values + atomic_load(&unpublished) == gone);
    CHECK(n_free == SLOTS);
    for (unsigned i = 0; i < SLOTS; i++) CHECK(atomic_load(&owner[i]) == POISON);
    amap_free(map);
    printf("torture: %lu values, %llu generations, %ld threads exited holding values: ok\n", made,
           (unsigned long long)stats.generation, exits);
    return 0;
}
