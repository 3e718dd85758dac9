// go 1.24
package fixes

import "sync"

func work() {}

func addInside(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		go func() {
			wg.Add(1) // want G301 safe
			defer wg.Done()
			work()
		}()
	}
	wg.Wait()
}

func addAfter() {
	var wg sync.WaitGroup
	go func() {
		defer wg.Done()
		work()
	}()
	wg.Add(1) // want G301 safe
	wg.Wait()
}

// The Add came after work that could have returned early: moving it is unsafe.
func addLate() {
	wg := &sync.WaitGroup{}
	go func() {
		defer wg.Done()
		work()
		wg.Add(1) // want G301 unsafe
	}()
	wg.Wait()
}
