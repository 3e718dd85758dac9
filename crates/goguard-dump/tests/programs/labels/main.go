// Four goroutines parked at one place under pprof labels (two /orders, one /users, one
// whose value needs quoting). Writes the debug=2 dump (run it with
// GODEBUG=tracebacklabels=1: Go 1.27 prints labels by default only for go >= 1.27 modules)
// or, with the argument "1", the debug=1 profile.
package main

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
)

func park() { select {} }

func main() {
	for _, h := range []string{"/orders", "/orders", "/users", "a b, c"} {
		pprof.Do(context.Background(), pprof.Labels("handler", h), func(context.Context) {
			go park()
		})
	}
	level := 2
	if len(os.Args) > 1 && os.Args[1] == "1" {
		level = 1
	}
	// Wait until all four are parked (no sleeping: look at the dump itself).
	for {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 2)
		if strings.Count(b.String(), "[select (no cases)") == 4 {
			break
		}
		runtime.Gosched()
	}
	pprof.Lookup("goroutine").WriteTo(os.Stdout, level)
}
