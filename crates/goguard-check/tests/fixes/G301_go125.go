// go 1.25
package fixes

import "sync"

func run(int) {}

func addInside(jobs []int) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		go func() {
			wg.Add(1) // want G301 safe
			defer wg.Done()
			run(j)
		}()
	}
	wg.Wait()
}

func addAfter() {
	var wg sync.WaitGroup
	go func() {
		defer wg.Done()
		run(0)
	}()
	wg.Add(1) // want G301 safe
	wg.Wait()
}

// A goroutine with an argument: wg.Go takes a func(), so the Add is moved instead.
func withArgument(n int) {
	var wg sync.WaitGroup
	go func(i int) {
		defer wg.Done()
		run(i)
	}(n)
	wg.Add(1) // want G301 safe
	wg.Wait()
}
