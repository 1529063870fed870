// Package atomicmap is the Go binding of atomic-map: a concurrent map whose
// ClearAsync is an O(1) swap of generations, and whose values stay valid for
// whoever holds them across clears, removes and Close.
//
// Values are Go values kept behind integer handles (handles.go): C only ever
// stores the handle, never a Go pointer. Each value's release callback runs, and
// its handle is deleted, exactly once: after the last of every generation holding
// it and every *Value obtained from Get. A *Value must be released with Release;
// with TrackLeaks on, one that is garbage-collected unreleased is reported as a
// leak (LeakedValues) rather than silently released.
//
// Load reads a value with nothing to release (a read section, no reference
// counted), as sync.Map's Load does; Get holds it in the map's terms, delaying its
// release callback until Release.
//
// A reload builds the next contents in a Batch, off to the side, and publishes
// them all at once with Replace: readers see the old contents or the new, never a
// mix and never an empty map. ClearAsync and Replace return a *Ticket that tells
// when the old contents have been torn down. Range walks the current contents
// inside one read section.
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
#include "glue.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/cgo"
	"sync"
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

// ErrBatchUsed is returned by calls on a Batch already published or discarded.
var ErrBatchUsed = errors.New("atomicmap: batch already published or discarded")

func check(status C.amap_status_t) error {
	if status == C.AMAP_OK {
		return nil
	}
	return &Error{Status: int(status), Text: C.GoString(C.amap_status_str(C.int32_t(status)))}
}

// entry is what a value's handle (valueHandles) resolves to.
type entry struct {
	value   any
	release func(any)
	// handle is the entry's own handle: a resolution checks it, so that a
	// deleted handle whose slot holds a newer entry is not taken for it.
	handle uintptr
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

// Options for NewWithOptions; the zero value gives New's map.
type Options struct {
	// Manual: no background thread; retired generations and released values wait
	// for Reclaim (on this map's reclaimer, a manual one of its own).
	Manual bool
	// Shards per generation's table; 0 for the default (4 × CPUs), at most
	// 65,536.
	Shards int
	// Reclaimer, if not nil: the map's reclaimer instead of the one Manual names
	// (its own mode applies). The map keeps it alive; it may be freed at once.
	Reclaimer *Reclaimer
	// DestructorsOnReleasingThreads lets threads that release the map's values
	// run their destructors, a batch at a time after their grace period
	// (amap_options_t.destructors_on_releasing_threads): the value's handle is
	// then deleted on a thread calling into the map, not on the reclaimer's.
	DestructorsOnReleasingThreads bool
	// Capacity, if not 0: room for this many entries in the first generation
	// (Reserve, right after the map is made), as make(map[K]V, n)'s hint.
	Capacity int
	// Hasher: the keys' hash function (amap_options_t.hasher). The zero value,
	// HasherFast, is the default.
	Hasher Hasher
}

// Hasher names a map's hash function for its keys; either way its seeds come
// from the operating system's randomness, distinct for each map.
type Hasher uint8

const (
	// HasherFast is foldhash (the default): much faster than SipHash, but it
	// does not claim to withstand an attacker who watches the program (the
	// order Range yields, timings) to recover its seeds and choose colliding keys.
	HasherFast Hasher = C.AMAP_HASHER_FAST
	// HasherSipHash is SipHash-1-3, as Rust's HashMap uses: for keys an attacker
	// may choose while watching the program.
	HasherSipHash Hasher = C.AMAP_HASHER_SIPHASH
)

// NewWithOptions returns an empty map built with o.
func NewWithOptions(o Options) (*Map, error) {
	var c C.amap_options_t
	if err := check(C.amap_options_init(&c)); err != nil {
		return nil, err
	}
	if o.Manual {
		c.reclaim_mode = C.AMAP_RECLAIM_MANUAL
	}
	if o.Shards < 0 {
		return nil, &Error{Status: int(C.AMAP_INVALID_ARGUMENT), Text: "negative shard count"}
	}
	if o.Capacity < 0 {
		return nil, &Error{Status: int(C.AMAP_INVALID_ARGUMENT), Text: "negative capacity"}
	}
	c.shards = C.size_t(o.Shards)
	if o.DestructorsOnReleasingThreads {
		c.destructors_on_releasing_threads = 1
	}
	c.hasher = C.uint8_t(o.Hasher)
	var ptr *C.amap_t
	var status C.amap_status_t
	if o.Reclaimer != nil {
		if o.Reclaimer.ptr == nil {
			return nil, ErrReclaimerFreed
		}
		status = C.amap_new_with_reclaimer(&c, o.Reclaimer.ptr, &ptr)
	} else {
		status = C.amap_new_with(&c, &ptr)
	}
	if err := check(status); err != nil {
		return nil, err
	}
	if o.Capacity > 0 {
		if err := check(C.amap_reserve(ptr, C.size_t(o.Capacity))); err != nil {
			C.amap_free(ptr)
			return nil, err
		}
	}
	return &Map{ptr: ptr}, nil
}

// ErrReclaimerFreed is returned when a freed Reclaimer is used.
var ErrReclaimerFreed = errors.New("atomicmap: reclaimer already freed")

// Reclaimer is a reclaimer of the program's own, for maps whose release callbacks
// are slow (they take locks, do I/O): given to them through Options.Reclaimer, it
// tears their generations down and runs their release callbacks on a thread of
// its own (or, manual, on the threads that call Reclaim and Flush), so that they
// never delay the other maps' reclamation, nor do the others delay them. Its
// methods are safe for concurrent use, except Free, which must be the last call.
// Like a Map, a Reclaimer has no finalizer: call Free (a manual reclaimer whose
// maps are all closed runs its last passes, release callbacks included, in Free).
type Reclaimer struct {
	ptr *C.amap_reclaimer_t
}

// NewReclaimer returns a reclaimer with a background thread of its own, or with
// none if manual is true.
func NewReclaimer(manual bool) (*Reclaimer, error) {
	mode := C.uint32_t(C.AMAP_RECLAIM_BACKGROUND)
	if manual {
		mode = C.AMAP_RECLAIM_MANUAL
	}
	var ptr *C.amap_reclaimer_t
	if err := check(C.amap_reclaimer_new(mode, &ptr)); err != nil {
		return nil, err
	}
	return &Reclaimer{ptr: ptr}, nil
}

// Reclaim runs one reclamation pass on the calling goroutine's thread for every
// map of this reclaimer (release callbacks included); it returns how many
// generations it tore down. A cleared generation waits for a grace period (readers
// may still be in it): when no other thread is pinned meanwhile (a read section,
// another reclaimer's pass), one call tears it down; otherwise a later call does.
// In manual mode, call it periodically rather than once.
func (r *Reclaimer) Reclaim() int {
	var n C.size_t
	if r != nil && r.ptr != nil {
		_ = check(C.amap_reclaimer_reclaim(r.ptr, &n))
	}
	return int(n)
}

// Flush destroys everything released to this reclaimer and not yet destroyed; it
// reports whether that was done within timeout (negative: without limit, as for
// Ticket.Wait; a part of a millisecond counts as one). A read section left open
// holds it up; from a release callback this reclaimer runs, it returns false at
// once.
func (r *Reclaimer) Flush(timeout time.Duration) bool {
	if r == nil || r.ptr == nil {
		return false
	}
	return C.amap_reclaimer_flush(r.ptr, flushMillis(timeout)) == C.AMAP_OK
}

// Free releases the program's handle; the maps built on the reclaimer keep using
// it (its thread exits once they are closed and their last value is released). It
// is idempotent.
func (r *Reclaimer) Free() {
	if r != nil && r.ptr != nil {
		C.amap_reclaimer_free(r.ptr)
		r.ptr = nil
	}
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
	h := newValueHandle(value, release)
	k, n := keyPtr(key)
	status := C.amap_go_insert(m.ptr, k, n, C.uintptr_t(h))
	runtime.KeepAlive(key)
	if status != C.AMAP_OK {
		untaken(h, status)
		return check(status)
	}
	return nil
}

// newValueHandle makes the handle a value crosses into C as. Every handle is
// deleted exactly once, by the value's destructor or by the call that did not
// hand it over (the tests check that valueHandles.liveCount comes back).
func newValueHandle(value any, release func(any)) uintptr {
	return valueHandles.make(&entry{value: value, release: release})
}

// deleteValueHandle deletes a value's handle (once) and returns its entry.
func deleteValueHandle(h uintptr) *entry {
	return valueHandles.delete(h)
}

// untaken deletes the handle of a value that a call did not take (its status is
// not AMAP_OK). After AMAP_PANIC the library may already have destroyed the value,
// deleting the handle: it is left alone then (a leak at worst, never a second
// Delete, which would panic or free another value's handle).
func untaken(h uintptr, status C.amap_status_t) {
	if status != C.AMAP_PANIC {
		deleteValueHandle(h)
	}
}

// TryInsert maps key to value only if the key is absent, in one step with respect
// to other writers of the key (a Get followed by an Insert could let two
// goroutines both insert, one replacing the other's value). It returns the value
// now mapped, retained (the new one, or the one already there: Release it), and
// whether it was inserted. If it was not, the map took nothing and release is
// never called for value.
func (m *Map) TryInsert(key []byte, value any, release func(any)) (*Value, bool, error) {
	if m.ptr == nil {
		return nil, false, ErrClosed
	}
	h := newValueHandle(value, release)
	var out *C.amap_value_t
	k, n := keyPtr(key)
	status := C.amap_go_try_insert(m.ptr, k, n, C.uintptr_t(h), &out)
	runtime.KeepAlive(key)
	switch status {
	case C.AMAP_OK:
		return newValue(out), true, nil
	case C.AMAP_EXISTS:
		untaken(h, status)
		return newValue(out), false, nil
	default:
		untaken(h, status)
		return nil, false, check(status)
	}
}

// Op is what a Compute function decides for its entry.
type Op int

const (
	// ComputeInsert maps the key to the value the function returned (inserting
	// it, or replacing the current value, which is released as by Insert).
	ComputeInsert Op = iota
	// ComputeRemove unmaps the key (nothing happens if it is absent); the value is
	// released as by Remove.
	ComputeRemove
	// ComputeKeep leaves the entry as it is: the same value stays mapped, or the
	// key stays absent.
	ComputeKeep
)

// Compute sets the entry of key to what f decides from its current value
// (present false: the key is absent), in one step with respect to other writers
// of the key: a counter's increment, a merge, an insert-or-update, a
// remove-when-empty, with no update lost to a racing writer (a Get followed by an
// Insert could let two goroutines both read the old value). f returns the Op, and
// with ComputeInsert the new value and its release function (as Insert takes
// them; ignored for the other ops). It returns the value mapped after the call,
// retained (Release it), or nil if the key is absent after it.
//
// f runs once, under the write lock of the key's shard: it must not write to this
// map (a write to the locked shard would wait for itself), nor to a map another
// goroutine may be computing on with a function that writes to this one, nor wait
// for reclamation (Reclaimer.Flush, Close; Ticket.Wait on a Ticket of this map
// returns false at once there) or run it (Reclaim,
// Reclaimer.Reclaim, Batch.Discard: a release function may write to this map);
// reads are fine. current is borrowed for the call: read it, never change it
// (readers may be reading it meanwhile). An Op other than the three leaves the entry as it was
// and returns an error (status AMAP_INVALID_ARGUMENT). A panic in f leaves the
// entry as it was and is raised again from Compute.
func (m *Map) Compute(key []byte, f func(current any, present bool) (op Op, value any, release func(any))) (*Value, error) {
	return m.compute(key, f, true)
}

// compute is Compute, returning the value mapped after the call only if
// wantValue (without it, no *Value is made and none is released: one cgo call).
func (m *Map) compute(key []byte, f func(current any, present bool) (op Op, value any, release func(any)), wantValue bool) (*Value, error) {
	if m.ptr == nil {
		return nil, ErrClosed
	}
	call := &computeCall{f: f}
	h := cgo.NewHandle(call)
	defer h.Delete()
	var out *C.amap_value_t
	outPtr := &out
	if !wantValue {
		outPtr = nil
	}
	k, n := keyPtr(key)
	status := C.amap_go_compute(m.ptr, k, n, C.uintptr_t(h), outPtr)
	runtime.KeepAlive(key)
	if call.made && status != C.AMAP_OK {
		untaken(call.handle, status)
	}
	var now *Value
	if status == C.AMAP_OK && out != nil {
		now = newValue(out)
	}
	if call.failed {
		if now != nil {
			now.Release()
		}
		panic(call.panicked)
	}
	return now, check(status)
}

// computeCall is what a Compute callback's handle holds: the function, the handle
// of the value it made (if it asked for ComputeInsert), and a panic it raised,
// carried back across the C frames (never through them).
type computeCall struct {
	f        func(current any, present bool) (Op, any, func(any))
	made     bool
	handle   uintptr
	failed   bool
	panicked any
}

// decide runs the function on the current value and returns the C answer, with
// the new value's handle in *out for ComputeInsert; after a panic (recorded, to
// be raised again after the C call) it keeps the entry.
func (c *computeCall) decide(current any, present bool, out *C.uintptr_t) (answer C.int32_t) {
	returned := false
	defer func() {
		if !returned {
			c.failed, c.panicked = true, recover()
			answer = C.AMAP_COMPUTE_KEEP
		}
	}()
	op, value, release := c.f(current, present)
	switch op {
	case ComputeInsert:
		// A panic here (out of value handles) is caught as f's own would be.
		c.handle, c.made = newValueHandle(value, release), true
		*out = C.uintptr_t(c.handle)
		answer = C.AMAP_COMPUTE_INSERT
	case ComputeRemove:
		answer = C.AMAP_COMPUTE_REMOVE
	case ComputeKeep:
		answer = C.AMAP_COMPUTE_KEEP
	default:
		answer = -1 // amap_compute answers AMAP_INVALID_ARGUMENT, the entry unchanged
	}
	returned = true
	return answer
}

// Take unmaps key and returns the value it took out, retained (Release it): the
// value no other writer can have replaced in between, where Get then Remove could
// remove a newer one. It reports false if the key was absent.
func (m *Map) Take(key []byte) (*Value, bool, error) {
	if m.ptr == nil {
		return nil, false, ErrClosed
	}
	var out *C.amap_value_t
	k, n := keyPtr(key)
	status := C.amap_take(m.ptr, k, n, &out)
	runtime.KeepAlive(key)
	if status == C.AMAP_NOT_FOUND {
		return nil, false, nil
	}
	if err := check(status); err != nil {
		return nil, false, err
	}
	return newValue(out), true, nil
}

// RemoveIfSame unmaps key only if it still maps to the value expected holds (by
// identity, not by equality of the Go values), in one step: a newer value inserted
// meanwhile stays. It reports whether it removed the entry. expected stays the
// caller's (still to be released); it panics if expected was released.
func (m *Map) RemoveIfSame(key []byte, expected *Value) (bool, error) {
	if m.ptr == nil {
		return false, ErrClosed
	}
	if atomic.LoadInt32(&expected.released) != 0 {
		panic("atomicmap: Value used after Release")
	}
	k, n := keyPtr(key)
	status := C.amap_remove_if_same(m.ptr, k, n, expected.ptr)
	runtime.KeepAlive(key)
	runtime.KeepAlive(expected)
	if status == C.AMAP_NOT_FOUND {
		return false, nil
	}
	return status == C.AMAP_OK, check(status)
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

// LoadOrStore returns the Go value mapped to key (loaded true) or, if the key is
// absent, maps it to value (release as in Insert) and returns value, in one step
// with respect to other writers of the key, as sync.Map's LoadOrStore does:
// nothing to release. If it loaded, the map took nothing, and release is never
// called for value. TryInsert does the same and holds the value in the map's terms
// (a *Value); LoadOrStore, like Load, hands out the Go value only, whose release
// callback may run as soon as the key is removed.
func (m *Map) LoadOrStore(key []byte, value any, release func(any)) (actual any, loaded bool, err error) {
	if m.ptr == nil {
		return nil, false, ErrClosed
	}
	h := newValueHandle(value, release)
	k, n := keyPtr(key)
	found := C.amap_go_load_or_store(m.cptr(), k, n, C.uintptr_t(h))
	runtime.KeepAlive(key)
	switch found.status {
	case C.AMAP_OK:
		return value, false, nil
	case C.AMAP_EXISTS:
		untaken(h, found.status)
		defer releaseValue(found.value)
		return valueHandles.mustEntry(uintptr(found.handle)).value, true, nil
	default:
		untaken(h, found.status)
		return nil, false, check(found.status)
	}
}

// LoadAndDelete unmaps key and returns the Go value it took out (loaded true), or
// reports the key absent, as sync.Map's LoadAndDelete does: nothing to release.
// The value's release callback runs once nobody else holds it, possibly before
// the caller uses the value: use Take to hold it in the map's terms.
func (m *Map) LoadAndDelete(key []byte) (value any, loaded bool, err error) {
	if m.ptr == nil {
		return nil, false, ErrClosed
	}
	k, n := keyPtr(key)
	found := C.amap_go_take(m.cptr(), k, n)
	runtime.KeepAlive(key)
	switch found.status {
	case C.AMAP_OK:
		defer releaseValue(found.value)
		return valueHandles.mustEntry(uintptr(found.handle)).value, true, nil
	case C.AMAP_NOT_FOUND:
		return nil, false, nil
	default:
		return nil, false, check(found.status)
	}
}

// Swap maps key to value (release as in Insert) and returns the Go value it
// replaced (loaded true), or reports the key absent, in one step with respect to
// other writers of the key, as sync.Map's Swap does: nothing to release. The
// replaced value's release callback runs once nobody else holds it, possibly
// before the caller uses the value. On an error the map took nothing, and release
// is never called for value.
func (m *Map) Swap(key []byte, value any, release func(any)) (previous any, loaded bool, err error) {
	if m.ptr == nil {
		return nil, false, ErrClosed
	}
	h := newValueHandle(value, release)
	k, n := keyPtr(key)
	found := C.amap_go_swap(m.cptr(), k, n, C.uintptr_t(h))
	runtime.KeepAlive(key)
	if found.status != C.AMAP_OK {
		untaken(h, found.status)
		return nil, false, check(found.status)
	}
	if found.value == nil {
		return nil, false, nil
	}
	defer releaseValue(found.value)
	return valueHandles.mustEntry(uintptr(found.handle)).value, true, nil
}

// CompareAndSwap maps key to new (release as in Insert) if its current Go value
// equals old (==), in one step with respect to other writers of the key, as
// sync.Map's CompareAndSwap does, and returns whether it did; the replaced value
// is released as by Insert. An absent key is never swapped. If it did not swap,
// the map took nothing, and release is never called for new. As with sync.Map,
// it panics when the key is present and its value and old are of the same type
// that is not comparable (the entry stays as it was). It runs as Compute does,
// under the key's shard lock, with a cgo callback into Go: so, as any write, it
// must not be called from a Compute or Retain function on this map.
func (m *Map) CompareAndSwap(key []byte, old, new any, release func(any)) (swapped bool, err error) {
	return m.compareAnd(key, old, ComputeInsert, new, release)
}

// CompareAndDelete unmaps key if its current Go value equals old (==), in one
// step with respect to other writers of the key, as sync.Map's CompareAndDelete
// does, and returns whether it did (false for an absent key); the value is
// released as by Remove. It panics as CompareAndSwap does and runs as it does.
func (m *Map) CompareAndDelete(key []byte, old any) (deleted bool, err error) {
	return m.compareAnd(key, old, ComputeRemove, nil, nil)
}

// compareAnd does op (with value and release for ComputeInsert) if key is present
// and its value equals old, in one Compute that hands no value back, and returns
// whether it did.
func (m *Map) compareAnd(key []byte, old any, op Op, value any, release func(any)) (bool, error) {
	decided := false
	_, err := m.compute(key, func(current any, present bool) (Op, any, func(any)) {
		decided = present && current == old
		if decided {
			return op, value, release
		}
		return ComputeKeep, nil, nil
	}, false)
	return decided && err == nil, err
}

// cptr is the map's C pointer as an integer, for the glue's hot calls (glue.h
// says why).
func (m *Map) cptr() C.uintptr_t {
	return C.uintptr_t(uintptr(unsafe.Pointer(m.ptr)))
}

// releaseValue gives back one reference to a retained value (through the glue,
// with the pointer as an integer: glue.h).
func releaseValue(v *C.amap_value_t) {
	C.amap_go_value_release(C.uintptr_t(uintptr(unsafe.Pointer(v))))
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

// Capacity is how many entries the current generation holds before its table
// grows: 0 for a new map, and after ClearAsync.
func (m *Map) Capacity() int {
	if m.ptr == nil {
		return 0
	}
	var n C.size_t
	if err := check(C.amap_capacity(m.ptr, &n)); err != nil {
		panic(err)
	}
	return int(n)
}

// Reserve makes room for n more entries in the current generation, so that
// inserting them rehashes no shard on the way: the capacity hint of
// make(map[K]V, n), given after the map is made. It returns an *Error for a
// negative n or room past what memory can count (the map unchanged), or for an
// array the system refused (the shards reserved before it keep their room). It
// must not be called from a Compute or Retain callback on the same map.
func (m *Map) Reserve(n int) error {
	if m.ptr == nil {
		return ErrClosed
	}
	if n < 0 {
		return &Error{Status: int(C.AMAP_INVALID_ARGUMENT), Text: "negative reservation"}
	}
	return check(C.amap_reserve(m.ptr, C.size_t(n)))
}

// ShrinkToFit moves each shard of the current generation to the smallest array
// that holds its entries (none for an empty one), after an eviction or a purge
// left it larger than it needs. Values, holders and readers are untouched. It must
// not be called from a Compute or Retain callback on the same map.
func (m *Map) ShrinkToFit() error {
	if m.ptr == nil {
		return ErrClosed
	}
	return check(C.amap_shrink_to_fit(m.ptr))
}

// Get returns a retained value for key. The caller must Release it; until then the
// value stays valid across ClearAsync, Remove and Close.
func (m *Map) Get(key []byte) (*Value, bool) {
	if m.ptr == nil {
		return nil, false
	}
	k, n := keyPtr(key)
	found := C.amap_go_get(m.cptr(), k, n)
	runtime.KeepAlive(key)
	if found.status != C.AMAP_OK {
		return nil, false
	}
	return newValueOf(found.value, uintptr(found.handle)), true
}

// Load returns the Go value mapped to key, as sync.Map's Load does: nothing to
// release, no reference count touched, one cgo call (Get, Value.Get and Release
// make two, and a *Value). The key is looked up in a read section of that call
// (amap_get_with); the value's handle is resolved after it. If
// the value was removed or replaced and then destroyed in between (its handle
// deleted; handles are never made twice), Load looks the key up again: a key
// mapped throughout is never reported absent. The Go value returned then lives as
// long as the caller keeps it, like any Go value, whatever the map does. Use Get
// to hold a value in the map's terms (its release callback, which may free C
// memory or close a file, waits for Release).
func (m *Map) Load(key []byte) (value any, ok bool) {
	if m.ptr == nil {
		return nil, false
	}
	k, n := keyPtr(key)
	for {
		found := C.amap_go_load(m.cptr(), k, n)
		if hook := afterLoadLookup.Load(); hook != nil {
			(*hook)()
		}
		switch found.status {
		case C.AMAP_OK:
			if e, live := valueHandles.entry(uintptr(found.handle)); live {
				runtime.KeepAlive(key)
				return e.value, true
			}
			// Each time round, another writer of the key has made progress.
			atomic.AddInt64(&loadsOfDestroyedValues, 1)
		case C.AMAP_NOT_FOUND:
			runtime.KeepAlive(key)
			return nil, false
		default:
			panic(check(found.status))
		}
	}
}

// afterLoadLookup, if not nil, runs in Load between the lookup and the handle's
// resolution (for the tests, which destroy the value there).
var afterLoadLookup atomic.Pointer[func()]

// loadsOfDestroyedValues counts the lookups of Load whose value was destroyed
// before its handle was resolved, each followed by another lookup (for the tests).
var loadsOfDestroyedValues int64

// Contains reports whether the current generation maps key.
func (m *Map) Contains(key []byte) bool {
	if m.ptr == nil {
		return false
	}
	var present C.uint8_t
	k, n := keyPtr(key)
	err := check(C.amap_contains(m.ptr, k, n, &present))
	runtime.KeepAlive(key)
	if err != nil {
		panic(err)
	}
	return present != 0
}

// Flush runs the destructors (release callbacks) of everything the map released
// before the call: removed, replaced and cleared values, on the map's reclaimer,
// waiting at most timeout (a negative timeout waits as long as it takes). It
// returns false if the timeout passed first (a read section or snapshot held
// elsewhere keeps a grace period open) or when called from a release callback
// that the same reclaimer is running. Call it before a process exits when release
// callbacks have effects outside the process.
func (m *Map) Flush(timeout time.Duration) bool {
	if m.ptr == nil {
		return false
	}
	return C.amap_flush(m.ptr, flushMillis(timeout)) == C.AMAP_OK
}

// flushMillis is a flush's timeout in the C ABI's milliseconds: rounded up,
// and UINT32_MAX (no limit) for a negative or overlong one.
func flushMillis(timeout time.Duration) C.uint32_t {
	ms := int64(1<<32 - 1)
	if timeout >= 0 && timeout < time.Duration(ms)*time.Millisecond {
		ms = int64((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	return C.uint32_t(ms)
}

// ClearAsync retires the current generation and publishes an empty one in O(1);
// it returns a ticket for the retired generation (ignore it if not needed).
func (m *Map) ClearAsync() *Ticket {
	if m.ptr == nil {
		return nil
	}
	var t *C.amap_ticket_t
	if err := check(C.amap_clear_async(m.ptr, &t)); err != nil {
		panic(err)
	}
	return newTicket(t)
}

// Replace publishes b as the map's whole contents with one swap: readers see the
// old contents or the new, never a mix and never an empty map. It consumes b (made
// by this map's NewBatch), whatever the outcome; on an error b's values are
// released. It returns a ticket for the retired generation.
func (m *Map) Replace(b *Batch) (*Ticket, error) {
	if b == nil || b.ptr == nil {
		return nil, ErrBatchUsed
	}
	ptr := b.ptr
	b.ptr = nil // consumed, whatever happens
	runtime.SetFinalizer(b, nil)
	if m.ptr == nil {
		C.amap_batch_free(ptr)
		return nil, ErrClosed
	}
	var t *C.amap_ticket_t
	if err := check(C.amap_replace(m.ptr, ptr, &t)); err != nil {
		return nil, err
	}
	return newTicket(t), nil
}

// Retain keeps only the entries of the current generation for which keep returns
// true (cache eviction), and returns how many it removed. It visits one shard at a
// time under that shard's write lock, so keep must not write to this map (a write
// to the shard being visited would wait for itself), nor to a map another goroutine
// may be retaining with a function that writes to this one, nor wait for this
// map's reclamation (Close; Wait on a Ticket of its clears returns false at
// once there: the shard lock holds up the release of its retired generations),
// nor flush (Flush of any map or
// Reclaimer.Flush: a flush waits for every map on the reclaimer), nor reclaim
// (Reclaim, or Wait on a manual map's Ticket: a destructor run there may write to
// this map); reads are fine. No epoch is pinned meanwhile, so reclamation goes on
// while it runs. Removed
// values are released as by Remove: holders keep them. key is borrowed for the
// call. A panic in keep keeps that entry and every later one, and is raised again
// from Retain.
func (m *Map) Retain(keep func(key []byte, value any) bool) (int, error) {
	if m.ptr == nil {
		return 0, ErrClosed
	}
	walk := &rangeWalk{f: keep}
	h := cgo.NewHandle(walk)
	defer h.Delete()
	var removed C.size_t
	err := check(C.amap_go_retain(m.ptr, C.uintptr_t(h), &removed))
	if walk.failed {
		panic(walk.panicked)
	}
	return int(removed), err
}

// Range calls f for each entry of the current generation until f returns false,
// inside one read section (no reference count is touched, and no lock is held
// while f runs: f may call into the map, even write to it). Entries written while
// Range runs may or may not be seen; entries of a later generation never are. key
// is borrowed for the call (copy it to keep it). A panic in f stops the walk, ends
// the read section and is raised again from Range.
func (m *Map) Range(f func(key []byte, value any) bool) {
	if m.ptr == nil {
		return
	}
	runWalk(f, func(h C.uintptr_t) C.amap_status_t { return C.amap_go_range(m.ptr, h) })
}

// runWalk runs a walk of f through the C call `walk`, given the handle of the
// walk's state: a panic of f is raised again here, after the C frames are gone,
// and so is an error of the call.
func runWalk(f func(key []byte, value any) bool, walk func(h C.uintptr_t) C.amap_status_t) {
	w := &rangeWalk{f: f}
	h := cgo.NewHandle(w)
	defer h.Delete()
	err := check(walk(C.uintptr_t(h)))
	if w.failed {
		panic(w.panicked)
	}
	if err != nil {
		panic(err)
	}
}

// rangeWalk is what a Range, ForEach or Retain callback's handle holds: the function, and
// a panic it raised, carried back across the C frames (never through them).
type rangeWalk struct {
	f        func(key []byte, value any) bool
	failed   bool // f panicked (possibly with nil, which recover cannot tell apart)
	panicked any
}

// call runs the walk's function on e and returns its answer; once the function
// has panicked (the panic recorded, to be raised again after the C call), it
// returns onPanic instead, and the function is not called again.
func (w *rangeWalk) call(e walkEntry, onPanic bool) (answer bool) {
	if w.failed {
		return onPanic
	}
	returned := false
	defer func() {
		if !returned {
			// A panic, `panic(nil)` included (recover gives nil for it before Go
			// 1.21): f did not return.
			w.failed, w.panicked = true, recover()
			answer = onPanic
		}
	}()
	answer = w.f(e.key, e.value)
	returned = true
	return answer
}

// Ticket is a retired generation's ticket, from ClearAsync or Replace: it tells
// whether, and waits until, the generation has been torn down. It does not hold
// the generation and may outlive the Map. Free releases it; a Ticket collected
// by the GC is freed by a finalizer.
type Ticket struct {
	ptr *C.amap_ticket_t
	// Done's channel, made and registered by its first call.
	doneOnce sync.Once
	done     chan struct{}
}

func newTicket(ptr *C.amap_ticket_t) *Ticket {
	t := &Ticket{ptr: ptr}
	runtime.SetFinalizer(t, (*Ticket).Free)
	return t
}

// Wait waits up to timeout (negative: without limit) for the generation to be
// torn down; it reports whether it was. Called from a value's release callback run
// by the reclaimer, in a read section whose pin holds the teardown up (one begun
// before the clear, on this goroutine's locked thread), or in a function that the
// ticket's own map runs under its shard lock (Retain's keep, Compute's function),
// it returns false at once.
func (t *Ticket) Wait(timeout time.Duration) bool {
	if t == nil || t.ptr == nil {
		return false
	}
	ms := int64(-1)
	if timeout >= 0 {
		ms = timeout.Milliseconds()
	}
	ok := C.amap_ticket_wait(t.ptr, C.int64_t(ms)) == C.AMAP_OK
	runtime.KeepAlive(t) // not freed by the finalizer during the call
	return ok
}

// IsReclaimed reports whether the generation has been torn down (never blocks).
func (t *Ticket) IsReclaimed() bool {
	if t == nil || t.ptr == nil {
		return false
	}
	var r C.uint8_t
	err := check(C.amap_ticket_is_reclaimed(t.ptr, &r))
	runtime.KeepAlive(t)
	if err != nil {
		panic(err)
	}
	return r != 0
}

// ID is the retired generation's id (the map's first generation is 0).
func (t *Ticket) ID() uint64 {
	if t == nil || t.ptr == nil {
		return 0
	}
	var id C.uint64_t
	err := check(C.amap_ticket_id(t.ptr, &id))
	runtime.KeepAlive(t)
	if err != nil {
		panic(err)
	}
	return uint64(id)
}

// Done returns a channel that is closed once the generation has been torn down,
// for a select beside other events; no goroutine waits meanwhile
// (amap_ticket_on_reclaimed). Every call returns the same channel. The
// registration belongs to the generation: the channel still closes after Free.
// The reclaimer closes it right after the teardown (in manual mode, the
// goroutine whose Reclaim or Wait tears the generation down); if the generation
// is never torn down (a Snapshot of it never released), it never closes (and
// its registration stays). Receiving from it gets none of Wait's refusals: in a
// release callback run by the reclaimer, in a Retain or Compute function of the
// ticket's own map, or in a Range (or another read section) begun before the
// clear, it never returns, where Wait returns false at once. Called first after
// Free, or on a nil Ticket, it panics (a nil channel would block forever).
func (t *Ticket) Done() <-chan struct{} {
	if t == nil {
		panic("atomicmap: Done on a nil Ticket")
	}
	t.doneOnce.Do(func() {
		if t.ptr == nil {
			return
		}
		done := make(chan struct{})
		h := cgo.NewHandle(done)
		if err := check(C.amap_go_ticket_on_reclaimed(t.ptr, C.uintptr_t(h))); err != nil {
			h.Delete()
			panic(err)
		}
		runtime.KeepAlive(t)
		t.done = done
	})
	if t.done == nil {
		panic("atomicmap: Done called first on a freed Ticket")
	}
	return t.done
}

// Free releases the ticket (the generation is torn down all the same). It is
// idempotent and must be the last call on the ticket.
func (t *Ticket) Free() {
	if t != nil && t.ptr != nil {
		C.amap_ticket_free(t.ptr)
		t.ptr = nil
		runtime.SetFinalizer(t, nil)
	}
}

// Batch is the next contents of one Map, built off to the side and invisible to
// readers until Map.Replace publishes it. Not safe for concurrent use. A Batch
// neither published nor discarded is discarded by a finalizer when collected.
type Batch struct {
	ptr *C.amap_batch_t
}

// NewBatch returns an empty batch for m.
func (m *Map) NewBatch() (*Batch, error) {
	if m.ptr == nil {
		return nil, ErrClosed
	}
	var ptr *C.amap_batch_t
	if err := check(C.amap_batch_new(m.ptr, &ptr)); err != nil {
		return nil, err
	}
	b := &Batch{ptr: ptr}
	runtime.SetFinalizer(b, (*Batch).Discard)
	return b, nil
}

// Insert adds key -> value to the batch, with release as in Map.Insert (called
// exactly once, when the value is destroyed, or when the batch is discarded). A
// later entry for the same key replaces an earlier one when the batch is published.
func (b *Batch) Insert(key []byte, value any, release func(any)) error {
	if b.ptr == nil {
		return ErrBatchUsed
	}
	h := newValueHandle(value, release)
	k, n := keyPtr(key)
	status := C.amap_go_batch_insert(b.ptr, k, n, C.uintptr_t(h))
	runtime.KeepAlive(key)
	runtime.KeepAlive(b)
	if status != C.AMAP_OK {
		untaken(h, status)
		return check(status)
	}
	return nil
}

// Len is the number of entries added (a key added twice counts twice).
func (b *Batch) Len() int {
	if b.ptr == nil {
		return 0
	}
	var n C.size_t
	err := check(C.amap_batch_len(b.ptr, &n))
	runtime.KeepAlive(b)
	if err != nil {
		panic(err)
	}
	return int(n)
}

// Discard frees a batch that will not be published: its values are released now,
// on this goroutine. Idempotent; a no-op after Replace.
func (b *Batch) Discard() {
	if b.ptr != nil {
		C.amap_batch_free(b.ptr)
		b.ptr = nil
		runtime.SetFinalizer(b, nil)
	}
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
	// handle is the value's handle, read once (0 until then; stored atomically,
	// as a *Value may be shared).
	handle uintptr
}

var leakedValues int64

// trackLeaks is TrackLeaks' switch (1: on); ATOMICMAP_TRACK_LEAKS=1 in the
// environment turns it on when the package is loaded.
var trackLeaks int32

func init() {
	if os.Getenv("ATOMICMAP_TRACK_LEAKS") == "1" {
		trackLeaks = 1
	}
}

// TrackLeaks turns leak tracking on or off for the *Value objects made from then
// on. A tracked *Value carries a finalizer that counts it in LeakedValues if it
// is garbage-collected without Release. Off by default: with it, Get and Release
// took 3 times as long (docs/BINDINGS.md). Turn it on in tests, or with
// ATOMICMAP_TRACK_LEAKS=1.
func TrackLeaks(on bool) {
	var v int32
	if on {
		v = 1
	}
	atomic.StoreInt32(&trackLeaks, v)
}

// LeakedValues counts the tracked *Value objects (TrackLeaks) garbage-collected
// without Release. Their values stay alive (a leak, not a crash): release every
// Value you get.
func LeakedValues() int64 { return atomic.LoadInt64(&leakedValues) }

func newValue(ptr *C.amap_value_t) *Value {
	return newValueOf(ptr, 0)
}

// newValueOf wraps a retained value whose handle the caller read (0 if not).
func newValueOf(ptr *C.amap_value_t, handle uintptr) *Value {
	v := &Value{ptr: ptr, handle: handle}
	if atomic.LoadInt32(&trackLeaks) != 0 {
		runtime.SetFinalizer(v, countIfLeaked)
	}
	return v
}

// countIfLeaked is a tracked *Value's finalizer.
func countIfLeaked(v *Value) {
	if atomic.LoadInt32(&v.released) == 0 {
		atomic.AddInt64(&leakedValues, 1)
	}
}

// Get returns the Go value. It panics after Release.
func (v *Value) Get() any {
	if atomic.LoadInt32(&v.released) != 0 {
		panic("atomicmap: Value used after Release")
	}
	h := atomic.LoadUintptr(&v.handle)
	if h == 0 {
		h = uintptr(C.amap_value_data(v.ptr))
		atomic.StoreUintptr(&v.handle, h)
	}
	return valueHandles.mustEntry(h).value
}

// Retain returns a second *Value for the same value, with its own reference.
func (v *Value) Retain() *Value {
	if atomic.LoadInt32(&v.released) != 0 {
		panic("atomicmap: Value used after Release")
	}
	if err := check(C.amap_value_retain(v.ptr)); err != nil {
		panic(err)
	}
	return newValueOf(v.ptr, atomic.LoadUintptr(&v.handle))
}

// Release gives the reference back. Releasing twice panics.
func (v *Value) Release() {
	if !atomic.CompareAndSwapInt32(&v.released, 0, 1) {
		panic("atomicmap: Value released twice")
	}
	releaseValue(v.ptr)
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

// Contains reports whether key is in the snapshot's generation (false after
// Release).
func (s *Snapshot) Contains(key []byte) bool {
	var present C.uint8_t
	k, n := keyPtr(key)
	status := C.amap_snapshot_contains(s.ptr, k, n, &present)
	runtime.KeepAlive(key)
	return status == C.AMAP_OK && present != 0
}

// Generation is the id of the snapshot's generation: 0 for a new map's, one
// more for each clear or replace; the ID of the Ticket of the clear or replace
// that retires it. After Release it is 0, which is also a first generation's id.
func (s *Snapshot) Generation() uint64 {
	var id C.uint64_t
	_ = check(C.amap_snapshot_generation(s.ptr, &id))
	return uint64(id)
}

// ForEach calls f for each entry until it returns false. key and value are
// borrowed for the call (copy the key to keep it). Each shard's entries are
// copied, and their values retained, before f sees them, so nothing is pinned
// while f runs: f may block, or run long, without holding up reclamation (Range
// is the cheaper walk for a short f). A panic in f stops the walk and is raised
// again from ForEach. After Release, it calls f for nothing.
func (s *Snapshot) ForEach(f func(key []byte, value any) bool) {
	if s.ptr == nil {
		return
	}
	runWalk(f, func(h C.uintptr_t) C.amap_status_t { return C.amap_go_snapshot_foreach(s.ptr, h) })
}

// Range calls f for each entry of the snapshot's generation until f returns
// false, inside one read section on that generation (amap_snapshot_read_begin),
// as Map.Range does on the current one: no reference count is touched, nothing
// is copied, and no lock is held while f runs (f may call into the map, even
// write to it), but the section's pin holds up the reclamation of every map
// until Range returns: keep f short (ForEach pins nothing while f runs). key and
// value are borrowed for the call (copy the key to keep it). A panic in f stops
// the walk, ends the read section and is raised again from Range. After Release,
// it calls f for nothing.
func (s *Snapshot) Range(f func(key []byte, value any) bool) {
	if s.ptr == nil {
		return
	}
	runWalk(f, func(h C.uintptr_t) C.amap_status_t { return C.amap_go_snapshot_range(s.ptr, h) })
}

// Release releases the snapshot; calling it twice is a no-op.
func (s *Snapshot) Release() {
	if s.ptr != nil {
		C.amap_snapshot_release(s.ptr)
		s.ptr = nil
	}
}
