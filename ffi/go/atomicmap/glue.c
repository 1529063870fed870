// C glue between cgo and the atomic-map C ABI: the destructor and foreach
// trampolines that call back into Go, and an insert that carries a cgo.Handle (an
// integer, never a Go pointer) as the value's data.
#include <stdint.h>

#include "amap.h"
#include "_cgo_export.h"

static void go_value_dtor(void *data, void *ctx) {
    (void)ctx;
    goAtomicMapDeleteHandle((uintptr_t)data);
}

amap_status_t amap_go_insert(const amap_t *map, const uint8_t *key, size_t key_len, uintptr_t handle) {
    return amap_insert(map, key, key_len, (void *)handle, go_value_dtor, NULL);
}

static int32_t go_foreach(const uint8_t *key, size_t key_len, const amap_value_t *value, void *user) {
    return goAtomicMapForeach((uint8_t *)key, key_len, (amap_value_t *)value, (uintptr_t)user);
}

amap_status_t amap_go_snapshot_foreach(const amap_snapshot_t *snap, uintptr_t callback) {
    return amap_snapshot_foreach(snap, go_foreach, (void *)callback);
}
