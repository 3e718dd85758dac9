// Chapter 4.4. The reference says a panic skips `defer wg.Done()` and Wait blocks forever.
// It does not: deferred calls run during a panic; the program crashes with the panic
// (riskyWorker, Expected: no finding). The real hang is a Done that is not deferred and
// is skipped by an early return (skippable, Expected: G304).
package main

import (
	"errors"
	"sync"
	"time"
)

func riskyWorker(wg *sync.WaitGroup) {
	defer wg.Done()
	time.Sleep(100 * time.Millisecond)
	panic("unexpected error")
}

func step() error { return errors.New("fail") }

func skippable() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		if err := step(); err != nil {
			return // Done is skipped: Wait blocks forever
		}
		wg.Done()
	}()
	wg.Wait()
}

func main() {
	var wg sync.WaitGroup
	wg.Add(1)
	go riskyWorker(&wg)
	wg.Wait()
	skippable()
}
