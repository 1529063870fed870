// Package atomicmap is the Go binding of atomic-map: a concurrent map whose
// ClearAsync is an O(1) swap of generations, and whose values stay valid for
// whoever holds them across clears, removes and Close.
//
// Values are Go values kept through runtime/cgo.Handle: C only ever stores the
// handle (an integer), never a Go pointer. Each value's release callback runs, and
// its handle is deleted, exactly once: after the last of every generation holding
// it and every *Value obtained from Get. A *Value must be released with Release;
// one that is garbage-collected unreleased is reported as a leak (LeakedValues)
// rather than silently released.
//
// The package links the installed C library found by pkg-config (module amap),
// like any cgo package over a system library: install it first (`make -C ffi
// install`, from the repository root) and, for a prefix pkg-config does not search,
// set PKG_CONFIG_PATH to its lib/pkgconfig. See docs/BINDINGS.md.
package atomicmap

/*
#cgo pkg-config: amap
#include <stdint.h>
#include <stdlib.h>
#include "amap.h"

amap_status_t amap_go_insert(const amap_t *map, const uint8_t *key, size_t key_len, uintptr_t handle);
amap_status_t amap_go_snapshot_foreach(const amap_snapshot_t *snap, uintptr_t callback);
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync/atomic"
	"time"
	"unsafe"
)

// Error is a failed call's amap_status_t and its description.
type Error struct {
	Status int
	Text   string
}

func (e *Error) Error() string { return fmt.Sprintf("atomicmap: %s (status %d)", e.Text, e.Status) }

// ErrClosed is returned by calls on a closed Map.
var ErrClosed = errors.New("atomicmap: map is closed")

func check(status C.amap_status_t) error {
	if status == C.AMAP_OK {
		return nil
	}
	return &Error{Status: int(status), Text: C.GoString(C.amap_status_str(C.int32_t(status)))}
}

// entry is what a cgo.Handle of the map holds.
type entry struct {
	value   any
	release func(any)
}

// Map is a concurrent map from byte-string keys to Go values. Its methods are
// safe for concurrent use, except Close, which must be the last call.
type Map struct {
	ptr *C.amap_t
}

// New returns an empty map with a background reclaimer thread.
func New() *Map {
	ptr := C.amap_new()
	if ptr == nil {
		panic("atomicmap: could not create the map")
	}
	return &Map{ptr: ptr}
}

// Close frees the map, after its reclaimer has torn down what it was handed.
// Values still held through *Value or snapshots survive it. Close is idempotent.
func (m *Map) Close() {
	if m.ptr != nil {
		C.amap_free(m.ptr)
		m.ptr = nil
	}
}

func keyPtr(key []byte) (*C.uint8_t, C.size_t) {
	if len(key) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&key[0])), C.size_t(len(key))
}

// Insert maps key to value, replacing any previous value (which is released once
// nobody holds it). release, if not nil, is called exactly once with value when the
// value is destroyed, possibly on another thread, possibly after Close. The key is
// copied.
func (m *Map) Insert(key []byte, value any, release func(any)) error {
	if m.ptr == nil {
		return ErrClosed
	}
	h := cgo.NewHandle(&entry{value: value, release: release})
	k, n := keyPtr(key)
	if err := check(C.amap_go_insert(m.ptr, k, n, C.uintptr_t(h))); err != nil {
		h.Delete() // the map did not take it
		return err
	}
	runtime.KeepAlive(key)
	return nil
}

// Remove unmaps key; it reports whether the key was there.
func (m *Map) Remove(key []byte) (bool, error) {
	if m.ptr == nil {
		return false, ErrClosed
	}
	k, n := keyPtr(key)
	status := C.amap_remove(m.ptr, k, n)
	runtime.KeepAlive(key)
	if status == C.AMAP_NOT_FOUND {
		return false, nil
	}
	return status == C.AMAP_OK, check(status)
}

// Len is the number of entries in the current generation.
func (m *Map) Len() int {
	if m.ptr == nil {
		return 0
	}
	var n C.size_t
	if err := check(C.amap_len(m.ptr, &n)); err != nil {
		panic(err)
	}
	return int(n)
}

// Get returns a retained value for key. The caller must Release it; until then the
// value stays valid across ClearAsync, Remove and Close.
func (m *Map) Get(key []byte) (*Value, bool) {
	if m.ptr == nil {
		return nil, false
	}
	var out *C.amap_value_t
	k, n := keyPtr(key)
	status := C.amap_get(m.ptr, k, n, &out)
	runtime.KeepAlive(key)
	if status != C.AMAP_OK {
		return nil, false
	}
	return newValue(out), true
}

// ClearAsync retires the current generation and publishes an empty one in O(1);
// it returns the retired generation's id, for WaitReclaimed.
func (m *Map) ClearAsync() uint64 {
	var id C.uint64_t
	if m.ptr == nil {
		return 0
	}
	if err := check(C.amap_clear_async(m.ptr, &id)); err != nil {
		panic(err)
	}
	return uint64(id)
}

// WaitReclaimed waits up to timeout (negative: forever) for generation id to be
// torn down; it reports whether it was.
func (m *Map) WaitReclaimed(id uint64, timeout time.Duration) bool {
	if m.ptr == nil {
		return false
	}
	ms := int64(-1)
	if timeout >= 0 {
		ms = timeout.Milliseconds()
	}
	return C.amap_wait_reclaimed(m.ptr, C.uint64_t(id), C.int64_t(ms)) == C.AMAP_OK
}

// Reclaim tears retired generations down on the calling goroutine's thread and
// runs ripe deferred releases; it returns how many generations it tore down.
func (m *Map) Reclaim() int {
	var n C.size_t
	if m.ptr != nil {
		_ = check(C.amap_reclaim(m.ptr, &n))
	}
	return int(n)
}

// Stats are a map's generation and garbage counters.
type Stats struct {
	Generation           uint64
	RetiredGenerations   uint64
	PendingValues        uint64
	ReclaimedGenerations uint64
	ReclaimedValues      uint64
}

// Stats samples the map's counters.
func (m *Map) Stats() Stats {
	var s C.amap_stats_t
	if m.ptr != nil {
		_ = check(C.amap_stats(m.ptr, &s))
	}
	return Stats{
		Generation:           uint64(s.generation),
		RetiredGenerations:   uint64(s.retired_generations),
		PendingValues:        uint64(s.pending_values),
		ReclaimedGenerations: uint64(s.reclaimed_generations),
		ReclaimedValues:      uint64(s.reclaimed_values),
	}
}

// Value is a retained value: it holds one reference until Release.
type Value struct {
	ptr      *C.amap_value_t
	released int32
}

var leakedValues int64

// LeakedValues counts *Value objects garbage-collected without Release. Their
// values stay alive (a leak, not a crash): release every Value you get.
func LeakedValues() int64 { return atomic.LoadInt64(&leakedValues) }

func newValue(ptr *C.amap_value_t) *Value {
	v := &Value{ptr: ptr}
	runtime.SetFinalizer(v, func(v *Value) {
		if atomic.LoadInt32(&v.released) == 0 {
			atomic.AddInt64(&leakedValues, 1)
		}
	})
	return v
}

// Get returns the Go value. It panics after Release.
func (v *Value) Get() any {
	if atomic.LoadInt32(&v.released) != 0 {
		panic("atomicmap: Value used after Release")
	}
	h := cgo.Handle(uintptr(C.amap_value_data(v.ptr)))
	return h.Value().(*entry).value
}

// Retain returns a second *Value for the same value, with its own reference.
func (v *Value) Retain() *Value {
	if atomic.LoadInt32(&v.released) != 0 {
		panic("atomicmap: Value used after Release")
	}
	if err := check(C.amap_value_retain(v.ptr)); err != nil {
		panic(err)
	}
	return newValue(v.ptr)
}

// Release gives the reference back. Releasing twice panics.
func (v *Value) Release() {
	if !atomic.CompareAndSwapInt32(&v.released, 0, 1) {
		panic("atomicmap: Value released twice")
	}
	C.amap_value_release(v.ptr)
}

// Snapshot is a view of one generation: it never sees a clear.
type Snapshot struct {
	ptr *C.amap_snapshot_t
}

// Snapshot takes a snapshot of the current generation. Release it when done; it
// may outlive Close.
func (m *Map) Snapshot() *Snapshot {
	var out *C.amap_snapshot_t
	if m.ptr == nil {
		panic(ErrClosed)
	}
	if err := check(C.amap_snapshot(m.ptr, &out)); err != nil {
		panic(err)
	}
	return &Snapshot{ptr: out}
}

// Get returns a retained value for key from the snapshot's generation.
func (s *Snapshot) Get(key []byte) (*Value, bool) {
	var out *C.amap_value_t
	k, n := keyPtr(key)
	status := C.amap_snapshot_get(s.ptr, k, n, &out)
	runtime.KeepAlive(key)
	if status != C.AMAP_OK {
		return nil, false
	}
	return newValue(out), true
}

// Len is the number of entries in the snapshot's generation.
func (s *Snapshot) Len() int {
	var n C.size_t
	_ = check(C.amap_snapshot_len(s.ptr, &n))
	return int(n)
}

// ForEach calls f for each entry until it returns false. key and value are
// borrowed for the call (copy the key to keep it).
func (s *Snapshot) ForEach(f func(key []byte, value any) bool) {
	h := cgo.NewHandle(f)
	defer h.Delete()
	_ = check(C.amap_go_snapshot_foreach(s.ptr, C.uintptr_t(h)))
}

// Release releases the snapshot; calling it twice is a no-op.
func (s *Snapshot) Release() {
	if s.ptr != nil {
		C.amap_snapshot_release(s.ptr)
		s.ptr = nil
	}
}
