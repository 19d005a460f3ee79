package testenv

import (
	"io"
	"net"
	"sync"
	"time"
)

// Proxy stands between clients (a scheduler process, the test's own
// clients) and the API server, so that a test can take the network away or
// replace the server behind it: Cut closes every connection and refuses new
// ones, as an unreachable API server does; Restore listens again on the
// same address; SetBackend points new connections at another server.
type Proxy struct {
	t       TB
	backend string
	// Addr is where clients connect (host:port).
	Addr string

	mu       sync.Mutex
	listener net.Listener
	conns    map[net.Conn]struct{}
}

// StartProxy forwards a loopback port to backend (host:port) until t ends.
func StartProxy(t TB, backend string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, backend: backend, conns: map[net.Conn]struct{}{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.Addr = l.Addr().String()
	p.serve(l)
	t.Cleanup(p.Cut)
	return p
}

// SetBackend sends new connections to backend.
func (p *Proxy) SetBackend(backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = backend
}

func (p *Proxy) serve(l net.Listener) {
	p.mu.Lock()
	p.listener = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *Proxy) pipe(client net.Conn) {
	p.mu.Lock()
	backend := p.backend
	p.mu.Unlock()
	server, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	if p.listener == nil { // cut meanwhile
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	copyHalf := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go copyHalf(server, client)
	go copyHalf(client, server)
	<-done
	_ = client.Close()
	_ = server.Close()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// Cut closes the listener and every open connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listener != nil {
		_ = p.listener.Close()
		p.listener = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// Restore listens on the proxy's address again.
func (p *Proxy) Restore() {
	p.t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", p.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: listening on %s again: %v", p.Addr, err)
	}
	p.serve(l)
}
