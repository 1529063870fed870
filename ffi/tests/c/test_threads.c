/* The scenario that motivates the project, in C: reader threads retain values and
 * keep reading them while another thread clears the map in a loop and a third
 * inserts. Afterwards every destructor ran exactly once (counted here), and no
 * value was freed while retained (each value carries a magic word that readers
 * check and the destructor poisons; AddressSanitizer and valgrind also watch).
 *
 * Then threads race the conditional writes (`amap_try_insert`, `amap_take`) on a
 * few keys, `amap_compute` increments of a few counters, and `amap_swap`s, each
 * checked by conservation.
 *
 * AMAP_C_TEST_MS sets how long the storm runs (default 2000). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "amap.h"
#include "check.h"

#define READERS 4
#define KEYS 64
#define HELD 8
#define MAX_VALUES 4000000
/* Values the races after the storm may make (checked where they are defined). */
#define AFTER_STORM_VALUES 240000
#define MIN_GENERATIONS 5
#define MIN_VALUES 100
#include "counted.h"

typedef counted_t item_t;

static atomic_int stop;
static amap_t *map;

static uint64_t next_random(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A test key: `len` bytes of `bytes`. */
typedef struct {
    uint8_t bytes[24];
    size_t len;
} test_key_t;

/* Key number `k` (below 65,536): 2 to 24 bytes long, the length picked by `k`
 * (2, 4, 7, 8, 12, 16, 17, 24), so that threads race on every path of the
 * library's key compare: shorter than 4 bytes, 4 to 16 (compared inline, two
 * loads from each side) and longer (`bcmp`). Its first two bytes are `k`, so
 * keys of different numbers differ; the rest are a pattern of `k`. */
static test_key_t key_of(uint64_t k) {
    static const size_t lengths[8] = {2, 4, 7, 8, 12, 16, 17, 24};
    test_key_t key = {.len = lengths[k % 8]};
    key.bytes[0] = (uint8_t)(k & 0xff);
    key.bytes[1] = (uint8_t)(k >> 8);
    for (size_t i = 2; i < key.len; i++) {
        key.bytes[i] = (uint8_t)(0xa5 ^ (k * 31 + i));
    }
    return key;
}

static void check_alive(const amap_value_t *v) {
    const item_t *item = amap_value_data(v);
    CHECK(item != NULL);
    CHECK(item->magic == LIVE);
}

/* amap_get_with's callback: the value is live for the call, across clears. */
static void check_visited(void *data, void *user) {
    (void)user;
    CHECK(((const item_t *)data)->magic == LIVE);
}

static void *reader(void *arg) {
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uintptr_t)arg;
    amap_value_t *held[HELD] = {0};
    unsigned long reads = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        test_key_t key = key_of(next_random(&seed) % KEYS);
        amap_value_t *v = NULL;
        if (amap_get(map, key.bytes, key.len, &v) == AMAP_OK) {
            check_alive(v);
            if (next_random(&seed) % 4 == 0) { /* an extra retain and release */
                CHECK_OK(amap_value_retain(v));
                check_alive(v);
                CHECK_OK(amap_value_release(v));
            }
            unsigned slot = next_random(&seed) % HELD;
            if (held[slot]) {
                check_alive(held[slot]); /* held across clears */
                CHECK_OK(amap_value_release(held[slot]));
            }
            held[slot] = v;
        }
        if (reads++ % 16 == 0) { /* a borrowed read section */
            amap_read_t *read = NULL;
            CHECK_OK(amap_read_begin(map, &read));
            void *data = NULL;
            if (amap_read_get(read, key.bytes, key.len, &data) == AMAP_OK) {
                CHECK(((item_t *)data)->magic == LIVE);
            }
            amap_read_end(read);
        }
        if (reads % 16 == 8) { /* a one-call borrowed read */
            key = key_of(next_random(&seed) % KEYS);
            amap_status_t s = amap_get_with(map, key.bytes, key.len, check_visited, NULL);
            CHECK(s == AMAP_OK || s == AMAP_NOT_FOUND);
        }
    }
    for (unsigned i = 0; i < HELD; i++) {
        if (held[i]) {
            check_alive(held[i]);
            CHECK_OK(amap_value_release(held[i]));
        }
    }
    return NULL;
}

static void *clearer(void *arg) {
    (void)arg;
    unsigned long clears = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (++clears % 64 == 0) { /* a ticket now and then; none wanted otherwise */
            amap_ticket_t *ticket = NULL;
            CHECK_OK(amap_clear_async(map, &ticket));
            amap_status_t s = amap_ticket_wait(ticket, 50);
            CHECK(s == AMAP_OK || s == AMAP_TIMED_OUT);
            amap_ticket_free(ticket);
        } else {
            CHECK_OK(amap_clear_async(map, NULL));
        }
        usleep(100);
    }
    return (void *)(uintptr_t)clears;
}

static void *inserter(void *arg) {
    (void)arg;
    uint64_t seed = 12345;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        /* the only thread that makes values during the storm; the races after it
         * make up to AFTER_STORM_VALUES more */
        if (atomic_load(&created) >= MAX_VALUES - AFTER_STORM_VALUES) break;
        item_t *item = counted_new(sizeof *item);
        test_key_t key = key_of(next_random(&seed) % KEYS);
        CHECK_OK(amap_insert(map, key.bytes, key.len, item, destroy_counted, &created));
        if (next_random(&seed) % 8 == 0) {
            key = key_of(next_random(&seed) % KEYS);
            amap_status_t s = amap_remove(map, key.bytes, key.len);
            CHECK(s == AMAP_OK || s == AMAP_NOT_FOUND);
        }
    }
    return NULL;
}

/* Runs `body` on `n` threads (each given its number, from 1) and joins them. */
static void run_threads(uintptr_t n, void *(*body)(void *)) {
    pthread_t threads[8];
    CHECK(n <= 8);
    for (uintptr_t i = 0; i < n; i++) {
        CHECK(pthread_create(&threads[i], NULL, body, (void *)(i + 1)) == 0);
    }
    for (uintptr_t i = 0; i < n; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
}

/* `amap_take` of `key`: the value handed out (the caller releases it), or NULL if
 * the key was absent; any other status fails the test. */
static amap_value_t *take_or_null(amap_t *m, const test_key_t *key) {
    amap_value_t *taken = NULL;
    amap_status_t status = amap_take(m, key->bytes, key->len, &taken);
    CHECK(status == AMAP_OK || status == AMAP_NOT_FOUND);
    return status == AMAP_OK ? taken : NULL;
}

/* The conditional writes under contention: threads race `amap_try_insert` and
 * `amap_take` on a few keys. A try_insert that reports AMAP_OK must have found the
 * key absent (so the map holds what the wins put in minus what the takes took
 * out), a refused value stays with its thread (which destroys it itself), and
 * every value is destroyed exactly once. */
#define RACERS 4
#define RACE_KEYS 8
#define RACE_ROUNDS 20000
static amap_t *race_map;
static atomic_long wins, takes;

static void *racer(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        test_key_t key = key_of(next_random(&seed) % RACE_KEYS);
        if (next_random(&seed) % 4 == 0) {
            amap_value_t *taken = take_or_null(race_map, &key);
            if (taken != NULL) {
                check_alive(taken);
                CHECK_OK(amap_value_release(taken));
                atomic_fetch_add(&takes, 1);
            }
            continue;
        }
        item_t *item = counted_new(sizeof(item_t));
        amap_value_t *now = NULL;
        amap_status_t status = amap_try_insert(race_map, key.bytes, key.len, item, destroy_counted, &created, &now);
        CHECK(status == AMAP_OK || status == AMAP_EXISTS);
        check_alive(now);
        if (status == AMAP_OK) {
            CHECK(amap_value_data(now) == item);
            atomic_fetch_add(&wins, 1);
        } else {
            CHECK(amap_value_data(now) != item);
            destroy_counted(item, &created); /* refused: still ours */
        }
        CHECK_OK(amap_value_release(now));
    }
    return NULL;
}

static void race_try_insert_and_take(void) {
    race_map = amap_new();
    CHECK(race_map != NULL);
    run_threads(RACERS, racer);
    size_t left = 0;
    CHECK_OK(amap_len(race_map, &left));
    printf("test_threads: try_insert race: %ld wins, %ld takes, %zu left\n", atomic_load(&wins),
           atomic_load(&takes), left);
    CHECK(atomic_load(&wins) == atomic_load(&takes) + (long)left);
    CHECK(atomic_load(&takes) > 0);
    amap_stats_t stats;
    clear_and_drain(race_map, 10000, &stats);
    amap_free(race_map);
}

/* Threads race amap_compute increments of a few counters (and amap_take, which
 * hands a counter out and starts the key over): an increment is one step with
 * respect to the other writers of its key, so no increment is lost, whatever the
 * interleaving. Each counter is a new value per increment (the old one released),
 * so the destructor count also checks that every replaced value is destroyed
 * once. */
#define COMPUTERS 4
#define COMPUTE_KEYS 8 /* one of each length key_of makes */
#define COMPUTE_ROUNDS 20000
typedef struct {
    counted_t head;
    long count;
    uint64_t key; /* the number of the key it is under, checked on every read:
                     a value handed out under another key fails the test (the
                     key compare itself is checked by the Rust unit test
                     short_keys_compare_as_bytes_do: these keys all differ in
                     length, and the table compares keys whose hash tags match) */
} counter_t;
#define SWAP_ROUNDS 10000
_Static_assert(RACERS * RACE_ROUNDS + COMPUTERS * COMPUTE_ROUNDS + RACERS * SWAP_ROUNDS <= AFTER_STORM_VALUES,
               "the races after the storm make at most AFTER_STORM_VALUES values");
static amap_t *compute_map;
static atomic_long increments, taken_total;

/* `user` points to the number of the key incremented. */
static int32_t increment(const void *current, uint8_t present, void *user, amap_new_value_t *out_new) {
    uint64_t k = *(const uint64_t *)user;
    long now = 1;
    if (present) {
        const counter_t *old = current;
        CHECK(old->head.magic == LIVE);
        CHECK(old->key == k);
        now = old->count + 1;
    }
    counter_t *next = counted_new(sizeof(counter_t));
    next->count = now;
    next->key = k;
    out_new->data = next;
    out_new->dtor = destroy_counted;
    out_new->ctx = &created;
    return AMAP_COMPUTE_INSERT;
}

static void *computer(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < COMPUTE_ROUNDS; round++) {
        uint64_t k = next_random(&seed) % COMPUTE_KEYS;
        test_key_t key = key_of(k);
        if (next_random(&seed) % 64 == 0) {
            amap_value_t *out = take_or_null(compute_map, &key);
            if (out != NULL) {
                counter_t *c = amap_value_data(out);
                CHECK(c->head.magic == LIVE && c->key == k);
                atomic_fetch_add(&taken_total, c->count);
                CHECK_OK(amap_value_release(out));
            }
            continue;
        }
        amap_value_t *now = NULL;
        CHECK_OK(amap_compute(compute_map, key.bytes, key.len, increment, &k, &now));
        counter_t *c = amap_value_data(now);
        CHECK(c != NULL && c->head.magic == LIVE && c->count >= 1 && c->key == k);
        CHECK_OK(amap_value_release(now));
        atomic_fetch_add(&increments, 1);
    }
    return NULL;
}

static void race_compute(void) {
    compute_map = amap_new();
    CHECK(compute_map != NULL);
    run_threads(COMPUTERS, computer);
    long left = 0;
    for (uint64_t k = 0; k < COMPUTE_KEYS; k++) {
        test_key_t key = key_of(k);
        amap_value_t *v = NULL;
        amap_status_t status = amap_get(compute_map, key.bytes, key.len, &v);
        CHECK(status == AMAP_OK || status == AMAP_NOT_FOUND);
        if (status == AMAP_OK) {
            const counter_t *c = amap_value_data(v);
            CHECK(c->key == k);
            left += c->count;
            CHECK_OK(amap_value_release(v));
        }
    }
    printf("test_threads: compute race: %ld increments, %ld taken, %ld left\n", atomic_load(&increments),
           atomic_load(&taken_total), left);
    CHECK(atomic_load(&increments) == atomic_load(&taken_total) + left);
    CHECK(atomic_load(&taken_total) > 0);
    amap_stats_t stats;
    clear_and_drain(compute_map, 10000, &stats);
    amap_free(compute_map);
}

/* Threads race `amap_swap` on a few keys: each swap inserts its own value and
 * hands back the one it replaced, so every value is handed back by exactly one
 * swap or is still mapped at the end (a swap made of a lookup and an insert would
 * hand some value back twice and lose another), and every value is destroyed
 * once. */
typedef struct {
    counted_t head;
    atomic_int handed_back;
} swapped_t;
static amap_t *swap_map;
static atomic_long swaps_handing_back;

static void *swapper(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < SWAP_ROUNDS; round++) {
        test_key_t key = key_of(next_random(&seed) % RACE_KEYS);
        swapped_t *item = counted_new(sizeof(swapped_t));
        amap_value_t *previous = (amap_value_t *)0x1;
        CHECK_OK(amap_swap(swap_map, key.bytes, key.len, item, destroy_counted, &created, &previous));
        if (previous != NULL) {
            check_alive(previous);
            swapped_t *before = amap_value_data(previous);
            CHECK(before != item);
            CHECK(atomic_fetch_add(&before->handed_back, 1) == 0);
            atomic_fetch_add(&swaps_handing_back, 1);
            CHECK_OK(amap_value_release(previous));
        }
    }
    return NULL;
}

static void race_swap(void) {
    swap_map = amap_new();
    CHECK(swap_map != NULL);
    run_threads(RACERS, swapper);
    size_t left = 0;
    CHECK_OK(amap_len(swap_map, &left));
    long swaps = (long)RACERS * SWAP_ROUNDS;
    printf("test_threads: swap race: %ld swaps, %ld handed a value back, %zu left\n", swaps,
           atomic_load(&swaps_handing_back), left);
    CHECK(swaps == atomic_load(&swaps_handing_back) + (long)left);
    CHECK(left <= RACE_KEYS);
    amap_stats_t stats;
    clear_and_drain(swap_map, 10000, &stats);
    amap_free(swap_map);
}

int main(void) {
    const char *ms_env = getenv("AMAP_C_TEST_MS");
    long run_ms = ms_env ? atol(ms_env) : 2000;
    map = amap_new();
    CHECK(map != NULL);

    pthread_t readers[READERS], clear_thread, insert_thread;
    for (uintptr_t i = 0; i < READERS; i++) {
        CHECK(pthread_create(&readers[i], NULL, reader, (void *)(i + 1)) == 0);
    }
    CHECK(pthread_create(&clear_thread, NULL, clearer, NULL) == 0);
    CHECK(pthread_create(&insert_thread, NULL, inserter, NULL) == 0);
    struct timespec pause = {run_ms / 1000, (run_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    /* Run on until the clearer and the inserter have both made progress, so a
     * thread that the scheduler starved (valgrind serialises threads) cannot let
     * the test pass without having exercised it; give up after two minutes. */
    amap_stats_t progress;
    for (int waited_ms = 0;; waited_ms += 10) {
        CHECK_OK(amap_stats(map, &progress));
        if (progress.generation >= MIN_GENERATIONS && atomic_load(&created) >= MIN_VALUES) break;
        CHECK(waited_ms < 120000);
        usleep(10000);
    }
    atomic_store(&stop, 1);
    void *clears = NULL;
    for (int i = 0; i < READERS; i++) {
        CHECK(pthread_join(readers[i], NULL) == 0);
    }
    CHECK(pthread_join(clear_thread, &clears) == 0);
    CHECK(pthread_join(insert_thread, NULL) == 0);

    /* Everything released by C; let the deferred destructions run, then free. */
    amap_stats_t stats;
    clear_and_drain(map, 10000, &stats);
    amap_free(map);
    race_try_insert_and_take();
    race_compute();
    race_swap();

    unsigned made = atomic_load(&created), gone = atomic_load(&destroyed);
    printf("test_threads: %u values created, %u destroyed, %lu clears, %llu generations\n", made, gone,
           (unsigned long)(uintptr_t)clears, (unsigned long long)stats.generation);
    CHECK(made > 0 && (uintptr_t)clears > 0);
    CHECK(gone == made);
    for (unsigned i = 0; i < made; i++) {
        CHECK(atomic_load(&destroyed_times[i]) == 1);
    }
    printf("test_threads: ok\n");
    return 0;
}
