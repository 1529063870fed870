#define _DEFAULT_SOURCE
/* A service-shaped program: worker threads look values up and hold them while
 * they work, and a reloader replaces the whole contents in a loop (say, on a config
 * reload): it builds the next version in a batch, off to the side, and publishes it
 * with one swap (amap_replace). No worker ever finds a config missing (the map is
 * never empty in between) or sees a freed one; every value is destroyed exactly
 * once. At the end, the map is cleared and the old contents waited for through the
 * ticket amap_clear_async hands back.
 *
 * Build and run, with the library installed (`make -C ffi install`; docs/C-API.md):
 *   cc -std=c11 -O2 ffi/examples/service.c $(pkg-config --cflags --libs amap) -lpthread \
 *       -o service && ./service
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amap.h"

typedef struct {
    char tenant[32];
    int quota;
} tenant_config_t;

static atomic_long destroyed;
static atomic_int stop;

static void free_config(void *data, void *ctx) {
    (void)ctx;
    free(data);
    atomic_fetch_add(&destroyed, 1);
}

static void *worker(void *arg) {
    amap_t *map = arg;
    long served = 0;
    while (!atomic_load(&stop)) {
        amap_value_t *v = NULL;
        if (amap_get(map, (const uint8_t *)"tenant-7", 8, &v) == AMAP_OK) {
            const tenant_config_t *config = amap_value_data(v);
            usleep(50); /* work with the config; reloads happen meanwhile */
            if (strcmp(config->tenant, "tenant-7") != 0) abort();
            amap_value_release(v);
            served++;
        } else {
            abort(); /* a reload never leaves the map without tenant-7 */
        }
    }
    return (void *)served;
}

/* The next version of the configs, built off to the side: no reader sees it yet. */
static amap_batch_t *next_version(amap_t *map, int version) {
    amap_batch_t *batch;
    if (amap_batch_new(map, &batch) != AMAP_OK) abort();
    for (int q = 0; q < 4; q++) {
        tenant_config_t *config = malloc(sizeof *config);
        if (!config) abort();
        snprintf(config->tenant, sizeof config->tenant, "tenant-%d", 7 + q);
        config->quota = version;
        if (amap_batch_insert(batch, (const uint8_t *)config->tenant, strlen(config->tenant), config, free_config,
                              NULL) != AMAP_OK)
            abort();
    }
    return batch;
}

static void *reloader(void *arg) {
    amap_t *map = arg;
    long reloads = 0;
    while (!atomic_load(&stop)) {
        /* one swap: workers see the old version or the new, never neither */
        if (amap_replace(map, next_version(map, (int)reloads), NULL) != AMAP_OK) abort();
        reloads++;
        usleep(200);
    }
    return (void *)reloads;
}

int main(void) {
    amap_t *map = amap_new();
    if (!map) return 1;
    amap_replace(map, next_version(map, 0), NULL);
    pthread_t workers[4], reload;
    for (int i = 0; i < 4; i++) pthread_create(&workers[i], NULL, worker, map);
    pthread_create(&reload, NULL, reloader, map);
    sleep(1);
    atomic_store(&stop, 1);
    long served = 0;
    void *r;
    for (int i = 0; i < 4; i++) {
        pthread_join(workers[i], &r);
        served += (long)r;
    }
    pthread_join(reload, &r);
    amap_stats_t stats;
    amap_stats(map, &stats);
    /* O(1) clear; the ticket tells when the last version has been torn down */
    amap_ticket_t *ticket;
    if (amap_clear_async(map, &ticket) != AMAP_OK) abort();
    if (amap_ticket_wait(ticket, 10000) != AMAP_OK) abort();
    amap_ticket_free(ticket);
    amap_free(map); /* waits for the reclaimer's pending teardowns */
    printf("served %ld requests across %ld reloads (generation %llu); %ld configs destroyed\n", served,
           (long)r, (unsigned long long)stats.generation, atomic_load(&destroyed));
    return 0;
}
