// A service whose six Fetch calls give up and leave their senders blocked; it prints a
// debug=2 goroutine dump once all six are stuck. Build it with -trimpath so the dump's paths
// are module paths, as in a release binary.
package main

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	"example.com/svc/worker"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // every Fetch gives up at once: no timing involved
	for i := 0; i < 6; i++ {
		worker.Fetch(ctx)
	}
	worker.Release()
	for {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 2)
		if strings.Count(buf.String(), "[chan send") >= 6 {
			os.Stdout.Write(buf.Bytes())
			return
		}
		runtime.Gosched()
	}
}
