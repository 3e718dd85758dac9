// Package ch4deferpanic: the reference's `defer wg.Done()` + panic (4.4). The reference says
// Wait hangs; Go runs the deferred Done and the unrecovered panic ends the program.
package ch4deferpanic

import "sync"

// Buggy panics in a worker that defers Done.
func Buggy() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		panic("worker failed")
	}()
	wg.Wait()
}
