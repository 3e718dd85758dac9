package main

import "testing"

// The dump through t.Logf: `go test -v` prefixes the first line with `logged_test.go:N: `
// and indents every other line.
func TestDump(t *testing.T) {
	t.Logf("%s", dump())
}
