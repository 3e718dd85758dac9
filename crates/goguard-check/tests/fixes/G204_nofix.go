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
