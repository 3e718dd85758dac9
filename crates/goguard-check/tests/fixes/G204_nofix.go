// go 1.24
package fixes

import (
	"context"
	"time"
)

func do(ctx context.Context) error { return ctx.Err() }

// `cancel` is taken by a parameter: naming the discarded one would shadow it.
func taken(parent context.Context, cancel func()) error {
	ctx, _ := context.WithTimeout(parent, time.Second) // want G204 none
	cancel()
	return do(ctx)
}

type holder struct {
	ctx    context.Context
	cancel context.CancelFunc
}

var held = map[string]holder{}

// The context is kept for later and its cancel handed to the holder: no defer.
func keep(parent context.Context, key string) context.Context {
	ctx, cancel := context.WithCancel(parent) // want G204 none
	if h, ok := held[key]; ok {
		return h.ctx
	}
	held[key] = holder{ctx: ctx, cancel: cancel}
	return ctx
}
