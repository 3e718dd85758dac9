package ch4skipped

import "sync"

// Fixed defers Done, so every exit counts.
func Fixed(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := load(i); err != nil {
				return
			}
		}()
	}
	wg.Wait()
}
