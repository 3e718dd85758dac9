// The lab driver for the HTTP handler case (2.4), apart from the main driver because
// importing net/http changes what the runtime's deadlock detector can see.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"

	"goguardlab/ch2handler"
	"goguardlab/internal/measure"
)

func main() {
	if len(os.Args) < 3 || os.Args[1] != "ch2-handler" {
		fmt.Fprintln(os.Stderr, "usage: labhttp ch2-handler buggy|fixed [quick]")
		os.Exit(2)
	}
	buggy := os.Args[2] == "buggy"
	handler := ch2handler.Fixed
	if buggy {
		handler = ch2handler.Buggy
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(handler)}
	go srv.Serve(ln)
	client := &http.Client{}
	series := measure.Series(50, func() {
		resp, err := client.Get("http://" + ln.Addr().String() + "/orders")
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		client.CloseIdleConnections()
	})
	last := series[len(series)-1]
	measure.Report(measure.Result{"requests": 50, "goroutines_left": last.Goroutines, "series": series})
	measure.Dump()
}
