#define _DEFAULT_SOURCE
/* A service-shaped program: worker threads look values up and hold them while
 * they work, another thread clears the map in a loop (say, on a config reload),
 * and a loader keeps inserting. No worker ever sees a freed value; every value is
 * destroyed exactly once.
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
            usleep(50); /* work with the config; a clear may happen meanwhile */
            if (strcmp(config->tenant, "tenant-7") != 0) abort();
            amap_value_release(v);
            served++;
        }
    }
    return (void *)served;
}

static void *reloader(void *arg) {
    amap_t *map = arg;
    long reloads = 0;
    while (!atomic_load(&stop)) {
        uint64_t retired;
        amap_clear_async(map, &retired); /* O(1): workers keep what they hold */
        for (int q = 0; q < 4; q++) {
            tenant_config_t *config = malloc(sizeof *config);
            snprintf(config->tenant, sizeof config->tenant, "tenant-%d", 7 + q);
            config->quota = q;
            amap_insert(map, (const uint8_t *)config->tenant, strlen(config->tenant), config, free_config, NULL);
        }
        reloads++;
        usleep(200);
    }
    return (void *)reloads;
}

int main(void) {
    amap_t *map = amap_new();
    if (!map) return 1;
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
    amap_free(map); /* waits for the reclaimer's pending teardowns */
    printf("served %ld requests across %ld reloads (generation %llu); %ld configs destroyed\n", served,
           (long)r, (unsigned long long)stats.generation, atomic_load(&destroyed));
    return 0;
}
