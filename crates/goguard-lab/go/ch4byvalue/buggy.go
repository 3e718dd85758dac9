// Package ch4byvalue: a WaitGroup passed by value (4.3).
package ch4byvalue

import "sync"

func work(wg sync.WaitGroup) {
	defer wg.Done() // the copy's Done: the caller's counter never drops
}

// Buggy waits for a Done that happens on a copy.
func Buggy() {
	var wg sync.WaitGroup
	wg.Add(1)
	go work(wg)
	wg.Wait()
}
