package ch4donetwice

import "sync"

// Fixed calls Done once, deferred.
func Fixed() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ok := true
		_ = ok
	}()
	wg.Wait()
}
