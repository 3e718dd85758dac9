// Writes a goroutine dump (40 abandoned senders and main: 41 goroutines) the ways programs
// log one, chosen by the first argument:
//   - "log": log.Printf("%s", buf), a prefix on the first line only;
//   - "lines": log.Println per line, a prefix on every line;
//   - "slogjson": slog's JSON handler, the whole dump in one field;
//   - "jsonlines": slog's JSON handler, one record per line of the dump;
//   - "slogtext": slog's text handler, the dump quoted in one value.
//
// logged_test.go writes it through t.Logf under `go test -v`.
package main

import (
	"bytes"
	"log"
	"log/slog"
	"os"
	"runtime"
	"strings"
)

func abandoned(ch chan int) { ch <- 1 }

// dump parks 40 senders and returns runtime.Stack's dump of every goroutine.
func dump() []byte {
	for i := 0; i < 40; i++ {
		go abandoned(make(chan int))
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if bytes.Count(buf[:n], []byte("[chan send]:")) == 40 {
			return buf[:n]
		}
		runtime.Gosched()
	}
}

func main() {
	d := dump()
	switch os.Args[1] {
	case "log":
		log.New(os.Stdout, "", log.LstdFlags).Printf("%s", d)
	case "lines":
		l := log.New(os.Stdout, "app ", log.LstdFlags|log.Lmicroseconds)
		for _, line := range strings.Split(strings.TrimSuffix(string(d), "\n"), "\n") {
			l.Println(line)
		}
	case "slogjson":
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("goroutine dump", "stack", string(d))
	case "jsonlines":
		l := slog.New(slog.NewJSONHandler(os.Stdout, nil))
		for _, line := range strings.Split(strings.TrimSuffix(string(d), "\n"), "\n") {
			l.Info(line)
		}
	case "slogtext":
		slog.New(slog.NewTextHandler(os.Stdout, nil)).Error("goroutine dump", "stack", string(d))
	}
}
