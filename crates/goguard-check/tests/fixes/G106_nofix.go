// go 1.24
package fixes

import "context"

type item struct{}

func produce() item { return item{} }

// Sends in a loop: one slot would not hold them all.
func several(ctx context.Context) (item, error) {
	ch := make(chan item)
	go func() {
		for i := 0; i < 3; i++ {
			ch <- produce() // want G106 none
		}
	}()
	select {
	case it := <-ch:
		return it, nil
	case <-ctx.Done():
		return item{}, ctx.Err()
	}
}
