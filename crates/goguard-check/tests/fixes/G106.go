// go 1.24
package fixes

import (
	"context"
	"errors"
	"time"
)

type result struct{}

func slow() result { return result{} }

func withTimeout() (result, error) {
	ch := make(chan result)
	go func() {
		ch <- slow() // want G106 safe
	}()
	select {
	case r := <-ch:
		return r, nil
	case <-time.After(time.Second):
		return result{}, errors.New("timeout")
	}
}

func earlyReturn(check func() error) (result, error) {
	ch := make(chan result, 0)
	go func() { ch <- slow() }() // want G106 safe
	if err := check(); err != nil {
		return result{}, err
	}
	return <-ch, nil
}

// Work after the send relied on the receiver having taken the value: unsafe.
func workAfter(ctx context.Context, log func(string)) (result, error) {
	ch := make(chan result)
	go func() {
		ch <- slow() // want G106 unsafe
		log("received")
	}()
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
}
