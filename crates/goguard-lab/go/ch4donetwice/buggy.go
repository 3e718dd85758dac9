// Package ch4donetwice: Done called twice for one Add (4.2).
package ch4donetwice

import "sync"

// Buggy marks the work done on success, and again on the way out.
func Buggy() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ok := true
		if ok {
			wg.Done()
		}
	}()
	wg.Wait()
}
