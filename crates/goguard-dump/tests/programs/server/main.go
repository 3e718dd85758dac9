// A service with net/http/pprof and six leaked goroutines. It prints its address, serves
// until its standard input closes, then exits (so no server outlives the test).
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func abandoned(ch chan int) { ch <- 1 }

func main() {
	for i := 0; i < 6; i++ {
		go abandoned(make(chan int))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	go func() {
		buf := make([]byte, 1)
		os.Stdin.Read(buf)
		os.Exit(0)
	}()
	http.Serve(ln, nil)
}
