// Package worker holds the reference's abandoned sender (chapter 2): Fetch gives up on its
// context, and the goroutine it started blocks forever on the unbuffered send.
package worker

import "context"

var release = make(chan struct{})

// Release lets every pending slow call finish.
func Release() { close(release) }

func slow() int {
	<-release
	return 1
}

// Fetch returns slow's result, or the context's error if that comes first.
func Fetch(ctx context.Context) (int, error) {
	ch := make(chan int)
	go func() { ch <- slow() }()
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
