// Chapter 3.3: context.WithTimeout with select. Correct code: the deadline drift the
// reference measures is a runtime property (measured by `goguard lab`), not a code defect.
// Expected: no finding.
package main

import (
	"context"
	"fmt"
	"time"
)

func main() {
	deadline := time.Now().Add(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	select {
	case <-ctx.Done():
		fmt.Printf("deadline drift: %v\n", time.Since(deadline))
	}
}
