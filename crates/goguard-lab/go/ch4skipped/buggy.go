// Package ch4skipped: a Done that an early return skips (4.4, the real hang).
package ch4skipped

import (
	"errors"
	"sync"
)

func load(i int) error {
	if i == 1 {
		return errors.New("bad record")
	}
	return nil
}

// Buggy returns early on an error without calling Done.
func Buggy(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			if err := load(i); err != nil {
				return
			}
			wg.Done()
		}()
	}
	wg.Wait()
}
