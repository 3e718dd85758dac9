package ch4byvalue

import "sync"

func workPtr(wg *sync.WaitGroup) {
	defer wg.Done()
}

// Fixed passes a pointer.
func Fixed() {
	var wg sync.WaitGroup
	wg.Add(1)
	go workPtr(&wg)
	wg.Wait()
}
