// go 1.24
package fixes

import "sync"

// One Done per job: a deferred Done would pay once for all of them.
func workerContinue(jobs <-chan int, wg *sync.WaitGroup) {
	go func() {
		for j := range jobs {
			if j < 0 {
				continue
			}
			wg.Done() // want G304 none
		}
	}()
}
