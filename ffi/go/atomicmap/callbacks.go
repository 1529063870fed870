package atomicmap

/*
#include <stdint.h>
#include "amap.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// goAtomicMapDeleteHandle is the destructor of every value: it runs exactly once
// per value, on whichever thread lets go of it last, and deletes its handle.
//
//export goAtomicMapDeleteHandle
func goAtomicMapDeleteHandle(handle C.uintptr_t) {
	e := deleteValueHandle(uintptr(handle))
	if e.release != nil {
		e.release(e.value)
	}
}

// goAtomicMapTicketDone is Ticket.Done's callback, run once the generation has
// been torn down (on the reclaimer's thread, or at once in Done): it closes the
// channel and deletes its handle.
//
//export goAtomicMapTicketDone
func goAtomicMapTicketDone(done C.uintptr_t) {
	h := cgo.Handle(done)
	close(h.Value().(chan struct{}))
	h.Delete()
}

// goAtomicMapForeach is Snapshot.ForEach's callback: the value is a retained
// amap_value_t, lent for the call.
//
//export goAtomicMapForeach
func goAtomicMapForeach(key *C.uint8_t, keyLen C.size_t, value *C.amap_value_t, user C.uintptr_t) C.int32_t {
	return walkOne(key, keyLen, uintptr(C.amap_value_data(value)), user)
}

// goAtomicMapRange is Map.Range's callback: data is the value's handle, borrowed
// from the read section.
//
//export goAtomicMapRange
func goAtomicMapRange(key *C.uint8_t, keyLen C.size_t, data C.uintptr_t, user C.uintptr_t) C.int32_t {
	return walkOne(key, keyLen, uintptr(data), user)
}

// walkOne calls the walk's function with the key and the Go value of a handle;
// a panic is caught there (it must not unwind through the C frames) and stops the
// walk.
func walkOne(key *C.uint8_t, keyLen C.size_t, handle uintptr, user C.uintptr_t) C.int32_t {
	w := cgo.Handle(user).Value().(*rangeWalk)
	if w.call(entryOf(key, keyLen, handle), false) {
		return 0
	}
	return 1
}

// goAtomicMapKeep is Map.Retain's callback: data is the value's handle, borrowed
// for the call; 1 keeps the entry, 0 removes it. After a panic in the function,
// every remaining entry is kept.
//
//export goAtomicMapKeep
func goAtomicMapKeep(key *C.uint8_t, keyLen C.size_t, data C.uintptr_t, user C.uintptr_t) C.int32_t {
	w := cgo.Handle(user).Value().(*rangeWalk)
	if w.call(entryOf(key, keyLen, uintptr(data)), true) {
		return 1
	}
	return 0
}

// goAtomicMapCompute is Map.Compute's callback: current is the value's handle,
// borrowed for the call (meaningless when present is 0); the new value's handle
// goes to *out for AMAP_COMPUTE_INSERT.
//
//export goAtomicMapCompute
func goAtomicMapCompute(current C.uintptr_t, present C.uint8_t, user C.uintptr_t, out *C.uintptr_t) C.int32_t {
	c := cgo.Handle(user).Value().(*computeCall)
	var value any
	if present != 0 {
		value = valueHandles.mustEntry(uintptr(current)).value
	}
	return c.decide(value, present != 0, out)
}

// walkEntry is one entry handed to a walk's function: the key, borrowed from C for
// the call, and the Go value of the value's handle.
type walkEntry struct {
	key   []byte
	value any
}

func entryOf(key *C.uint8_t, keyLen C.size_t, handle uintptr) walkEntry {
	var k []byte
	if keyLen > 0 {
		k = unsafe.Slice((*byte)(unsafe.Pointer(key)), int(keyLen))
	}
	return walkEntry{key: k, value: valueHandles.mustEntry(handle).value}
}
