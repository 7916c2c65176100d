package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminServer serves /metrics (Prometheus) and /debug/pprof/ on plain
// net/http. It is for operators, not clients: it has no API keys, so bind
// it to loopback (the default) or a private interface.
type AdminServer struct {
	ln  net.Listener
	srv *http.Server
}

// DefaultAdminAddr is the admin listener's default address (loopback).
const DefaultAdminAddr = "127.0.0.1:9090"

// NewAdminServer listens on addr (DefaultAdminAddr when empty; ":0" picks
// a port) and serves the registry's metrics and pprof.
func NewAdminServer(addr string, registry *prometheus.Registry) (*AdminServer, error) {
	if registry == nil {
		return nil, errors.New("api: admin server needs a metrics registry")
	}
	if addr == "" {
		addr = DefaultAdminAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: listening for the admin server on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &AdminServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// Addr is the bound address.
func (a *AdminServer) Addr() string { return a.ln.Addr().String() }

// Serve serves until ctx ends, then shuts down (waiting at most 5s for
// requests in flight, such as a CPU profile) and returns nil; it returns
// an error only when serving failed.
func (a *AdminServer) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("api: admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(sctx); err != nil {
		a.srv.Close()
	}
	<-errc
	return nil
}
