// The same counter with a mutex: no race.
package cleantest

import (
	"sync"
	"testing"
)

func TestCounter(t *testing.T) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		counter int
	)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			counter++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counter != 2 {
		t.Fatalf("counter = %d", counter)
	}
}
