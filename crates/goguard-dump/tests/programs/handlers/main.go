// An HTTP server whose /block handler waits for ever on a channel nobody sends on: it sends
// itself 30 requests, waits until the 30 handlers are parked, and writes the debug=2
// goroutine dump to standard output.
package main

import (
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

var never = make(chan struct{})

func block(w http.ResponseWriter, r *http.Request) {
	<-never
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/block", block)
	go http.Serve(ln, mux)
	for i := 0; i < 30; i++ {
		go http.Get("http://" + ln.Addr().String() + "/block")
	}
	for {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 2)
		if strings.Count(b.String(), "main.block(") == 30 {
			os.Stdout.WriteString(b.String())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
