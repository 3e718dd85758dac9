// go 1.24
package fixes

import "sync"

func use(int) {}

// The Add runs only when the goroutine gets past the check: it cannot simply move out.
func conditional(n int) {
	var wg sync.WaitGroup
	go func() {
		if n < 0 {
			return
		}
		wg.Add(1) // want G301 none
		defer wg.Done()
		use(n)
	}()
	wg.Wait()
}

// A count computed in the goroutine.
func computed(items []int) {
	var wg sync.WaitGroup
	go func() {
		k := len(items)
		wg.Add(k) // want G301 none
		defer wg.Done()
		use(k)
	}()
	wg.Wait()
}
