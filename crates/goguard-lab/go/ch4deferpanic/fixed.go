package ch4deferpanic

import (
	"fmt"
	"sync"
)

// Fixed recovers in the worker and reports the failure instead of crashing.
func Fixed() (err error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if r := recover(); r != nil {
				mu.Lock()
				err = fmt.Errorf("worker failed: %v", r)
				mu.Unlock()
			}
		}()
		panic("worker failed")
	}()
	wg.Wait()
	return err
}
