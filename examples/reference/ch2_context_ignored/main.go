// Chapter 2.2: cancelling the context does not stop a goroutine that never checks it.
// Expected: G102 on the loop in leakyWorker.
package main

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

func leakyWorker(ctx context.Context, id int) {
	ticker := time.NewTicker(1 * time.Second)
	defer ticker.Stop()
	for range ticker.C {
		fmt.Printf("worker-%d still running\n", id)
		runtime.GC()
	}
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	go leakyWorker(ctx, 1)
	time.Sleep(100 * time.Millisecond)
	cancel()
	time.Sleep(3 * time.Second)
}
