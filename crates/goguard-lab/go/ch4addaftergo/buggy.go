// Package ch4addaftergo: wg.Add inside the goroutine it accounts for (4.1).
package ch4addaftergo

import "sync"

// Buggy counts how many workers finished before Wait returned.
func Buggy(n int) (finished int64) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		go func() {
			wg.Add(1)
			defer wg.Done()
			mu.Lock()
			finished++
			mu.Unlock()
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return finished
}
