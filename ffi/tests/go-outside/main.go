// A per-tenant config cache in a program of its own, built against the installed
// C library: readers hold configs while the cache is reloaded with ClearAsync.
package main

import (
	"fmt"
	"os"
	"time"

	"atomic-map.local/go/atomicmap"
)

type config struct {
	tenant string
	quota  int
}

func main() {
	cache := atomicmap.New()
	released := make(chan string, 16)
	for t := 0; t < 4; t++ {
		name := fmt.Sprintf("tenant-%d", t)
		release := func(v any) { released <- v.(*config).tenant }
		if err := cache.Insert([]byte(name), &config{name, 100 * t}, release); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	held, ok := cache.Get([]byte("tenant-2"))
	if !ok {
		fmt.Fprintln(os.Stderr, "tenant-2 missing")
		os.Exit(1)
	}
	ticket := cache.ClearAsync() // the reload: the cache is empty, tenant-2 is still held
	fmt.Printf("after the clear: %d entries; held %s, quota %d\n",
		cache.Len(), held.Get().(*config).tenant, held.Get().(*config).quota)
	held.Release()
	if !ticket.Wait(5 * time.Second) {
		fmt.Fprintln(os.Stderr, "the old generation was not reclaimed")
		os.Exit(1)
	}
	ticket.Free()
	cache.Close()
	fmt.Printf("%d configs released\n", len(released))
}
