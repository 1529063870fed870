// C glue between cgo and the atomic-map C ABI: the trampolines that call back into
// Go (the destructor, the walks, Retain's predicate, Compute's function), inserts that carry a
// value's handle (an integer, never a Go pointer: handles.go) as its data, and Range's read
// section, begun, walked and ended within one cgo call (so on one thread, as a read
// section requires).
#include <stdint.h>

#include "amap.h"
#include "glue.h"
#include "_cgo_export.h"

static void go_value_dtor(void *data, void *ctx) {
    (void)ctx;
    goAtomicMapDeleteHandle((uintptr_t)data);
}

amap_status_t amap_go_insert(const amap_t *map, const uint8_t *key, size_t key_len, uintptr_t handle) {
    return amap_insert(map, key, key_len, (void *)handle, go_value_dtor, NULL);
}

amap_status_t amap_go_try_insert(const amap_t *map, const uint8_t *key, size_t key_len, uintptr_t handle,
                                amap_value_t **out_value) {
    return amap_try_insert(map, key, key_len, (void *)handle, go_value_dtor, NULL, out_value);
}

amap_status_t amap_go_batch_insert(amap_batch_t *batch, const uint8_t *key, size_t key_len, uintptr_t handle) {
    return amap_batch_insert(batch, key, key_len, (void *)handle, go_value_dtor, NULL);
}

static int32_t go_foreach(const uint8_t *key, size_t key_len, const amap_value_t *value, void *user) {
    return goAtomicMapForeach((uint8_t *)key, key_len, (amap_value_t *)value, (uintptr_t)user);
}

amap_status_t amap_go_snapshot_foreach(const amap_snapshot_t *snap, uintptr_t callback) {
    return amap_snapshot_foreach(snap, go_foreach, (void *)callback);
}

static int32_t go_range(const uint8_t *key, size_t key_len, void *data, void *user) {
    return goAtomicMapRange((uint8_t *)key, key_len, (uintptr_t)data, (uintptr_t)user);
}

// Walks the section written to `*read` by the call whose status is `begun`, and
// ends it, on the thread that began it: Map.Range's and Snapshot.Range's walk.
// (`read` by address: the begin call fills it in, and C does not order the
// evaluation of the arguments.)
static amap_status_t walk_section(amap_status_t begun, amap_read_t *const *read, uintptr_t callback) {
    if (begun != AMAP_OK) return begun;
    amap_status_t s = amap_read_for_each(*read, go_range, (void *)callback);
    amap_read_end(*read);
    return s;
}

amap_status_t amap_go_range(const amap_t *map, uintptr_t callback) {
    amap_read_t *read = NULL;
    return walk_section(amap_read_begin(map, &read), &read, callback);
}

// Snapshot.Range: a read section on the snapshot's generation, walked with
// borrowed values (Map.Range's callback).
amap_status_t amap_go_snapshot_range(const amap_snapshot_t *snap, uintptr_t callback) {
    amap_read_t *read = NULL;
    return walk_section(amap_snapshot_read_begin(snap, &read), &read, callback);
}

static void go_ticket_done(void *user) { goAtomicMapTicketDone((uintptr_t)user); }

// Ticket.Done: `done` is the handle of the channel to close.
amap_status_t amap_go_ticket_on_reclaimed(const amap_ticket_t *ticket, uintptr_t done) {
    return amap_ticket_on_reclaimed(ticket, go_ticket_done, (void *)done);
}

// amap_go_load's visit: keeps the handle (the value's data) read in the call.
static void keep_handle(void *data, void *user) { *(uintptr_t *)user = (uintptr_t)data; }

// Looks key up in a read section of one call (amap_get_with: no allocation) and
// returns the status with the value's handle, by value (an out-parameter's
// address would make the Go variable escape to the heap). The handle may be
// deleted by the time the caller resolves it (the value removed and destroyed
// meanwhile); handles are never made twice, so the caller's lookup then fails
// rather than finding another value.
amap_go_found_t amap_go_load(uintptr_t map, const uint8_t *key, size_t key_len) {
    amap_go_found_t found = {AMAP_OK, NULL, 0};
    found.status = amap_get_with((const amap_t *)map, key, key_len, keep_handle, &found.handle);
    return found;
}

// What a call that retains a value on AMAP_OK returns: the value and its handle,
// read while it is retained (so that Go resolves it without a cgo call of its own).
// The callers make the call first and then pass its out-value: C evaluates a
// call's arguments in no set order.
static amap_go_found_t retained(amap_status_t status, amap_value_t *value) {
    amap_go_found_t found = {status, value, 0};
    if (status == AMAP_OK) found.handle = (uintptr_t)amap_value_data(value);
    return found;
}

// Map.Get: retains key's value (amap_get).
amap_go_found_t amap_go_get(uintptr_t map, const uint8_t *key, size_t key_len) {
    amap_value_t *value = NULL;
    amap_status_t status = amap_get((const amap_t *)map, key, key_len, &value);
    return retained(status, value);
}

amap_status_t amap_go_value_release(uintptr_t value) {
    return amap_value_release((amap_value_t *)value);
}

// Map.LoadOrStore: maps key to the value's handle if the key is absent (AMAP_OK,
// nothing left retained), or returns the value already mapped, retained, with its
// handle (AMAP_EXISTS; the map took nothing).
amap_go_found_t amap_go_load_or_store(uintptr_t map, const uint8_t *key, size_t key_len, uintptr_t handle) {
    amap_go_found_t found = {AMAP_OK, NULL, 0};
    found.status = amap_try_insert((const amap_t *)map, key, key_len, (void *)handle, go_value_dtor, NULL,
                                   &found.value);
    if (found.status == AMAP_OK) {
        amap_value_release(found.value);
        found.value = NULL;
    } else if (found.status == AMAP_EXISTS) {
        found.handle = (uintptr_t)amap_value_data(found.value);
    }
    return found;
}

// Map.LoadAndDelete: removes key and returns the value taken out, retained, with
// its handle (AMAP_OK).
amap_go_found_t amap_go_take(uintptr_t map, const uint8_t *key, size_t key_len) {
    amap_value_t *value = NULL;
    amap_status_t status = amap_take((const amap_t *)map, key, key_len, &value);
    return retained(status, value);
}

// Map.Swap: maps key to the value's handle and returns the value it replaced,
// retained, with its handle (AMAP_OK; NULL and 0 if the key was absent).
amap_go_found_t amap_go_swap(uintptr_t map, const uint8_t *key, size_t key_len, uintptr_t handle) {
    amap_value_t *previous = NULL;
    amap_status_t status =
        amap_swap((const amap_t *)map, key, key_len, (void *)handle, go_value_dtor, NULL, &previous);
    return retained(status, previous);
}

static int32_t go_keep(const uint8_t *key, size_t key_len, void *data, void *user) {
    return goAtomicMapKeep((uint8_t *)key, key_len, (uintptr_t)data, (uintptr_t)user);
}

amap_status_t amap_go_retain(const amap_t *map, uintptr_t callback, size_t *out_removed) {
    return amap_retain(map, go_keep, (void *)callback, out_removed);
}

static int32_t go_compute(const void *current, uint8_t present, void *user, amap_new_value_t *out_new) {
    uintptr_t handle = 0;
    int32_t op = goAtomicMapCompute((uintptr_t)current, present, (uintptr_t)user, &handle);
    if (op == AMAP_COMPUTE_INSERT) {
        out_new->data = (void *)handle;
        out_new->dtor = go_value_dtor;
    }
    return op;
}

amap_status_t amap_go_compute(const amap_t *map, const uint8_t *key, size_t key_len, uintptr_t callback,
                              amap_value_t **out_value) {
    return amap_compute(map, key, key_len, go_compute, (void *)callback, out_value);
}
