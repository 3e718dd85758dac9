// A test with a data race: two goroutines increment one counter without a lock.
package racytest

import (
	"sync"
	"testing"
)

func TestCounter(t *testing.T) {
	var wg sync.WaitGroup
	counter := 0
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counter++
		}()
	}
	wg.Wait()
	if counter == 0 {
		t.Fatal("no increment")
	}
}
