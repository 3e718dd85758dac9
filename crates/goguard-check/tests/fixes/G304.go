// go 1.24
package fixes

import (
	"errors"
	"sync"
)

func step() error { return errors.New("x") }

func earlyReturn() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		if err := step(); err != nil {
			return
		}
		wg.Done() // want G304 safe
	}()
	wg.Wait()
}

func recovered() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer func() { _ = recover() }()
		_ = step()
		wg.Done() // want G304 safe
	}()
	wg.Wait()
}

// Work after the Done now runs before it: unsafe.
func workAfter(out chan<- int) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		if step() != nil {
			return
		}
		wg.Done() // want G304 unsafe
		out <- 1
	}()
	wg.Wait()
}

// A Done on one branch and another at the end: both go, one defer stays.
func twoDones(n int) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		if n == 0 {
			wg.Done() // want G304 unsafe
			return
		}
		if n < 0 {
			return
		}
		wg.Done() // want G304 unsafe
	}()
	wg.Wait()
}

// A function started as a goroutine.
func worker(wg *sync.WaitGroup) {
	if step() != nil {
		return
	}
	wg.Done() // want G304 safe
}

func startWorker() {
	var wg sync.WaitGroup
	wg.Add(1)
	go worker(&wg)
	wg.Wait()
}
