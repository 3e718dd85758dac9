// A service with net/http/pprof and the reference's leak forms, a known number of each
// (six abandoned senders are the biggest group). It prints its address (and, with
// SERVE_TLS=DIR, writes its self-signed certificate to DIR/ca.pem and serves https), serves
// until its standard input closes, then exits (so no server outlives the test).
//
// LEAK_PER_SCRAPE=N leaks N more goroutines each time a goroutine profile is fetched, so a
// watcher sees a leak grow at a known rate without the test having to wait for time to pass.
// ONLY_DEBUG1=1 answers 404 to every goroutine profile but debug=1, as an old or restricted
// server might. LISTEN=ADDR picks the address; IGNORE_STDIN=1 keeps serving when standard
// input is closed (for runs supervised by goguard run, which stops it by signal).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

func abandoned(ch chan int) { ch <- 1 }

func scrapeLeak(ch chan int) { ch <- 1 }

// The reference's leak forms, a known number of each (see startLeaks).
func rangeUnclosed(ch chan int) {
	for range ch {
	}
}

func lockForever(mu *sync.Mutex) { mu.Lock() }

func waitForever(wg *sync.WaitGroup) { wg.Wait() }

func tickerLoop(done chan struct{}) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-done:
			return
		}
	}
}

// startLeaks starts 6 abandoned senders, 4 receivers ranging over channels nobody closes,
// 3 goroutines locking a held mutex, 2 waiting on a WaitGroup nobody finishes and 2 ticker
// loops whose done channel never closes, and returns once all 17 are parked.
func startLeaks() {
	for i := 0; i < 6; i++ {
		go abandoned(make(chan int))
	}
	for i := 0; i < 4; i++ {
		go rangeUnclosed(make(chan int))
	}
	mu := new(sync.Mutex)
	mu.Lock()
	for i := 0; i < 3; i++ {
		go lockForever(mu)
	}
	wg := new(sync.WaitGroup)
	wg.Add(1)
	for i := 0; i < 2; i++ {
		go waitForever(wg)
	}
	done := make(chan struct{})
	for i := 0; i < 2; i++ {
		go tickerLoop(done)
	}
	// And a healthy worker pool: 8 workers idle on a queue the service keeps.
	for i := 0; i < 8; i++ {
		go worker(jobs)
	}
	held = append(held, mu, wg, done)
	want := map[string]int{"[chan send]": 6, "[chan receive]": 12, "[sync.Mutex.Lock]": 3, "[sync.WaitGroup.Wait]": 2, "[select]": 2}
	for {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 2)
		parked := true
		for state, n := range want {
			if strings.Count(b.String(), " "+state+":\n") < n {
				parked = false
			}
		}
		if parked {
			return
		}
		runtime.Gosched()
	}
}

// jobs is a live queue: reachable from a global, so Go's leak detector leaves its
// workers alone.
var jobs = make(chan func())

func worker(queue chan func()) {
	for job := range queue {
		job()
	}
}

// held keeps the leaks' shared objects reachable, as a real service's globals would.
var held []any

func main() {
	startLeaks()
	perScrape, _ := strconv.Atoi(os.Getenv("LEAK_PER_SCRAPE"))
	onlyDebug1 := os.Getenv("ONLY_DEBUG1") == "1"
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/goroutine") {
			if onlyDebug1 && (r.URL.Path != "/debug/pprof/goroutine" || r.URL.Query().Get("debug") != "1") {
				http.NotFound(w, r)
				return
			}
			for i := 0; i < perScrape; i++ {
				go scrapeLeak(make(chan int))
			}
		}
		http.DefaultServeMux.ServeHTTP(w, r)
	})
	addr := "127.0.0.1:0"
	if a := os.Getenv("LISTEN"); a != "" {
		addr = a
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if dir := os.Getenv("SERVE_TLS"); dir != "" {
		cert, err := selfSigned(filepath.Join(dir, "ca.pem"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	fmt.Println(ln.Addr().String())
	if os.Getenv("IGNORE_STDIN") == "" {
		go func() {
			buf := make([]byte, 1)
			os.Stdin.Read(buf)
			os.Exit(0)
		}()
	}
	http.Serve(ln, handler)
}

// selfSigned makes a leaf certificate for 127.0.0.1 (a client trusts it as its own root) and writes it, PEM-encoded, to caPath.
func selfSigned(caPath string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "goguard test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(caPath, pemBytes, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
