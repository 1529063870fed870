// The C glue's functions (glue.c), which the Go side calls through cgo.
#ifndef ATOMICMAP_GO_GLUE_H
#define ATOMICMAP_GO_GLUE_H

#include <stddef.h>
#include <stdint.h>

#include "amap.h"

amap_status_t amap_go_insert(const amap_t *map, const uint8_t *key, size_t key_len, uintptr_t handle);
amap_status_t amap_go_try_insert(const amap_t *map, const uint8_t *key, size_t key_len, uintptr_t handle,
                                amap_value_t **out_value);
amap_status_t amap_go_batch_insert(amap_batch_t *batch, const uint8_t *key, size_t key_len, uintptr_t handle);
amap_status_t amap_go_snapshot_foreach(const amap_snapshot_t *snap, uintptr_t callback);
amap_status_t amap_go_range(const amap_t *map, uintptr_t callback);
amap_status_t amap_go_snapshot_range(const amap_snapshot_t *snap, uintptr_t callback);
amap_status_t amap_go_ticket_on_reclaimed(const amap_ticket_t *ticket, uintptr_t done);
amap_status_t amap_go_retain(const amap_t *map, uintptr_t callback, size_t *out_removed);
amap_status_t amap_go_compute(const amap_t *map, const uint8_t *key, size_t key_len, uintptr_t callback,
                              amap_value_t **out_value);
// The hot calls take the map and the value as integers: cgo boxes a pointer to an
// incomplete C type into an interface for its pointer check, an allocation per
// call (runtime.convT64, seen in Load's profile), which an integer skips. The
// pointers are C memory, which Go's collector neither moves nor frees.

// What the glue's lookups return: the status and the value's handle (for
// amap_go_load, on AMAP_OK), with the value itself, retained, where the call says
// so (amap_go_get and amap_go_take on AMAP_OK, amap_go_load_or_store on
// AMAP_EXISTS, amap_go_swap on AMAP_OK if the key was present).
typedef struct {
    amap_status_t status;
    amap_value_t *value;
    uintptr_t handle;
} amap_go_found_t;
amap_go_found_t amap_go_load(uintptr_t map, const uint8_t *key, size_t key_len);
amap_go_found_t amap_go_get(uintptr_t map, const uint8_t *key, size_t key_len);
amap_status_t amap_go_value_release(uintptr_t value);
amap_go_found_t amap_go_load_or_store(uintptr_t map, const uint8_t *key, size_t key_len, uintptr_t handle);
amap_go_found_t amap_go_take(uintptr_t map, const uint8_t *key, size_t key_len);
amap_go_found_t amap_go_swap(uintptr_t map, const uint8_t *key, size_t key_len, uintptr_t handle);

#endif
