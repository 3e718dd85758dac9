// go 1.24
package fixes

import "sync"

type group struct {
	wg sync.WaitGroup
}

// Exported: callers in other packages would need the `&` too.
func ByValue(wg sync.WaitGroup) { // want G303 none
	wg.Wait()
}

func copies(g *group) int {
	q := *g // want G303 none
	_ = q
	return 0
}
