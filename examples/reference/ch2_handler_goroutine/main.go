// Chapter 2.4: an HTTP handler starts a goroutine not bound to r.Context().
// Expected: G104 on the go statement in handler; fixedHandler is clean.
package main

import (
	"context"
	"log"
	"net/http"
	"time"
)

func handler(w http.ResponseWriter, r *http.Request) {
	go func() {
		time.Sleep(10 * time.Second)
		log.Println("work done") // runs even after the client left
	}()
}

func fixedHandler(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	go func(ctx context.Context) {
		select {
		case <-time.After(10 * time.Second):
			log.Println("work done")
		case <-ctx.Done():
			log.Println("canceled:", ctx.Err())
		}
	}(ctx)
}

func main() {
	http.HandleFunc("/leaky", handler)
	http.HandleFunc("/fixed", fixedHandler)
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}
