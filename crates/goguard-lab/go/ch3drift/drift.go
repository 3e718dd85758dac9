// Package ch3drift measures how late context deadlines fire (3.3).
package ch3drift

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Lateness runs n timeouts of d, batch at a time, and returns how late each fired.
func Lateness(n, batch int, d time.Duration) []time.Duration {
	late := make([]time.Duration, 0, n)
	var mu sync.Mutex
	for done := 0; done < n; done += batch {
		var wg sync.WaitGroup
		for i := 0; i < batch && done+i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), d)
				defer cancel()
				<-ctx.Done()
				l := time.Since(start) - d
				mu.Lock()
				late = append(late, l)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	return late
}
