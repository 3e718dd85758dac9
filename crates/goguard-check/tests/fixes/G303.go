// go 1.24
package fixes

import "sync"

func byValue(wg sync.WaitGroup) { // want G303 unsafe
	wg.Done()
}

type pool struct {
	wg sync.WaitGroup
	n  int
}

func (p pool) Wait() { // want G303 unsafe
	p.wg.Wait()
}

func start() {
	var wg sync.WaitGroup
	wg.Add(1)
	go byValue(wg) // want G303 unsafe
	wg.Wait()
	var p pool
	p.Wait()
}
