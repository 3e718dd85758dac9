// Package ch2sender: the abandoned sender: the caller gives up, the sender blocks forever.
package ch2sender

import (
	"context"
	"errors"
)

func slow(release <-chan struct{}) int {
	<-release
	return 1
}

// Buggy returns at cancellation; the goroutine's unbuffered send then blocks forever.
func Buggy(ctx context.Context, release <-chan struct{}) (int, error) {
	ch := make(chan int)
	go func() { ch <- slow(release) }()
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		return 0, errors.New("gave up")
	}
}
