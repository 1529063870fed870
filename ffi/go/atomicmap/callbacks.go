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
	h := cgo.Handle(handle)
	e := h.Value().(*entry)
	h.Delete()
	if e.release != nil {
		e.release(e.value)
	}
}

//export goAtomicMapForeach
func goAtomicMapForeach(key *C.uint8_t, keyLen C.size_t, value *C.amap_value_t, user C.uintptr_t) C.int32_t {
	f := cgo.Handle(user).Value().(func([]byte, any) bool)
	k := unsafe.Slice((*byte)(unsafe.Pointer(key)), int(keyLen))
	v := cgo.Handle(uintptr(C.amap_value_data(value))).Value().(*entry).value
	if f(k, v) {
		return 0
	}
	return 1
}
