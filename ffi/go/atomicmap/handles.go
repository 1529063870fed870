package atomicmap

import (
	"sync"
	"sync/atomic"
)

// valueTable gives each value an integer handle, which C stores as the value's
// data (C never holds a Go pointer), and resolves a handle back to its entry.
//
// It replaces runtime/cgo.Handle for values because a read resolves a handle on
// every Load and Value.Get: cgo.Handle keeps its handles in a sync.Map keyed by
// an interface, so each resolution boxed the handle (an allocation) and hashed
// it, about a third of Load's time (docs/BINDINGS.md). Here a resolution is two
// atomic loads and an index: no allocation, no lock, no store.
//
// Handles are slot indexes tagged with the slot's use count (its generation), so
// a handle is never made twice, as cgo.Handle's are not: a Load whose value was
// destroyed between its read section and the resolution finds the slot empty or
// holding another generation's entry, and reports the value gone, never another
// value. A slot whose generation would wrap is retired, not reused.
//
// Making and deleting handles take a mutex. On 64-bit targets the slots grow to
// the most values alive at once (8 bytes a slot), and a slot is retired after
// 2^32 uses. On 32-bit ones a handle has 24 bits of index and 8 of generation:
// at most 16.7 million values alive at once, a slot retired after 255 uses, so
// the table also grows by a slot per 255 handles made, to 128 MiB when the last
// index is handed out and making a handle panics, after about 4.3 billion
// handles; cgo.Handle's 32-bit handles run out at 2^32 too.
type valueTable struct {
	// chunks is replaced (copied, one chunk longer) under mu as the table grows;
	// resolutions load it without the lock. A chunk, once made, stays.
	chunks atomic.Pointer[[]*valueChunk]

	mu sync.Mutex
	// free holds the indexes of empty slots that may be used again.
	free []uint32
	// used counts the slots ever handed out (the next new index).
	used uint64
	// gens holds each slot's generation, that of its last handle, under mu.
	gens []uint32
	// live counts the handles made and not deleted.
	live int64
}

// A handle is (generation << handleIndexBits) | index; generations start at 1,
// so no handle is 0.
const (
	ptrBits         = 32 << (^uintptr(0) >> 63)
	handleIndexBits = 24 + (ptrBits-32)/4 // 24 on 32-bit targets, 32 on 64-bit ones
	handleIndexMask = 1<<handleIndexBits - 1
	maxGeneration   = 1<<(ptrBits-handleIndexBits) - 1
	chunkBits       = 10
	chunkSize       = 1 << chunkBits
)

type valueChunk [chunkSize]atomic.Pointer[entry]

// valueHandles holds the handles of every map's values (a value can move between
// maps only through C, which keeps the handle).
var valueHandles valueTable

// make stores e and returns its new handle (also written to e.handle).
func (t *valueTable) make(e *entry) uintptr {
	t.mu.Lock()
	defer t.mu.Unlock()
	var index uint32
	if n := len(t.free); n > 0 {
		index = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if t.used > handleIndexMask {
			panic("atomicmap: out of value handles")
		}
		index = uint32(t.used)
		t.used++
		t.gens = append(t.gens, 0)
		if index%chunkSize == 0 {
			t.grow()
		}
	}
	t.gens[index]++
	h := uintptr(t.gens[index])<<handleIndexBits | uintptr(index)
	e.handle = h
	t.slot(index).Store(e)
	t.live++
	return h
}

// grow appends a chunk; under mu.
func (t *valueTable) grow() {
	var next []*valueChunk
	if old := t.chunks.Load(); old != nil {
		next = make([]*valueChunk, len(*old), len(*old)+1)
		copy(next, *old)
	}
	next = append(next, new(valueChunk))
	t.chunks.Store(&next)
}

// slot returns an index's slot; the index must have been handed out.
func (t *valueTable) slot(index uint32) *atomic.Pointer[entry] {
	return &(*t.chunks.Load())[index>>chunkBits][index%chunkSize]
}

// entry resolves h, or reports that it is not a live handle (deleted, or never
// made).
func (t *valueTable) entry(h uintptr) (e *entry, live bool) {
	index := h & handleIndexMask
	chunks := t.chunks.Load()
	if chunks == nil || index>>chunkBits >= uintptr(len(*chunks)) {
		return nil, false
	}
	e = (*chunks)[index>>chunkBits][index%chunkSize].Load()
	if e == nil || e.handle != h {
		return nil, false
	}
	return e, true
}

// mustEntry resolves a handle its caller holds a reference to, so one that must be
// live.
func (t *valueTable) mustEntry(h uintptr) *entry {
	e, live := t.entry(h)
	if !live {
		panic("atomicmap: a held value's handle is not live")
	}
	return e
}

// delete deletes a live handle and returns its entry; a handle deleted twice
// panics (the value's destructor runs once).
func (t *valueTable) delete(h uintptr) *entry {
	e := t.mustEntry(h)
	index := uint32(h & handleIndexMask)
	if !t.slot(index).CompareAndSwap(e, nil) {
		panic("atomicmap: a value's handle deleted twice")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gens[index] < maxGeneration {
		t.free = append(t.free, index)
	}
	t.live--
	return e
}

// liveCount returns the number of handles made and not deleted.
func (t *valueTable) liveCount() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}
