// A service-shaped Go program: worker goroutines look tenant configs up and hold
// them while they work; a reloader publishes a new version of all the configs every
// few hundred microseconds, built in a Batch and swapped in whole by Replace, so a
// worker never finds a config missing. Values are Go objects held by the map through
// cgo.Handle; each is released exactly once, after the last holder.
//
// Run (from the repository root, with the C library installed where pkg-config
// finds it; docs/BINDINGS.md):
//
//	cd ffi/go && go run ./example
package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"atomic-map.local/go/atomicmap"
)

type tenantConfig struct {
	name  string
	quota int
}

func main() {
	configs := atomicmap.New()
	var released, served, reloads int64
	onRelease := func(any) { atomic.AddInt64(&released, 1) }
	load := func(version int) {
		next, err := configs.NewBatch() // off to the side: no reader sees it yet
		if err != nil {
			panic(err)
		}
		for t := 0; t < 8; t++ {
			name := fmt.Sprintf("tenant-%d", t)
			if err := next.Insert([]byte(name), &tenantConfig{name, version}, onRelease); err != nil {
				panic(err)
			}
		}
		ticket, err := configs.Replace(next) // one swap: the old version or the new
		if err != nil {
			panic(err)
		}
		ticket.Free()
	}
	load(0)

	var stop int32
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; atomic.LoadInt32(&stop) == 0; i++ {
				name := fmt.Sprintf("tenant-%d", (w+i)%8)
				v, ok := configs.Get([]byte(name))
				if !ok {
					panic("a reload left " + name + " missing")
				}
				time.Sleep(20 * time.Microsecond) // work; reloads happen meanwhile
				if v.Get().(*tenantConfig).name != name {
					panic("wrong config")
				}
				v.Release()
				atomic.AddInt64(&served, 1)
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for version := 1; atomic.LoadInt32(&stop) == 0; version++ {
			load(version) // workers keep the values they hold
			atomic.AddInt64(&reloads, 1)
			time.Sleep(300 * time.Microsecond)
		}
	}()
	time.Sleep(time.Second)
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	generation := configs.Stats().Generation
	quotas := 0
	configs.Range(func(key []byte, value any) bool { // one read section, no counting
		quotas += value.(*tenantConfig).quota
		return true
	})
	if !configs.ClearAsync().Wait(10 * time.Second) { // O(1); wait for the teardown
		panic("the last version was not torn down")
	}
	configs.Close()
	fmt.Printf("served %d lookups across %d reloads (generation %d, quotas %d); %d configs released so far\n",
		served, reloads, generation, quotas, atomic.LoadInt64(&released))
}
