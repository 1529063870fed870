// A service-shaped Go program: worker goroutines look tenant configs up and hold
// them while they work; a reloader clears the map every few hundred microseconds and
// loads new configs. Values are Go objects held by the map through cgo.Handle; each
// is released exactly once, after the last holder.
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
		for t := 0; t < 8; t++ {
			name := fmt.Sprintf("tenant-%d", t)
			if err := configs.Insert([]byte(name), &tenantConfig{name, version}, onRelease); err != nil {
				panic(err)
			}
		}
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
				if v, ok := configs.Get([]byte(name)); ok {
					time.Sleep(20 * time.Microsecond) // work; reloads happen meanwhile
					if v.Get().(*tenantConfig).name != name {
						panic("wrong config")
					}
					v.Release()
					atomic.AddInt64(&served, 1)
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for version := 1; atomic.LoadInt32(&stop) == 0; version++ {
			configs.ClearAsync() // O(1): workers keep the values they hold
			load(version)
			atomic.AddInt64(&reloads, 1)
			time.Sleep(300 * time.Microsecond)
		}
	}()
	time.Sleep(time.Second)
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	generation := configs.Stats().Generation
	configs.Close()
	fmt.Printf("served %d lookups across %d reloads (generation %d); %d configs released so far\n",
		served, reloads, generation, atomic.LoadInt64(&released))
}
