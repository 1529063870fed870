package atomicmap

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tracked is a test value that counts how many times it was released.
type tracked struct {
	id       int
	released int32
}

func releaseTracked(v any) { atomic.AddInt32(&v.(*tracked).released, 1) }

func drain(t *testing.T, m *Map) {
	t.Helper()
	m.ClearAsync()
	for i := 0; i < 10000; i++ {
		m.Reclaim()
		s := m.Stats()
		if s.RetiredGenerations == 0 && s.PendingValues == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("garbage did not drain: %+v", m.Stats())
}

func TestOperations(t *testing.T) {
	m := New()
	a, b := &tracked{id: 1}, &tracked{id: 2}
	if err := m.Insert([]byte("a"), a, releaseTracked); err != nil {
		t.Fatal(err)
	}
	if err := m.Insert([]byte("b"), b, releaseTracked); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 2 {
		t.Fatalf("len %d", m.Len())
	}
	v, ok := m.Get([]byte("a"))
	if !ok || v.Get().(*tracked) != a {
		t.Fatal("get a")
	}
	if _, ok := m.Get([]byte("zz")); ok {
		t.Fatal("found a missing key")
	}
	snap := m.Snapshot()
	id := m.ClearAsync()
	if m.Len() != 0 || snap.Len() != 2 {
		t.Fatalf("after clear: map %d, snapshot %d", m.Len(), snap.Len())
	}
	seen := map[string]any{}
	snap.ForEach(func(k []byte, v any) bool { seen[string(k)] = v; return true })
	if len(seen) != 2 || seen["a"] != a || seen["b"] != b {
		t.Fatalf("snapshot saw %v", seen)
	}
	if m.WaitReclaimed(id, 0) {
		t.Fatal("reclaimed under a snapshot")
	}
	snap.Release()
	if !m.WaitReclaimed(id, 10*time.Second) {
		t.Fatal("not reclaimed")
	}
	if atomic.LoadInt32(&b.released) != 1 || atomic.LoadInt32(&a.released) != 0 {
		t.Fatalf("released: a %d, b %d", a.released, b.released)
	}
	v2 := v.Retain()
	v.Release()
	m.Close()
	if v2.Get().(*tracked) != a { // held across the clear and Close
		t.Fatal("value changed")
	}
	v2.Release()
	drainWith(t, func() bool { return atomic.LoadInt32(&a.released) == 1 })
	if ok, err := m.Remove([]byte("a")); ok || err != ErrClosed {
		t.Fatalf("remove after close: %v %v", ok, err)
	}
}

// drainWith drives deferred releases (which wait for the epoch) from a throwaway
// map until done holds.
func drainWith(t *testing.T, done func() bool) {
	t.Helper()
	m := New()
	defer m.Close()
	for i := 0; i < 10000 && !done(); i++ {
		m.Reclaim()
		time.Sleep(time.Millisecond)
	}
	if !done() {
		t.Fatal("deferred releases did not run")
	}
}

// The seed's chapter 3: goroutines hold values obtained from the map while another
// goroutine clears it in a loop. No crash, and every handle is deleted exactly once.
func TestHoldersSurviveClearLoop(t *testing.T) {
	m := New()
	var (
		stop    int32
		mu      sync.Mutex
		created []*tracked
		wg      sync.WaitGroup
		clears  int64
	)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			var held []*Value
			for i := 0; atomic.LoadInt32(&stop) == 0; i++ {
				key := []byte(fmt.Sprintf("k%d", (i*7+r)%32))
				if v, ok := m.Get(key); ok {
					if v.Get().(*tracked).released != 0 {
						panic("a value was released while held")
					}
					held = append(held, v)
					if len(held) > 8 {
						held[0].Release()
						held = held[1:]
					}
				}
			}
			for _, v := range held {
				if atomic.LoadInt32(&v.Get().(*tracked).released) != 0 {
					panic("a value was released while held")
				}
				v.Release()
			}
		}(r)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for atomic.LoadInt32(&stop) == 0 {
			m.ClearAsync()
			atomic.AddInt64(&clears, 1)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; atomic.LoadInt32(&stop) == 0; i++ {
			v := &tracked{id: i}
			mu.Lock()
			created = append(created, v)
			mu.Unlock()
			if err := m.Insert([]byte(fmt.Sprintf("k%d", i%32)), v, releaseTracked); err != nil {
				panic(err)
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	// Run on until the clearer and the inserter have both made progress, so a
	// starved goroutine cannot let the test pass without having been exercised.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		inserted := len(created)
		mu.Unlock()
		if atomic.LoadInt64(&clears) >= 5 && inserted >= 100 {
			break
		}
		if time.Now().After(deadline) {
			atomic.StoreInt32(&stop, 1)
			wg.Wait()
			t.Fatalf("the storm did not run: %d clears, %d values", atomic.LoadInt64(&clears), inserted)
		}
	}
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	drain(t, m)
	m.Close()
	drainWith(t, func() bool {
		for _, v := range created {
			if atomic.LoadInt32(&v.released) == 0 {
				return false
			}
		}
		return true
	})
	for _, v := range created {
		if n := atomic.LoadInt32(&v.released); n != 1 {
			t.Fatalf("value %d released %d times", v.id, n)
		}
	}
	t.Logf("%d values, %d clears", len(created), clears)
}

func TestUnreleasedValueIsReportedNotReleased(t *testing.T) {
	m := New()
	defer m.Close()
	x := &tracked{}
	if err := m.Insert([]byte("x"), x, releaseTracked); err != nil {
		t.Fatal(err)
	}
	before := LeakedValues()
	func() {
		v, _ := m.Get([]byte("x"))
		_ = v // dropped without Release
	}()
	for i := 0; i < 50 && LeakedValues() == before; i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if LeakedValues() != before+1 {
		t.Fatalf("leak not reported: %d -> %d", before, LeakedValues())
	}
	drain(t, m)
	if atomic.LoadInt32(&x.released) != 0 {
		t.Fatal("a leaked Value must keep its value alive, not release it")
	}
}

func TestDoubleReleasePanics(t *testing.T) {
	m := New()
	defer m.Close()
	_ = m.Insert([]byte("k"), 1, nil)
	v, _ := m.Get([]byte("k"))
	v.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	v.Release()
}
