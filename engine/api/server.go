package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/common/hlog"
	"github.com/prometheus/client_golang/prometheus"

	"nbo/features"
)

// Options configure a Server. Keys is required; every other field has a
// default.
type Options struct {
	// Addr is the address to listen on; ":0" or "127.0.0.1:0" picks a free
	// port (Server.Addr says which). Ignored when Listener is set.
	// Default: 127.0.0.1:8080.
	Addr string
	// Listener, when set, is used instead of listening on Addr. The Server
	// closes it on Shutdown.
	Listener net.Listener
	// Keys are the API keys. Required.
	Keys *KeyRing
	// RateLimit is each key's sustained rate in requests per second.
	// Default: 2000.
	RateLimit float64
	// RateBurst is how many requests a key may make at once. Default:
	// twice RateLimit.
	RateBurst int
	// MaxBodyBytes limits the body of POST /v1/events. Default: 1 MiB.
	MaxBodyBytes int
	// MaxRequestBytes limits every other request body. Default: 64 KiB.
	MaxRequestBytes int
	// MaxBatch is the most events one POST /v1/events may hold. Default: 500.
	MaxBatch int
	// Decode are the event decoder's limits (features.DecodeOptions
	// defaults).
	Decode features.DecodeOptions
	// IngestTimeout bounds how long POST /v1/events waits for the broker's
	// acknowledgement before answering 503. Default: 10s.
	IngestTimeout time.Duration
	// ShutdownTimeout bounds the graceful part of Shutdown. Default: 5s.
	ShutdownTimeout time.Duration
	// Logger receives access logs (one line per request) and errors.
	// Default: slog.Default().
	Logger *slog.Logger
	// AccessLogLevel is the level of access lines for answers below 400
	// and for /readyz's 503 (not ready); 4xx are logged at Warn and other
	// 5xx at Error. Default: Info (the zero value).
	AccessLogLevel slog.Level
	// Registry receives the HTTP metrics (nbo_http_requests_total,
	// nbo_http_request_duration_seconds) and nbo_events_rejected_total.
	// A collector already registered under the same name is shared.
	// Default: a private registry (metrics kept but not exported).
	Registry prometheus.Registerer
	// RejectedEvents, when set, is the counter (label "reason") HTTP
	// rejections are counted in, shared with the Kafka-side ingest loop.
	// Default: nbo_events_rejected_total registered on Registry (or the
	// one already registered there).
	RejectedEvents *prometheus.CounterVec
	// Now is the clock for rate limits and event-time checks. Default:
	// time.Now.
	Now func() time.Time

	// The components. A nil component makes its routes answer 501
	// not_implemented; a nil Readiness means always ready.
	Ingester   Ingester
	Decider    Decider
	Customers  CustomerReader
	OpenOffers OpenOffersReader
	Stats      StatsReader
	Scenarios  ScenarioAdmin
	Models     ModelAdmin
	Bandit     BanditAdmin
	Readiness  Readiness
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Addr == "" && o.Listener == nil {
		o.Addr = "127.0.0.1:8080"
	}
	if o.RateLimit == 0 {
		o.RateLimit = 2000
	}
	if o.RateBurst == 0 {
		o.RateBurst = int(2 * o.RateLimit)
		if o.RateBurst < 1 {
			o.RateBurst = 1
		}
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = 64 << 10
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 500
	}
	o.Decode.EnsureDefaults()
	if o.IngestTimeout == 0 {
		o.IngestTimeout = 10 * time.Second
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Keys == nil {
		errs = append(errs, errors.New("api: no API keys; load them with LoadKeys or create a file with GenerateKeyFile"))
	}
	if o.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("api: rate limit %v is negative; use 0 for the default (2000/s)", o.RateLimit))
	}
	if o.RateBurst < 0 {
		errs = append(errs, fmt.Errorf("api: rate burst %d is negative; use 0 for the default (2 × rate)", o.RateBurst))
	}
	if o.MaxBodyBytes < 0 || o.MaxBodyBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("api: max body bytes %d is out of range; use 0 for the default (1 MiB) or up to 64 MiB", o.MaxBodyBytes))
	}
	if o.MaxRequestBytes < 0 || o.MaxRequestBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("api: max request bytes %d is out of range; use 0 for the default (64 KiB) or up to 64 MiB", o.MaxRequestBytes))
	}
	if o.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("api: max batch %d is negative; use 0 for the default (500)", o.MaxBatch))
	}
	if o.IngestTimeout < 0 || o.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("api: timeouts must not be negative; use 0 for the defaults"))
	}
	if err := o.Decode.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Server is the HTTP API. Create it with New, run it with Serve, stop it
// with Shutdown (or by ending Serve's context).
type Server struct {
	opts    Options
	h       *server.Hertz
	ln      net.Listener
	limiter *limiter
	routes  []*route
	log     *slog.Logger

	idPrefix string
	idSeq    atomic.Uint64

	rejected    *prometheus.CounterVec
	rejectedBy  map[features.Reason]prometheus.Counter
	requests    *prometheus.CounterVec
	durations   *prometheus.HistogramVec
	openapiJSON []byte

	serveOnce sync.Once
	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	serveErr  error
}

// New checks the options, listens and registers the routes. It does not
// serve until Serve is called.
func New(opts Options) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		limiter: newLimiter(opts.Keys.Len(), opts.RateLimit, opts.RateBurst),
		log:     opts.Logger,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	var p [4]byte
	_, _ = rand.Read(p[:])
	s.idPrefix = hex.EncodeToString(p[:]) + "-"
	if err := s.registerMetrics(); err != nil {
		return nil, err
	}
	s.openapiJSON = openapiDoc

	ln := opts.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("api: listening on %s: %w", opts.Addr, err)
		}
	}
	s.ln = ln

	// hertz logs through its own global, plain-text logger (connection
	// errors, mostly); keep it to warnings and turn each line into a
	// structured record, so the service's JSON log stays the one place to
	// look. It is process-wide: the last Server created owns it.
	hlog.SetLevel(hlog.LevelWarn)
	hlog.SetOutput(hertzLog{opts.Logger})
	maxBody := max(opts.MaxBodyBytes, opts.MaxRequestBytes)
	s.h = server.New(
		server.WithListener(ln),
		// Bodies are streamed past the largest route limit, so a body
		// over a limit gets our JSON 413 instead of hertz's plain-text one;
		// bodies within it arrive pre-read, as without streaming.
		server.WithStreamBody(true),
		server.WithMaxRequestBodySize(maxBody),
		server.WithDisablePrintRoute(true),
		server.WithHandleMethodNotAllowed(true),
		server.WithRedirectTrailingSlash(false),
		server.WithRedirectFixedPath(false),
		server.WithExitWaitTime(opts.ShutdownTimeout),
		server.WithReadTimeout(30*time.Second),
		server.WithIdleTimeout(2*time.Minute),
	)
	s.registerRoutes()
	return s, nil
}

// Addr is the address the server listens on (with the port chosen when
// Options.Addr ended in ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers requests until ctx ends or Shutdown is called, then shuts
// down gracefully (bounded by ShutdownTimeout) and returns nil; it returns
// an error only when the server could not run. Call it once.
func (s *Server) Serve(ctx context.Context) error {
	started := false
	s.serveOnce.Do(func() { started = true })
	if !started {
		return errors.New("api: Serve called twice")
	}
	defer close(s.done)
	errc := make(chan error, 1)
	go func() { errc <- s.h.Run() }()
	select {
	case err := <-errc:
		s.serveErr = err
		if err != nil {
			return fmt.Errorf("api: serving on %s: %w", s.Addr(), err)
		}
		return nil
	case <-ctx.Done():
	case <-s.stop:
	}
	// Run marks the engine running just before it serves; wait for that so
	// the shutdown below is not refused as "not running".
	for i := 0; i < 1000 && !s.h.IsRunning(); i++ {
		time.Sleep(time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := s.h.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("api: shutting down", slog.String("err", err.Error()))
	}
	select {
	case <-errc:
	case <-sctx.Done():
	}
	return nil
}

// Shutdown stops Serve (new connections are refused, requests in flight
// finish) and waits for it to return or for ctx to end (ctx.Err()). Safe
// to call more than once; without a running Serve it closes the listener.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	neverServed := false
	s.serveOnce.Do(func() { neverServed = true })
	if neverServed {
		close(s.done)
		return s.ln.Close()
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) registerMetrics() error {
	reg := s.opts.Registry
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nbo_events_rejected_total",
		Help: "Events rejected, by reason code.",
	}, []string{"reason"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nbo_http_requests_total",
		Help: "HTTP requests answered, by route and status class.",
	}, []string{"route", "class"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "nbo_http_request_duration_seconds",
		Help:    "Time from routing a request to writing its answer, by route.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"route"})
	var err error
	if s.opts.RejectedEvents != nil {
		s.rejected = s.opts.RejectedEvents
	} else if s.rejected, err = registerShared(reg, rejected); err != nil {
		return err
	}
	if s.requests, err = registerShared(reg, requests); err != nil {
		return err
	}
	if s.durations, err = registerShared(reg, durations); err != nil {
		return err
	}
	s.rejectedBy = make(map[features.Reason]prometheus.Counter, len(features.Reasons))
	for _, r := range features.Reasons {
		s.rejectedBy[r] = s.rejected.WithLabelValues(string(r))
	}
	return nil
}

// registerShared registers c, or returns the collector of the same
// description already registered (the ingest loop counts Kafka-side
// rejections in the same nbo_events_rejected_total).
func registerShared[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		var zero T
		return zero, fmt.Errorf("api: registering metrics: %w", err)
	}
	return c, nil
}

func (s *Server) countRejected(r features.Reason) {
	if c, ok := s.rejectedBy[r]; ok {
		c.Inc()
		return
	}
	s.rejected.WithLabelValues(string(r)).Inc()
}

// handler is a route's own work, after authentication: scope is what the
// caller's key holds (0 on routes without auth).
type handler func(ctx context.Context, c *app.RequestContext, scope Scope)

// route is one registered route, with its pre-resolved metrics.
type route struct {
	method, path string // hertz form: /v1/customers/:key
	scope        Scope  // needed scope, any of; 0 = no key needed
	h            handler
	byClass      [6]prometheus.Counter
	dur          prometheus.Observer
}

const (
	headerRequestID = "X-Request-ID"
	contentJSON     = "application/json; charset=utf-8"
)

var statusClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (s *Server) newRoute(method, path string, scope Scope, h handler) *route {
	rt := &route{method: method, path: path, scope: scope, h: h}
	for i, cl := range statusClasses {
		rt.byClass[i] = s.requests.WithLabelValues(path, cl)
	}
	rt.dur = s.durations.WithLabelValues(path)
	return rt
}

// wrap turns a route into one hertz handler that does, in order: request
// ID, panic recovery, authentication, scope, rate limit, the route's work,
// then metrics and the access line. It is one closure rather than a chain
// of hertz middlewares so per-request state (key, start time) stays in
// locals.
func (s *Server) wrap(rt *route) app.HandlerFunc {
	return func(ctx context.Context, c *app.RequestContext) {
		st := reqState{start: time.Now(), key: -1}
		s.setRequestID(c)
		defer s.finish(ctx, c, rt, &st)
		var scope Scope
		if rt.scope != 0 {
			tok, ok := bearer(c.Request.Header.Peek("Authorization"))
			if !ok {
				c.Response.Header.Set("WWW-Authenticate", `Bearer realm="nbo"`)
				writeError(c, 401, CodeUnauthorized, "Authorization", "missing API key; send Authorization: Bearer <key>")
				return
			}
			i, ok := s.opts.Keys.Lookup(tok)
			if !ok {
				c.Response.Header.Set("WWW-Authenticate", `Bearer realm="nbo", error="invalid_token"`)
				writeError(c, 401, CodeUnauthorized, "Authorization", "unknown API key")
				return
			}
			st.key = i
			scope = s.opts.Keys.specs[i].Scopes
			if !scope.Allows(rt.scope) {
				writeError(c, 403, CodeForbidden, "", "this API key lacks the scope "+rt.scope.String()+" that "+rt.method+" "+rt.path+" needs")
				return
			}
			if ok, wait := s.limiter.allow(i, s.opts.Now().UnixNano()); !ok {
				c.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
				writeError(c, 429, CodeRateLimited, "", "this API key is over its rate limit; retry after the number of seconds in Retry-After")
				return
			}
		}
		rt.h(ctx, c, scope)
	}
}

type reqState struct {
	start time.Time
	key   int
}

// requestIDOf is the request ID wrap set on the answer, as a string: made
// only when a log line or an error needs it, not per request.
func requestIDOf(c *app.RequestContext) string {
	return string(c.Response.Header.Peek(headerRequestID))
}

// finish is deferred by every request: it turns a panic into 500
// internal (the server keeps serving), then records metrics and writes the
// access line.
func (s *Server) finish(ctx context.Context, c *app.RequestContext, rt *route, st *reqState) {
	if r := recover(); r != nil {
		id := requestIDOf(c)
		s.log.LogAttrs(ctx, slog.LevelError, "api: panic serving request",
			slog.String("request_id", id), slog.String("route", rt.path),
			slog.String("panic", excerptAny(r)), slog.String("stack", string(debug.Stack())))
		c.Response.Reset()
		c.Response.Header.Set(headerRequestID, id)
		writeError(c, 500, CodeInternal, "", "internal error; report request ID "+id)
	}
	status := c.Response.StatusCode()
	d := time.Since(st.start)
	cls := status / 100
	if cls < 1 || cls > 5 {
		cls = 0
	}
	rt.byClass[cls].Inc()
	rt.dur.Observe(d.Seconds())

	level := s.opts.AccessLogLevel
	switch {
	case status == 503 && rt.path == "/readyz":
		// Not ready is an answer, not a failure: a load balancer probes
		// through every catch-up, and those lines must not bury errors.
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = slog.LevelWarn
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	key := ""
	if st.key >= 0 {
		key = s.opts.Keys.specs[st.key].Name
	}
	uri := c.Request.URI()
	s.log.LogAttrs(ctx, level, "http",
		slog.String("request_id", requestIDOf(c)),
		slog.String("method", string(c.Request.Header.Method())),
		slog.String("route", rt.path),
		slog.String("path", redactPath(string(uri.Path()))),
		slog.String("query", redactQuery(string(uri.QueryString()))),
		slog.Int("status", status),
		slog.Int64("dur_us", d.Microseconds()),
		slog.String("key", key),
		slog.Int("bytes_out", len(c.Response.Body())),
		slog.String("remote", c.RemoteAddr().String()),
	)
}

func excerptAny(r any) string {
	switch v := r.(type) {
	case error:
		return excerpt(v.Error())
	case string:
		return excerpt(v)
	}
	return excerpt(fmt.Sprint(r))
}

// setRequestID sets the answer's X-Request-ID: the client's when it is
// sane (1 to 64 bytes of letters, digits and ._:-), else a new one, a
// per-process random prefix and a counter, unique without a syscall per
// request. It allocates nothing: a new ID is formatted in a pooled buffer
// (hertz copies it; a buffer on the stack would escape through hertz's
// setter).
func (s *Server) setRequestID(c *app.RequestContext) {
	if v := c.Request.Header.Peek(headerRequestID); len(v) > 0 && len(v) <= 64 && saneID(v) {
		c.Response.Header.SetBytesV(headerRequestID, v)
		return
	}
	bp := idBufs.Get().(*[32]byte)
	n := copy(bp[:], s.idPrefix)
	c.Response.Header.SetBytesV(headerRequestID, strconv.AppendUint(bp[:n], s.idSeq.Add(1), 36))
	idBufs.Put(bp)
}

// idBufs hold request IDs being formatted: 9 bytes of prefix and at most
// 13 of a base-36 counter.
var idBufs = sync.Pool{New: func() any { return new([32]byte) }}

func saneID(v []byte) bool {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// bearer extracts the token of "Bearer <token>" (scheme case-insensitive).
func bearer(h []byte) ([]byte, bool) {
	const p = "bearer "
	if len(h) <= len(p) {
		return nil, false
	}
	for i := 0; i < len(p); i++ {
		c := h[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return nil, false
		}
	}
	tok := h[len(p):]
	for len(tok) > 0 && tok[0] == ' ' {
		tok = tok[1:]
	}
	for len(tok) > 0 && tok[len(tok)-1] == ' ' {
		tok = tok[:len(tok)-1]
	}
	return tok, len(tok) > 0
}

// writeError answers {code, message, field}.
func writeError(c *app.RequestContext, status int, code, field, message string) {
	b, _ := json.Marshal(&Error{Code: code, Field: field, Message: message})
	c.Data(status, contentJSON, b)
}

func writeAPIError(c *app.RequestContext, e *Error) {
	status := e.Status
	if status == 0 {
		status = 400
	}
	writeError(c, status, e.Code, e.Field, e.Message)
}

// writeJSON answers v as JSON.
func (s *Server) writeJSON(ctx context.Context, c *app.RequestContext, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.internal(ctx, c, fmt.Errorf("encoding the answer: %w", err))
		return
	}
	c.Data(status, contentJSON, b)
}

// fail maps a component's error to an answer.
func (s *Server) fail(ctx context.Context, c *app.RequestContext, err error) {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		writeAPIError(c, ae)
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		c.Response.Header.Set("Retry-After", "1")
		writeError(c, 503, CodeUnavailable, "", "a dependency is unavailable; nothing was done, retry after Retry-After seconds")
		s.log.LogAttrs(ctx, slog.LevelWarn, "api: unavailable",
			slog.String("request_id", string(c.Response.Header.Peek(headerRequestID))), slog.String("err", err.Error()))
	case errors.Is(err, ErrNotFound):
		writeError(c, 404, CodeNotFound, "", "not found")
	default:
		s.internal(ctx, c, err)
	}
}

func (s *Server) internal(ctx context.Context, c *app.RequestContext, err error) {
	id := string(c.Response.Header.Peek(headerRequestID))
	s.log.LogAttrs(ctx, slog.LevelError, "api: internal error", slog.String("request_id", id), slog.String("err", err.Error()))
	writeError(c, 500, CodeInternal, "", "internal error; report request ID "+id)
}

func notImplemented(c *app.RequestContext, what string) {
	writeError(c, 501, CodeNotImplemented, "", what+" is not configured on this server")
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readBody reads the request body into buf, up to limit bytes. Over the
// limit it answers 413 and closes the connection (the rest of the body is
// not read), and returns false. batch says the route takes a batch, which
// the client can split.
func readBody(c *app.RequestContext, limit int, buf []byte, batch bool) ([]byte, bool) {
	if cl := c.Request.Header.ContentLength(); cl > limit {
		tooLarge(c, limit, batch)
		return nil, false
	}
	if !c.Request.IsBodyStream() {
		b := c.Request.Body()
		if len(b) > limit {
			tooLarge(c, limit, batch)
			return nil, false
		}
		return append(buf, b...), true
	}
	r := c.RequestBodyStream()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			tooLarge(c, limit, batch)
			return nil, false
		}
		if err == io.EOF {
			return buf, true
		}
		if err != nil {
			writeError(c, 400, CodeBadRequest, "", "could not read the request body")
			c.SetConnectionClose()
			return nil, false
		}
	}
}

func tooLarge(c *app.RequestContext, limit int, batch bool) {
	c.SetConnectionClose()
	msg := "the body is over this route's limit of " + strconv.Itoa(limit) + " bytes"
	if limit%1024 == 0 {
		msg += " (" + strconv.Itoa(limit/1024) + " KiB)"
	}
	if batch {
		msg += "; send smaller batches"
	}
	writeError(c, 413, CodePayloadTooLarge, "", msg)
}

// hertzLog turns hertz's log lines into slog records.
type hertzLog struct{ log *slog.Logger }

func (h hertzLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	h.log.LogAttrs(context.Background(), slog.LevelWarn, "hertz", slog.String("line", excerptN(line, 512)))
	return len(p), nil
}

// excerptN shortens s to at most n bytes on a rune boundary.
func excerptN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
