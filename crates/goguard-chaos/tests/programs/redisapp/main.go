// redisapp is a small service that depends on Redis, for the chaos tests: the standard
// library only, RESP spoken by hand over net.Conn.
//
//	GET /healthz       PING to Redis within -timeout: 200 ok, or 503 with the error
//	GET /get?key=K     GET K: 200 and the value, 404 when missing, 503 when Redis fails
//	GET /set?key=K&value=V
//
// It prints "listening on ADDR" first.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

type conn struct {
	c net.Conn
	r *bufio.Reader
}

// pool keeps a few idle connections; one that failed is closed, never reused.
type pool struct {
	addr    string
	timeout time.Duration
	mu      sync.Mutex
	idle    []*conn
}

var errMissing = errors.New("missing")

func (p *pool) get() (*conn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := net.DialTimeout("tcp", p.addr, p.timeout)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReader(c)}, nil
}

func (p *pool) put(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) < 8 {
		p.idle = append(p.idle, c)
		return
	}
	c.c.Close()
}

// do sends one command and reads its reply: a simple string, a bulk string (nil when
// missing) or an error.
func (p *pool) do(args ...string) (string, error) {
	c, err := p.get()
	if err != nil {
		return "", err
	}
	reply, err := c.roundTrip(p.timeout, args)
	if err != nil && !errors.Is(err, errMissing) {
		c.c.Close()
		return "", err
	}
	p.put(c)
	return reply, err
}

func (c *conn) roundTrip(timeout time.Duration, args []string) (string, error) {
	c.c.SetDeadline(time.Now().Add(timeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case ':':
		return line[1:], nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "", errMissing
		}
		buf := make([]byte, n+2)
		if _, err := readFull(c.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func readFull(r *bufio.Reader, buf []byte) (int, error) {
	read := 0
	for read < len(buf) {
		n, err := r.Read(buf[read:])
		read += n
		if err != nil {
			return read, err
		}
	}
	return read, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	redis := flag.String("redis", "127.0.0.1:6379", "Redis address")
	timeout := flag.Duration("timeout", 300*time.Millisecond, "timeout of each Redis call")
	flag.Parse()
	p := &pool{addr: *redis, timeout: *timeout}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := p.do("PING"); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, err := p.do("GET", r.URL.Query().Get("key"))
		switch {
		case errors.Is(err, errMissing):
			http.Error(w, "missing", http.StatusNotFound)
		case err != nil:
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, v)
		}
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if _, err := p.do("SET", q.Get("key"), q.Get("value")); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Println("cannot listen:", err)
		return
	}
	fmt.Println("listening on", l.Addr())
	http.Serve(l, mux)
}
