/* Atomic reloads: a writer publishes 1,000 versions of the map's contents, each
 * built in a batch off to the side and published by amap_replace, while reader
 * threads read. Every value carries its version. In each read section a reader
 * reads several keys (amap_read_get) or walks the whole section
 * (amap_read_for_each) and checks that every key is there (the map is never empty,
 * never partly filled) and that all the values it saw carry the same version (never
 * a mix of two versions); versions never go back from one section to the next.
 * Readers also retain values across reloads. Some batches map a key twice (the
 * later value wins; the earlier one, poisoned, must never be seen). Afterwards every
 * destructor ran exactly once (counted per value).
 *
 * AMAP_RELOADS sets the number of reloads (default 1000). */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "amap.h"
#include "check.h"

#define KEYS 16
#define READERS 3
#define MAX_VALUES (20000 * (KEYS + 1))
#define LOSER UINT32_MAX /* the version of a duplicate that loses within its batch */

#include "counted.h"

typedef struct {
    counted_t counted; /* first: destroy_counted sees the item as a counted_t */
    uint32_t version;
    uint32_t key;
} item_t;

static atomic_int readers_ready, done;
static amap_t *map;

static void key_of(uint32_t k, uint8_t key[6]) { memcpy(key, "key-", 4), key[4] = 'a' + k / 16, key[5] = 'a' + k % 16; }

static void add(amap_batch_t *batch, uint32_t key, uint32_t version) {
    item_t *item = counted_new(sizeof *item);
    item->version = version;
    item->key = key;
    uint8_t k[6];
    key_of(key, k);
    CHECK_OK(amap_batch_insert(batch, k, sizeof k, item, destroy_counted, &created));
}

/* Version `version` of the whole contents, published at once. */
static void publish(uint32_t version, amap_ticket_t **ticket) {
    amap_batch_t *batch = NULL;
    CHECK_OK(amap_batch_new(map, &batch));
    if (version % 10 == 3) add(batch, 0, LOSER); /* replaced by the later entry for key 0 */
    for (uint32_t k = 0; k < KEYS; k++) add(batch, k, version);
    CHECK_OK(amap_replace(map, batch, ticket));
}

static void check_item(const item_t *item, uint32_t key) {
    CHECK(item->counted.magic == LIVE);
    CHECK(item->key == key);
    CHECK(item->version != LOSER);
}

typedef struct {
    uint32_t version; /* of the first entry seen; UINT32_MAX before */
    unsigned seen;
    unsigned mask;
} walk_t;

static int32_t walk(const uint8_t *key, size_t len, void *data, void *user) {
    walk_t *w = user;
    const item_t *item = data;
    CHECK(len == 6 && memcmp(key, "key-", 4) == 0);
    uint32_t k = (uint32_t)(key[4] - 'a') * 16 + (uint32_t)(key[5] - 'a');
    check_item(item, k);
    if (w->seen++ == 0) w->version = item->version;
    CHECK(item->version == w->version); /* one version per section */
    CHECK((w->mask & (1u << k)) == 0);  /* each key once */
    w->mask |= 1u << k;
    return 0;
}

static void *reader(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9E3779B97F4A7C15ull | 1;
    uint32_t last = 0, versions = 0;
    unsigned long sections = 0;
    amap_value_t *held = NULL; /* retained across reloads */
    atomic_fetch_add(&readers_ready, 1);
    while (!atomic_load(&done) || sections < 10) {
        amap_read_t *read = NULL;
        CHECK_OK(amap_read_begin(map, &read));
        uint32_t version;
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        if (seed % 4 == 0) { /* the whole section */
            walk_t w = {UINT32_MAX, 0, 0};
            CHECK_OK(amap_read_for_each(read, walk, &w));
            CHECK(w.seen == KEYS && w.mask == (1u << KEYS) - 1); /* full, never empty */
            version = w.version;
        } else { /* several keys, one after the other */
            version = UINT32_MAX;
            for (uint32_t i = 0; i < 4; i++) {
                uint32_t k = (uint32_t)((seed >> (8 * i)) % KEYS);
                uint8_t key[6];
                key_of(k, key);
                void *data = NULL;
                CHECK_OK(amap_read_get(read, key, sizeof key, &data)); /* never missing */
                const item_t *item = data;
                check_item(item, k);
                if (i == 0) version = item->version;
                CHECK(item->version == version);
                if (i == 1) sched_yield(); /* let a reload land in the middle */
            }
        }
        amap_read_end(read);
        CHECK(version >= last); /* versions never go back */
        versions += version != last;
        last = version;
        sections++;
        if (sections % 16 == 0) { /* retain a value, keep it across reloads */
            if (held) {
                check_item(amap_value_data(held), 1);
                CHECK_OK(amap_value_release(held));
            }
            uint8_t key[6];
            key_of(1, key);
            CHECK_OK(amap_get(map, key, sizeof key, &held));
        }
    }
    if (held) {
        check_item(amap_value_data(held), 1);
        CHECK_OK(amap_value_release(held));
    }
    printf("test_reload: reader %lu: %lu sections, %u versions seen\n", (unsigned long)(uintptr_t)arg, sections,
           versions);
    return NULL;
}

int main(void) {
    const char *env = getenv("AMAP_RELOADS");
    uint32_t reloads = env ? (uint32_t)atol(env) : 1000;
    CHECK(reloads > 0 && (uint64_t)(reloads + 1) * (KEYS + 1) < MAX_VALUES);
    map = amap_new();
    CHECK(map != NULL);
    publish(0, NULL); /* the first contents */

    pthread_t readers[READERS];
    for (uintptr_t i = 0; i < READERS; i++) CHECK(pthread_create(&readers[i], NULL, reader, (void *)(i + 1)) == 0);
    while (atomic_load(&readers_ready) < READERS) usleep(100);

    for (uint32_t v = 1; v <= reloads; v++) {
        if (v % 100 == 0) { /* a ticket now and then */
            amap_ticket_t *ticket = NULL;
            publish(v, &ticket);
            uint64_t id = 0;
            CHECK_OK(amap_ticket_id(ticket, &id));
            CHECK(id == v); /* the first contents retired generation 0 */
            amap_status_t s = amap_ticket_wait(ticket, 100);
            CHECK(s == AMAP_OK || s == AMAP_TIMED_OUT);
            amap_ticket_free(ticket);
        } else {
            publish(v, NULL);
        }
        usleep(50);
    }
    atomic_store(&done, 1);
    for (int i = 0; i < READERS; i++) CHECK(pthread_join(readers[i], NULL) == 0);

    amap_stats_t stats;
    CHECK_OK(amap_stats(map, &stats));
    CHECK(stats.generation == reloads + 1);
    size_t n = 0;
    CHECK_OK(amap_len(map, &n));
    CHECK(n == KEYS);
    clear_and_drain(map, 10000, &stats);
    amap_free(map);

    unsigned made = atomic_load(&created), gone = atomic_load(&destroyed);
    printf("test_reload: %u reloads, %u values created, %u destroyed\n", reloads, made, gone);
    CHECK(made == (reloads + 1) * KEYS + (reloads + 7) / 10);
    CHECK(gone == made);
    for (unsigned i = 0; i < made; i++) CHECK(atomic_load(&destroyed_times[i]) == 1);
    printf("test_reload: ok\n");
    return 0;
}
