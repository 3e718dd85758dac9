// go 1.24
package fixes

import (
	"context"
	"errors"
	"time"
)

func do(ctx context.Context) error { return ctx.Err() }

func discarded(parent context.Context) error {
	ctx, _ := context.WithTimeout(parent, time.Second) // want G204 safe
	return do(ctx)
}

func never(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent) // want G204 safe
	return do(ctx)
}

func somePaths(parent context.Context, bad bool) error {
	ctx, cancel := context.WithDeadline(parent, time.Now()) // want G204 safe
	if bad {
		return errors.New("bad")
	}
	defer cancel()
	return do(ctx)
}

func cause(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent) // want G204 safe
	return do(ctx)
}

// The context goes to a goroutine that may outlive the function: unsafe.
func started(parent context.Context, bad bool) error {
	ctx, cancel := context.WithCancel(parent) // want G204 unsafe
	go func() { _ = do(ctx) }()
	if bad {
		return errors.New("bad")
	}
	cancel()
	return nil
}
