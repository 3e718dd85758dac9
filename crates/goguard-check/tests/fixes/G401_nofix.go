// go 1.24
package fixes

import "sync"

// Locked on every turn: a deferred unlock would wait for the function's end.
func eachTurn(mu *sync.Mutex, items []int) {
	for _, it := range items {
		mu.Lock() // want G401 none
		if it < 0 {
			return
		}
		mu.Unlock()
	}
}
