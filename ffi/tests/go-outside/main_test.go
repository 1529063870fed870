package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"atomic-map.local/go/atomicmap"
)

// Leak tracking on, as a user's tests would have it (atomicmap.TrackLeaks): the
// check of LeakedValues below counts nothing without it.
func TestMain(m *testing.M) {
	atomicmap.TrackLeaks(true)
	os.Exit(m.Run())
}

// Goroutines hold configs from the cache while another goroutine clears and
// reloads it: every config stays valid while held, and is released exactly once.
func TestHoldAcrossReloads(t *testing.T) {
	cache := atomicmap.New()
	var inserted, released int64
	load := func(version int) {
		for i := 0; i < 8; i++ {
			name := fmt.Sprintf("tenant-%d", i)
			if err := cache.Insert([]byte(name), &config{name, version}, func(any) {
				atomic.AddInt64(&released, 1)
			}); err != nil {
				t.Error(err)
				return
			}
			atomic.AddInt64(&inserted, 1)
		}
	}
	load(0)
	deadline := time.Now().Add(300 * time.Millisecond)
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("tenant-%d", (r+i)%8)
				if v, ok := cache.Get([]byte(name)); ok {
					time.Sleep(10 * time.Microsecond)
					if got := v.Get().(*config).tenant; got != name {
						t.Errorf("held %s, got %s", name, got)
					}
					v.Release()
				}
			}
		}(r)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; time.Now().Before(deadline); v++ {
			cache.ClearAsync().Free()
			load(v)
		}
	}()
	wg.Wait()
	cache.Close() // waits for the reclaimer's pending teardowns
	if inserted == 0 || released != inserted {
		t.Fatalf("%d configs inserted, %d released", inserted, released)
	}
	if n := atomicmap.LeakedValues(); n != 0 {
		t.Fatalf("%d values leaked", n)
	}
}
