// Package ch2handler: an HTTP handler starts work that is not bound to the request (2.4).
package ch2handler

import (
	"net/http"
	"time"
)

// Buggy answers at once and leaves the audit running after the client has gone.
func Buggy(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	go func() {
		time.Sleep(time.Hour) // the audit service hangs
		record(path)
	}()
	w.WriteHeader(http.StatusAccepted)
}

func record(string) {}
