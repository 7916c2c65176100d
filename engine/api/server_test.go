package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"nbo/engine"
	"nbo/features"
)

// The tests run a real hertz server on loopback and talk to it with a
// plain net/http client. The engine's components are small function-field
// fakes: the pipeline behind them is tested in its own packages.

var testNow = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// Test keys, one per scope, and the tokens clients present.
var testTokens = map[string]string{
	"ingest":      "tok-ingest-0123456789",
	"decide":      "tok-decide-0123456789",
	"clienteling": "tok-clienteling-0123456789",
	"admin":       "tok-admin-0123456789",
}

func testRing(t testing.TB) *KeyRing {
	t.Helper()
	var specs []KeySpec
	for _, name := range []string{"ingest", "decide", "clienteling", "admin"} {
		sc, _ := ParseScope(name)
		specs = append(specs, KeySpec{Name: name + "-key", SHA256: sha(testTokens[name]), Scopes: sc})
	}
	r, err := NewKeyRing(specs)
	require.NoError(t, err)
	return r
}

func sha(s string) (h [32]byte) {
	b, _ := hexDecode(HashKey(s))
	copy(h[:], b)
	return h
}

// syncBuffer collects log output from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakes are the components, each a function field a test may replace.
type fakes struct {
	ingest   func(ctx context.Context, evs []features.Event) error
	decide   func(ctx context.Context, req *engine.DecideRequest) (*engine.Decision, error)
	customer func(ctx context.Context, key features.Key) (any, error)
	ready    atomic.Bool

	mu       sync.Mutex
	ingested []features.Event
	lastReq  *engine.DecideRequest
}

// set changes the fakes under their lock: the race detector does not see
// a request over TCP as ordering the test's writes before the server's reads.
func (f *fakes) set(fn func(f *fakes)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakes) Ingest(ctx context.Context, evs []features.Event) error {
	f.mu.Lock()
	ingest := f.ingest
	f.mu.Unlock()
	if ingest != nil {
		if err := ingest(ctx, evs); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.ingested = append(f.ingested, evs...)
	f.mu.Unlock()
	return nil
}

func (f *fakes) Decide(ctx context.Context, req *engine.DecideRequest) (*engine.Decision, error) {
	f.mu.Lock()
	cp := *req
	f.lastReq = &cp
	decide := f.decide
	f.mu.Unlock()
	if decide != nil {
		return decide(ctx, req)
	}
	if req.Placement == "panic" {
		panic("boom: a bug in the pipeline")
	}
	return &engine.Decision{
		DecisionID: "d-1", Customer: "member:M1", Group: engine.GroupTreatment,
		Offers: []engine.OfferResult{{OfferID: "o1", Type: "coupon", Title: "t", Text: "x", Value: 500, Reason: "because", Score: engine.ScoreParts{Total: 1}}},
	}, nil
}

func (f *fakes) last() *engine.DecideRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReq
}

func (f *fakes) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ingested)
}

func (f *fakes) since(i int) []features.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]features.Event(nil), f.ingested[i:]...)
}

func (f *fakes) Customer(ctx context.Context, key features.Key) (any, error) {
	f.mu.Lock()
	customer := f.customer
	f.mu.Unlock()
	if customer != nil {
		return customer(ctx, key)
	}
	if key == "member:M1" {
		return map[string]any{"customer": "member:M1"}, nil
	}
	return nil, fmt.Errorf("looking up %s: %w", key, ErrNotFound)
}

func (f *fakes) OpenOffers(_ context.Context, key features.Key, locale engine.Locale) (any, error) {
	if key == "member:M1" {
		return map[string]any{"customer": "member:M1", "locale": locale, "offers": []any{}}, nil
	}
	return nil, fmt.Errorf("looking up %s: %w", key, ErrNotFound)
}

func (f *fakes) Stats(context.Context) (any, error) { return map[string]int{"decisions": 1}, nil }
func (f *fakes) ScenarioStatus(context.Context) (any, error) {
	return map[string]string{"version": "v1"}, nil
}
func (f *fakes) ReloadScenarios(context.Context) (any, error) {
	return map[string]string{"version": "v2"}, nil
}
func (f *fakes) LoadModel(_ context.Context, path string) (any, error) {
	if path == "bad.model" {
		return nil, &Error{Status: 422, Code: "bad_model", Field: "path", Message: "not a model artifact"}
	}
	return map[string]string{"loaded": path}, nil
}
func (f *fakes) ListModels(context.Context) (any, error) {
	return map[string][]string{"models": {}}, nil
}
func (f *fakes) Ready() bool { return f.ready.Load() }
func (f *fakes) ResetOffer(_ context.Context, offerID string) (any, error) {
	return map[string]string{"reset": offerID}, nil
}

type harness struct {
	srv  *Server
	base string
	f    *fakes
	logs *syncBuffer
	reg  *prometheus.Registry
	cl   *http.Client
}

func start(t testing.TB, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{f: &fakes{}, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	h.f.ready.Store(true)
	opts := Options{
		Addr:      "127.0.0.1:0",
		Keys:      testRing(t),
		Logger:    slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry:  h.reg,
		Now:       func() time.Time { return testNow },
		Ingester:  h.f,
		Decider:   h.f,
		Customers: h.f, OpenOffers: h.f,
		Stats:     h.f,
		Scenarios: h.f,
		Models:    h.f,
		Bandit:    h.f,
		Readiness: h.f,
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	require.NoError(t, err)
	h.srv = srv
	h.base = "http://" + srv.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	h.cl = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(func() {
		h.cl.CloseIdleConnections()
		cancel()
		require.NoError(t, <-done)
	})
	// Wait until it answers.
	require.Eventually(t, func() bool {
		resp, err := h.cl.Get(h.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 5*time.Second, 5*time.Millisecond)
	return h
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(a.body, &m), "body: %s", a.body)
	return m
}

// do sends a request; token "" sends no Authorization header.
func (h *harness) do(t testing.TB, method, path, token string, body io.Reader, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, h.base+path, body)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.cl.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func str(s string) io.Reader { return strings.NewReader(s) }

func event(id, typ string) string {
	return `{"event_id":"` + id + `","ts":"2026-11-20T09:59:00Z","type":"` + typ + `","channel":"web","ids":{"member":"M1"}}`
}

// requireError checks an error answer's status and code.
func requireError(t *testing.T, a answer, status int, code string) map[string]any {
	t.Helper()
	require.Equal(t, status, a.status, "body: %s", a.body)
	require.Equal(t, "application/json; charset=utf-8", a.header.Get("Content-Type"))
	m := a.json(t)
	require.Equal(t, code, m["code"], "body: %s", a.body)
	require.NotEmpty(t, m["message"])
	return m
}

// routeCase is a valid request for one route and the status it gets when
// the key may use it.
type routeCase struct {
	method, path, body string
	ok                 int
}

var routeCases = []routeCase{
	{"POST", "/v1/events", event("e1", "page_view"), 202},
	{"POST", "/v1/decide", `{"ids":{"member":"M1"},"channel":"app"}`, 200},
	{"GET", "/v1/offers?customer=member:M1&channel=app", "", 200},
	{"GET", "/v1/customers/member:M1", "", 200},
	{"GET", "/v1/customers/member:M1/offers", "", 200},
	{"GET", "/v1/stats", "", 200},
	{"GET", "/v1/admin/scenarios", "", 200},
	{"POST", "/v1/admin/scenarios", "", 200},
	{"GET", "/v1/admin/models", "", 200},
	{"POST", "/v1/admin/models", `{"path":"m.model"}`, 200},
	{"POST", "/v1/admin/bandit/reset", `{"offer_id":"o1"}`, 200},
	{"GET", "/healthz", "", 200},
	{"GET", "/readyz", "", 200},
	{"HEAD", "/healthz", "", 200},
	{"HEAD", "/readyz", "", 200},
	{"GET", "/openapi.json", "", 200},
}

func TestAuthMatrix(t *testing.T) {
	h := start(t, nil)
	// Every registered route has a case, and every case a route.
	byRoute := map[string]routeCase{}
	for _, rc := range routeCases {
		p, _, _ := strings.Cut(rc.path, "?")
		p = strings.Replace(p, "member:M1", "{key}", 1)
		byRoute[rc.method+" "+p] = rc
	}
	routes := h.srv.Routes()
	require.Len(t, byRoute, len(routes))
	for _, rt := range routes {
		rc, ok := byRoute[rt.Method+" "+rt.Path]
		require.True(t, ok, "no auth case for %s %s", rt.Method, rt.Path)
		creds := []string{"none", "wrong", "ingest", "decide", "clienteling", "admin"}
		for _, cred := range creds {
			t.Run(rt.Method+" "+rt.Path+" with "+cred+" key", func(t *testing.T) {
				tok := testTokens[cred]
				if cred == "wrong" {
					tok = "tok-not-a-key"
				}
				var body io.Reader
				if rc.body != "" {
					body = str(rc.body)
				}
				a := h.do(t, rc.method, rc.path, tok, body)
				sc, _ := ParseScope(cred)
				switch {
				case rt.Scope == 0:
					require.Equal(t, rc.ok, a.status, "body: %s", a.body)
				case cred == "none" || cred == "wrong":
					requireError(t, a, 401, CodeUnauthorized)
					require.Contains(t, a.header.Get("WWW-Authenticate"), "Bearer")
				case !sc.Allows(rt.Scope):
					requireError(t, a, 403, CodeForbidden)
				default:
					require.Equal(t, rc.ok, a.status, "body: %s", a.body)
				}
			})
		}
	}
}

func TestScopes(t *testing.T) {
	tests := []struct {
		name       string
		have, need Scope
		allowed    bool
	}{
		{"a key with the needed scope is allowed", ScopeDecide, ScopeDecide, true},
		{"admin implies every scope", ScopeAdmin, ScopeIngest, true},
		{"a route needing clienteling or admin lets admin in", ScopeAdmin, ScopeClienteling, true},
		{"decide does not imply ingest", ScopeDecide, ScopeIngest, false},
		{"clienteling does not imply admin", ScopeClienteling, ScopeAdmin, false},
		{"a key with no scopes is refused", 0, ScopeDecide, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.allowed, tc.have.Allows(tc.need))
		})
	}
}

func TestRateLimitAnswers429WithRetryAfterAndRefills(t *testing.T) {
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	h := start(t, func(o *Options) {
		o.RateLimit = 1
		o.RateBurst = 2
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	path := "/v1/offers?customer=member:M1&channel=app"
	require.Equal(t, 200, h.do(t, "GET", path, testTokens["decide"], nil).status)
	require.Equal(t, 200, h.do(t, "GET", path, testTokens["decide"], nil).status)
	a := h.do(t, "GET", path, testTokens["decide"], nil)
	requireError(t, a, 429, CodeRateLimited)
	require.Equal(t, "1", a.header.Get("Retry-After"))

	// Another key has its own bucket.
	require.Equal(t, 200, h.do(t, "GET", path, testTokens["admin"], nil).status)

	// After the advertised wait a token is back, and only one.
	clock.Add(int64(time.Second))
	require.Equal(t, 200, h.do(t, "GET", path, testTokens["decide"], nil).status)
	requireError(t, h.do(t, "GET", path, testTokens["decide"], nil), 429, CodeRateLimited)
}

func TestRetryAfterIsWholeSecondsRoundedUp(t *testing.T) {
	l := newLimiter(1, 0.25, 1) // one request every 4 s
	now := testNow.UnixNano()
	ok, _ := l.allow(0, now)
	require.True(t, ok)
	ok, wait := l.allow(0, now)
	require.False(t, ok)
	require.Equal(t, 4, retryAfterSeconds(wait))
	ok, wait = l.allow(0, now+int64(3500*time.Millisecond))
	require.False(t, ok)
	require.Equal(t, 1, retryAfterSeconds(wait))
}

// chunked hides a reader's length so net/http sends the body chunked,
// without a Content-Length.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestBodyLimits(t *testing.T) {
	h := start(t, nil)
	big := `[` + strings.Repeat(event("e1", "page_view")+",", (1<<20)/100) + event("e2", "page_view") + `]`
	require.Greater(t, len(big), 1<<20)

	t.Run("an events body over 1 MiB with a Content-Length is 413", func(t *testing.T) {
		requireError(t, h.do(t, "POST", "/v1/events", testTokens["ingest"], str(big)), 413, CodePayloadTooLarge)
	})
	t.Run("an events body over 1 MiB sent chunked is 413", func(t *testing.T) {
		requireError(t, h.do(t, "POST", "/v1/events", testTokens["ingest"], chunked{str(big)}), 413, CodePayloadTooLarge)
	})
	t.Run("a decide body over 64 KiB is 413", func(t *testing.T) {
		body := `{"ids":{"member":"M1"},"channel":"app","placement":"` + strings.Repeat("x", 70<<10) + `"}`
		requireError(t, h.do(t, "POST", "/v1/decide", testTokens["decide"], str(body)), 413, CodePayloadTooLarge)
	})
	t.Run("a body 4 MiB over every limit is 413 too, not hertz's plain text", func(t *testing.T) {
		body := strings.Repeat("x", 5<<20)
		requireError(t, h.do(t, "POST", "/v1/decide", testTokens["decide"], str(body)), 413, CodePayloadTooLarge)
	})
	t.Run("the server keeps answering after a 413", func(t *testing.T) {
		require.Equal(t, 202, h.do(t, "POST", "/v1/events", testTokens["ingest"], str(event("e3", "page_view"))).status)
	})
}

func TestStrictDecoding(t *testing.T) {
	h := start(t, nil)
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code, field                     string
	}{
		{"an unknown field in a decide body is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"app","colour":"red"}`, 400, CodeUnknownField, "colour"},
		{"an unknown identifier namespace is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1","passport":"X"},"channel":"app"}`, 400, CodeUnknownField, "ids.passport"},
		{"a field of the wrong type is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"app","limit":"three"}`, 400, CodeBadRequest, "limit"},
		{"malformed JSON is 400", "POST", "/v1/decide", "decide", `{"ids":`, 400, CodeBadRequest, ""},
		{"trailing data after the object is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"app"} {}`, 400, CodeBadRequest, ""},
		{"a missing channel is 400", "POST", "/v1/decide", "decide", `{"ids":{"member":"M1"}}`, 400, CodeMissingField, "channel"},
		{"a channel offers are never shown on is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"social"}`, 400, CodeBadRequest, "channel"},
		{"missing ids is 400", "POST", "/v1/decide", "decide", `{"channel":"app"}`, 400, CodeMissingField, "ids"},
		{"a bad phone number is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"phone":"12ab"},"channel":"app"}`, 400, CodeBadID, "ids.phone"},
		{"a limit out of range is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"app","limit":99}`, 400, CodeBadRequest, "limit"},
		{"an unknown locale is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"app","locale":"fr"}`, 400, CodeBadRequest, "locale"},
		{"now from a non-admin key is 403", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"app","now":"2026-11-20T10:00:00Z"}`, 403, CodeForbidden, "now"},
		{"a bad now from an admin key is 400", "POST", "/v1/decide", "admin",
			`{"ids":{"member":"M1"},"channel":"app","now":"yesterday"}`, 400, CodeBadRequest, "now"},
		// A decision at 9999-12-31 was made (budget reserved, contact
		// recorded) and then answered 500: its expiry was past year 9999.
		{"a now too far in the future is 400", "POST", "/v1/decide", "admin",
			`{"ids":{"member":"M1"},"channel":"app","now":"9999-12-31T23:59:59Z"}`, 400, CodeBadRequest, "now"},
		{"a now before 2000 is 400", "POST", "/v1/decide", "admin",
			`{"ids":{"member":"M1"},"channel":"app","now":"1970-01-01T00:00:00Z"}`, 400, CodeBadRequest, "now"},
		{"an unknown query parameter on offers is 400", "GET", "/v1/offers?customer=member:M1&channel=app&colour=red", "decide",
			"", 400, CodeUnknownField, "colour"},
		{"offers without a customer is 400", "GET", "/v1/offers?channel=app", "decide", "", 400, CodeMissingField, "customer"},
		{"a customer key without a namespace is 400", "GET", "/v1/customers/M1", "clienteling", "", 400, CodeBadID, "key"},
		{"an unknown field in a model load is 400", "POST", "/v1/admin/models", "admin",
			`{"path":"m","force":true}`, 400, CodeUnknownField, "force"},
		{"a model load without a path is 400", "POST", "/v1/admin/models", "admin", `{}`, 400, CodeMissingField, "path"},
		{"a field in a scenario reload is 400", "POST", "/v1/admin/scenarios", "admin", `{"dry_run":true}`, 400, CodeUnknownField, "dry_run"},
		{"a query parameter on stats is 400", "GET", "/v1/stats?x=1", "admin", "", 400, CodeUnknownField, "x"},
		{"a component's own error passes through", "POST", "/v1/admin/models", "admin", `{"path":"bad.model"}`, 422, "bad_model", "path"},
		{"an unknown customer is 404", "GET", "/v1/customers/member:M404", "clienteling", "", 404, CodeNotFound, ""},
		{"an unknown route is 404", "GET", "/v1/nothing", "", "", 404, CodeNotFound, ""},
		{"a wrong method is 405", "DELETE", "/v1/decide", "", "", 405, CodeMethodNotAllowed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = str(tc.body)
			}
			m := requireError(t, h.do(t, tc.method, tc.path, testTokens[tc.token], body), tc.status, tc.code)
			field, _ := m["field"].(string)
			require.Equal(t, tc.field, field)
		})
	}
}

func TestDecideRequestReachesTheDeciderValidated(t *testing.T) {
	h := start(t, nil)
	a := h.do(t, "POST", "/v1/decide", testTokens["admin"], str(`{"ids":{"member":"M1","phone":"+86 138-0013-8000"},
		"channel":"tablet","placement":"home","store":"S1","limit":5,"locale":"en","context":{"weather":"rain"},
		"now":"2026-11-20T18:00:00+08:00"}`))
	require.Equal(t, 200, a.status, "body: %s", a.body)
	m := a.json(t)
	require.Equal(t, "d-1", m["decision_id"])
	require.Len(t, m["offers"], 1)

	req := h.f.last()
	require.Equal(t, "M1", req.IDs.Member)
	hashed, ok := features.HashIdentifier(features.NSPhone, "+86 138-0013-8000")
	require.True(t, ok)
	require.Equal(t, hashed, req.IDs.Phone, "phones are hashed as events hash them")
	require.Equal(t, features.ChannelTablet, req.Channel)
	require.Equal(t, "home", req.Placement)
	require.Equal(t, "S1", req.Store)
	require.Equal(t, 5, req.Limit)
	require.Equal(t, engine.LocaleEn, req.Locale)
	require.Equal(t, map[string]string{"weather": "rain"}, req.Context)
	require.NotNil(t, req.Now)
	require.True(t, req.Now.Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)))

	// Defaults, through the GET form.
	a = h.do(t, "GET", "/v1/offers?customer=member:M1&channel=app", testTokens["decide"], nil)
	require.Equal(t, 200, a.status, "body: %s", a.body)
	req = h.f.last()
	require.Equal(t, engine.DefaultLimit, req.Limit)
	require.Equal(t, engine.DefaultLocale, req.Locale)
	require.Nil(t, req.Now)
}

func TestDeciderFailures(t *testing.T) {
	h := start(t, nil)
	t.Run("an unavailable dependency is 503 with Retry-After", func(t *testing.T) {
		h.f.set(func(f *fakes) {
			f.decide = func(context.Context, *engine.DecideRequest) (*engine.Decision, error) {
				return nil, fmt.Errorf("reading state: %w", ErrUnavailable)
			}
		})
		a := h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"app"}`))
		requireError(t, a, 503, CodeUnavailable)
		require.Equal(t, "1", a.header.Get("Retry-After"))
	})
	t.Run("any other error is 500 internal without its text", func(t *testing.T) {
		h.f.set(func(f *fakes) {
			f.decide = func(context.Context, *engine.DecideRequest) (*engine.Decision, error) {
				return nil, errors.New("secret detail 13800138000")
			}
		})
		a := h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"app"}`))
		requireError(t, a, 500, CodeInternal)
		require.NotContains(t, string(a.body), "secret")
		require.Contains(t, string(a.body), a.header.Get("X-Request-ID"))
	})
	h.f.set(func(f *fakes) { f.decide = nil })
}

func TestPanicIsRecoveredAndTheServerKeepsServing(t *testing.T) {
	h := start(t, nil)
	a := h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"app","placement":"panic"}`))
	m := requireError(t, a, 500, CodeInternal)
	require.NotContains(t, m["message"], "boom")
	require.NotEmpty(t, a.header.Get("X-Request-ID"), "the request ID survives the panic")
	require.Contains(t, h.logs.String(), "boom: a bug in the pipeline", "the panic is logged")

	for i := 0; i < 3; i++ {
		require.Equal(t, 200, h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"app"}`)).status)
	}
	require.Equal(t, 1.0, counterValue(h.srv.requests.WithLabelValues("/v1/decide", "5xx")))
}

func TestRequestIDs(t *testing.T) {
	h := start(t, nil)
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"a sane client ID is echoed", "req-42.abc_DEF:7", true},
		{"an ID with spaces is replaced", "req 42", false},
		{"an overlong ID is replaced", strings.Repeat("a", 65), false},
		{"a missing ID is generated", "", false},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.sent != "" {
				hdr = []string{"X-Request-ID", tc.sent}
			}
			a := h.do(t, "GET", "/healthz", "", nil, hdr...)
			got := a.header.Get("X-Request-ID")
			require.NotEmpty(t, got)
			if tc.echoed {
				require.Equal(t, tc.sent, got)
			} else {
				require.NotEqual(t, tc.sent, got)
				require.False(t, seen[got], "generated IDs are unique")
				seen[got] = true
			}
			require.Contains(t, h.logs.String(), `"request_id":"`+got+`"`)
		})
	}
}

func TestReadyzFollowsReadiness(t *testing.T) {
	h := start(t, nil)
	h.f.ready.Store(false)
	a := h.do(t, "GET", "/readyz", "", nil)
	requireError(t, a, 503, CodeNotReady)
	require.Equal(t, "1", a.header.Get("Retry-After"))
	require.Equal(t, 200, h.do(t, "GET", "/healthz", "", nil).status, "healthz does not wait for readiness")
	h.f.ready.Store(true)
	require.Equal(t, 200, h.do(t, "GET", "/readyz", "", nil).status)
}

func TestMissingComponentsAnswer501(t *testing.T) {
	h := start(t, func(o *Options) {
		o.Ingester, o.Decider, o.Customers, o.OpenOffers, o.Stats, o.Scenarios, o.Models, o.Bandit, o.Readiness = nil, nil, nil, nil, nil, nil, nil, nil, nil
	})
	for _, rc := range routeCases {
		var body io.Reader
		if rc.body != "" {
			body = str(rc.body)
		}
		a := h.do(t, rc.method, rc.path, testTokens["admin"], body)
		if strings.HasPrefix(rc.path, "/v1/") {
			requireError(t, a, 501, CodeNotImplemented)
		} else {
			require.Equal(t, 200, a.status, "%s %s", rc.method, rc.path)
		}
	}
}

func TestAccessLogsRedactPhonesAndEmails(t *testing.T) {
	h := start(t, nil)
	h.do(t, "GET", "/v1/customers/phone:+8613800138000", testTokens["clienteling"], nil)
	h.do(t, "GET", "/v1/offers?customer=email:alice@example.com&channel=app", testTokens["decide"], nil)
	h.do(t, "GET", "/v1/offers?customer=phone%3A%2B8613900139000&channel=app", testTokens["decide"], nil)
	hashed, _ := features.HashIdentifier(features.NSPhone, "+8613800138000")
	h.do(t, "GET", "/v1/customers/phone:"+hashed, testTokens["clienteling"], nil)

	logs := h.logs.String()
	for _, secret := range []string{"13800138000", "alice", "example.com", "13900139000"} {
		require.NotContains(t, logs, secret)
	}
	require.Contains(t, logs, `"path":"/v1/customers/phone:<redacted>"`)
	require.Contains(t, logs, `customer=email:<redacted>`)
	require.Contains(t, logs, `customer=phone:<redacted>`)
	require.Contains(t, logs, hashed, "hashed identifiers are kept: operators search by them")
	// Each line is JSON with the fields operators filter on.
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"route":"/v1/customers/:key"`) {
			line = l
			break
		}
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &m))
	for _, k := range []string{"request_id", "method", "route", "path", "status", "dur_us", "key"} {
		require.Contains(t, m, k)
	}
	require.Equal(t, "clienteling-key", m["key"], "the key's name is logged, never the key")
}

func TestRedactValue(t *testing.T) {
	hashed := strings.Repeat("ab", 32)
	tests := []struct{ name, in, out string }{
		{"a member ID is kept", "member:M123", "member:M123"},
		{"a clear phone key is redacted", "phone:+8613800138000", "phone:<redacted>"},
		{"a hashed phone key is kept", "phone:" + hashed, "phone:" + hashed},
		{"a clear email key is redacted", "email:a@b.cn", "email:<redacted>"},
		{"a bare email is redacted", "a@b.cn", "<redacted>"},
		{"a bare phone number with separators is redacted", "+86 138-0013-8000", "<redacted>"},
		{"a short number is kept", "12345", "12345"},
		{"an empty phone key is kept", "phone:", "phone:"},
		{"a six-digit phone key is redacted", "phone:123456", "phone:<redacted>"},
		{"a device ID holding a phone-like run is redacted", "device:13800138000", "device:<redacted>"},
		{"a route word is kept", "customers", "customers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.out, redactValue(tc.in))
		})
	}
}

func TestIngest(t *testing.T) {
	h := start(t, nil)
	rejectedCount := func(r features.Reason) float64 {
		return counterValue(h.srv.rejected.WithLabelValues(string(r)))
	}

	t.Run("a single event is accepted", func(t *testing.T) {
		a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str(event("s1", "page_view")))
		require.Equal(t, 202, a.status, "body: %s", a.body)
		require.JSONEq(t, `{"accepted":1,"rejected":[]}`, string(a.body))
	})
	t.Run("an array is accepted in part, with the index of each rejected event", func(t *testing.T) {
		before := h.f.count()
		unknown := rejectedCount(features.ReasonUnknownType)
		body := "[" + event("a1", "page_view") + "," + event("a2", "teleport") + "," + event("a3", "search_x") + "," +
			`{"event_id":"a4","ts":"2026-11-20T09:59:00Z","type":"store_enter","channel":"store","ids":{"member":"M1"},"store":"S1"}` + "]"
		a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str(body))
		require.Equal(t, 202, a.status, "body: %s", a.body)
		var got ingestAnswer
		require.NoError(t, json.Unmarshal(a.body, &got))
		require.Equal(t, 2, got.Accepted)
		require.Len(t, got.Rejected, 2)
		require.Equal(t, 1, got.Rejected[0].Index)
		require.Equal(t, features.ReasonUnknownType, got.Rejected[0].Code)
		require.Equal(t, 2, got.Rejected[1].Index)
		require.Equal(t, []string{"a1", "a4"}, ids(h.f.since(before)))
		require.Equal(t, unknown+2, rejectedCount(features.ReasonUnknownType))
	})
	t.Run("NDJSON is accepted line by line", func(t *testing.T) {
		before := h.f.count()
		body := event("n1", "page_view") + "\n" + `{"broken` + "\n" + event("n2", "page_view") + "\n"
		a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str(body), "Content-Type", "application/x-ndjson")
		require.Equal(t, 202, a.status, "body: %s", a.body)
		var got ingestAnswer
		require.NoError(t, json.Unmarshal(a.body, &got))
		require.Equal(t, 2, got.Accepted)
		require.Len(t, got.Rejected, 1)
		require.Equal(t, 1, got.Rejected[0].Index)
		require.Equal(t, features.ReasonBadJSON, got.Rejected[0].Code)
		require.Equal(t, []string{"n1", "n2"}, ids(h.f.since(before)))
	})
	t.Run("a batch with no valid event is 400 with every rejection", func(t *testing.T) {
		before := h.f.count()
		a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str("["+event("b1", "nope")+`,{"event_id":"b2"}]`))
		m := requireError(t, a, 400, CodeNoValidEvents)
		require.Len(t, m["rejected"], 2)
		require.Equal(t, before, h.f.count(), "nothing reached the broker")
	})
	t.Run("an unreachable broker is 503 with Retry-After and nothing accepted or counted", func(t *testing.T) {
		before := h.f.count()
		unknown := rejectedCount(features.ReasonUnknownType)
		h.f.set(func(f *fakes) {
			f.ingest = func(context.Context, []features.Event) error {
				return fmt.Errorf("producing to nbo.events: %w", ErrUnavailable)
			}
		})
		defer h.f.set(func(f *fakes) { f.ingest = nil })
		a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str("["+event("u1", "page_view")+","+event("u2", "nope")+"]"))
		requireError(t, a, 503, CodeUnavailable)
		require.Equal(t, "1", a.header.Get("Retry-After"))
		require.Equal(t, before, h.f.count())
		require.Equal(t, unknown, rejectedCount(features.ReasonUnknownType), "a retried batch is counted once, when it is answered")
	})
	t.Run("a broker that does not ack in time is 503", func(t *testing.T) {
		h2 := start(t, func(o *Options) { o.IngestTimeout = 50 * time.Millisecond })
		h2.f.set(func(f *fakes) {
			f.ingest = func(ctx context.Context, _ []features.Event) error {
				<-ctx.Done()
				return fmt.Errorf("waiting for acks: %w", ctx.Err())
			}
		})
		requireError(t, h2.do(t, "POST", "/v1/events", testTokens["ingest"], str(event("t1", "page_view"))), 503, CodeUnavailable)
	})
	t.Run("more than 500 events is 413", func(t *testing.T) {
		evs := make([]string, 501)
		for i := range evs {
			evs[i] = event(fmt.Sprintf("m%d", i), "page_view")
		}
		requireError(t, h.do(t, "POST", "/v1/events", testTokens["ingest"], str("["+strings.Join(evs, ",")+"]")), 413, CodePayloadTooLarge)
		a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str("["+strings.Join(evs[:500], ",")+"]"))
		require.Equal(t, 202, a.status, "exactly 500 is fine")
	})
	t.Run("an empty body is 400", func(t *testing.T) {
		requireError(t, h.do(t, "POST", "/v1/events", testTokens["ingest"], nil), 400, string(features.ReasonBadJSON))
	})
	t.Run("errors quote at most a short excerpt of the input", func(t *testing.T) {
		long := strings.Repeat("Z", 300)
		a := h.do(t, "POST", "/v1/events", testTokens["ingest"], str(`{"event_id":"x","ts":"2026-11-20T09:59:00Z","type":"`+long+`","channel":"web","ids":{"member":"M1"}}`))
		require.Equal(t, 400, a.status)
		require.NotContains(t, string(a.body), strings.Repeat("Z", 64))
	})
}

func ids(evs []features.Event) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = evs[i].ID
	}
	return out
}

func TestShutdownStopsServing(t *testing.T) {
	srv, err := New(Options{Addr: "127.0.0.1:0", Keys: testRing(t), Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	addr := srv.Addr()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}, 5*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.NoError(t, <-done)
	_, err = (&http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/healthz")
	require.Error(t, err)
}

func TestOptionsValidateReportsEveryProblem(t *testing.T) {
	o := Options{RateLimit: -1, MaxBodyBytes: -5, MaxBatch: -1}
	o.EnsureDefaults()
	err := o.Validate()
	require.Error(t, err)
	for _, want := range []string{"no API keys", "rate limit", "max body bytes", "max batch"} {
		require.Contains(t, err.Error(), want)
	}
	_, err = New(Options{})
	require.ErrorContains(t, err, "no API keys")
}

func TestConcurrentClientsGetConsistentAnswers(t *testing.T) {
	h := start(t, nil)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				var a answer
				switch i % 4 {
				case 0:
					a = h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"app"}`))
				case 1:
					a = h.do(t, "POST", "/v1/events", testTokens["ingest"], str(event(fmt.Sprintf("c%d-%d", g, i), "page_view")))
				case 2:
					a = h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"app","bogus":1}`))
				case 3:
					a = h.do(t, "GET", "/v1/customers/member:M1", testTokens["clienteling"], nil)
				}
				want := []int{200, 202, 400, 200}[i%4]
				if a.status != want {
					errs <- fmt.Sprintf("request %d: status %d, want %d: %s", i, a.status, want, a.body)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	require.Equal(t, 8*10, h.f.count())
}

func TestCustomerKeysAreStoredForms(t *testing.T) {
	h := start(t, nil)
	var mu sync.Mutex
	var got []features.Key
	h.f.set(func(f *fakes) {
		f.customer = func(_ context.Context, key features.Key) (any, error) {
			mu.Lock()
			got = append(got, key)
			mu.Unlock()
			return map[string]string{"key": string(key)}, nil
		}
	})
	hashed, ok := features.HashIdentifier(features.NSPhone, "+8613800138000")
	require.True(t, ok)
	for _, path := range []string{
		"/v1/customers/phone:+8613800138000",
		"/v1/customers/phone:%2B8613800138000",
		"/v1/customers/phone:" + hashed,
		"/v1/customers/member:M-1.a_b",
	} {
		require.Equal(t, 200, h.do(t, "GET", path, testTokens["clienteling"], nil).status, path)
	}
	// In a query string '+' means a space, so clients send %2B.
	require.Equal(t, 200, h.do(t, "GET", "/v1/offers?customer=phone:%2B8613800138000&channel=app", testTokens["decide"], nil).status)
	require.Equal(t, hashed, h.f.last().IDs.Phone)

	mu.Lock()
	defer mu.Unlock()
	want := features.Key("phone:" + hashed)
	require.Equal(t, []features.Key{want, want, want, "member:M-1.a_b"}, got)
}

func TestANotReadyProbeIsNotLoggedAsAnError(t *testing.T) {
	// A load balancer probes /readyz every second or so; during a catch-up
	// of minutes each 503 was an ERROR line, drowning real errors.
	h := start(t, nil)
	h.f.ready.Store(false)
	requireError(t, h.do(t, "GET", "/readyz", "", nil), 503, CodeNotReady)
	var line string
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, `"route":"/readyz"`) {
			line = l
		}
	}
	require.NotEmpty(t, line, "the probe is logged")
	require.NotContains(t, line, `"level":"ERROR"`)
}

// TestHeadProbes: load balancers probe /healthz and /readyz with HEAD,
// which answered 405. HEAD gets GET's status and headers and no body;
// the test reads the raw connection, so a body sent anyway would be read
// as the start of the next answer and fail it.
func TestHeadProbes(t *testing.T) {
	h := start(t, nil)
	conn, err := net.Dial("tcp", h.srv.Addr())
	require.NoError(t, err)
	defer conn.Close()
	br := bufio.NewReader(conn)
	probe := func(method, path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, h.base+path, nil)
		require.NoError(t, err)
		require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
		require.NoError(t, req.Write(conn))
		resp, err := http.ReadResponse(br, req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		if method == "HEAD" {
			require.Empty(t, b)
		}
		return resp
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp := probe("HEAD", path)
		require.Equal(t, 200, resp.StatusCode, path)
		require.NotEmpty(t, resp.Header.Get("X-Request-ID"))
		// The same connection still answers: the HEAD left no body behind.
		require.Equal(t, 200, probe("GET", path).StatusCode, path)
	}
	h.f.ready.Store(false)
	resp := probe("HEAD", "/readyz")
	require.Equal(t, 503, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Equal(t, 200, probe("HEAD", "/healthz").StatusCode, "healthz does not wait for readiness")
	h.f.ready.Store(true)
	require.Equal(t, 200, probe("HEAD", "/readyz").StatusCode)

	// Other routes still refuse HEAD, as any method they do not take, and
	// a 405 says which methods the route takes (RFC 9110 §15.5.6).
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/v1/decide", "POST"},
		{"DELETE", "/v1/stats", "GET"},
		{"HEAD", "/v1/stats", "GET"},
		{"PUT", "/v1/admin/scenarios", "GET, POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"DELETE", "/v1/customers/member:M1", "GET"},
	} {
		a := h.do(t, tc.method, tc.path, testTokens["admin"], nil)
		if tc.method != "HEAD" {
			requireError(t, a, 405, CodeMethodNotAllowed)
		}
		require.Equal(t, 405, a.status, "%s %s", tc.method, tc.path)
		require.Equal(t, tc.allow, a.header.Get("Allow"), "%s %s", tc.method, tc.path)
	}
}

// TestErrorMessagesSayWhatToSend: messages a new user found misleading —
// a fractional limit "want number", "send smaller batches" for a decide
// body, and "letters" for identifiers that must be ASCII.
func TestErrorMessagesSayWhatToSend(t *testing.T) {
	h := start(t, nil)
	msg := func(a answer, status int, code string) string {
		t.Helper()
		m := requireError(t, a, status, code)
		return m["message"].(string)
	}
	decide := func(body string) answer {
		return h.do(t, "POST", "/v1/decide", testTokens["decide"], str(body))
	}

	m := msg(decide(`{"ids":{"member":"M1"},"channel":"app","limit":2.5}`), 400, CodeBadRequest)
	require.Contains(t, m, "want integer")
	m = msg(decide(`{"ids":{"member":"M1"},"channel":"app","limit":"3"}`), 400, CodeBadRequest)
	require.Contains(t, m, "want integer")

	big := `{"ids":{"member":"M1"},"channel":"app","placement":"` + strings.Repeat("x", 70<<10) + `"}`
	m = msg(decide(big), 413, CodePayloadTooLarge)
	require.Contains(t, m, "65536 bytes (64 KiB)")
	require.NotContains(t, m, "batch", "decide takes no batch")
	m = msg(h.do(t, "POST", "/v1/admin/models", testTokens["admin"], str(big)), 413, CodePayloadTooLarge)
	require.NotContains(t, m, "batch")
	events := `[` + strings.Repeat(event("e1", "page_view")+",", (1<<20)/100) + event("e2", "page_view") + `]`
	m = msg(h.do(t, "POST", "/v1/events", testTokens["ingest"], str(events)), 413, CodePayloadTooLarge)
	require.Contains(t, m, "1024 KiB")
	require.Contains(t, m, "smaller batches", "the events route takes a batch, which the client can split")

	for _, id := range []string{"会员", "M%C3%A91"} {
		m = msg(h.do(t, "GET", "/v1/customers/member:"+id, testTokens["clienteling"], nil), 400, CodeBadID)
		require.Contains(t, m, "ASCII letters")
	}
	m = msg(decide(`{"ids":{"member":"会员"},"channel":"app"}`), 400, CodeBadID)
	require.Contains(t, m, "ASCII letters")
}

// TestBodiesAndQueriesAreStrictOnEveryRoute: POST /v1/decide took a key
// given twice (the last won) where POST /v1/events refuses it, and POST
// routes ignored query parameters where GET routes refuse them.
func TestBodiesAndQueriesAreStrictOnEveryRoute(t *testing.T) {
	h := start(t, nil)
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code, field                     string
	}{
		{"a repeated field on decide is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"sms","channel":"app"}`, 400, CodeBadRequest, "channel"},
		{"a repeated namespace on decide is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1","member":"M2"},"channel":"app"}`, 400, CodeBadRequest, "ids.member"},
		{"a repeated context key on decide is 400", "POST", "/v1/decide", "decide",
			`{"ids":{"member":"M1"},"channel":"app","context":{"a":"1","a":"2"}}`, 400, CodeBadRequest, "context"},
		{"a repeated field on a model load is 400", "POST", "/v1/admin/models", "admin",
			`{"path":"a.model","path":"b.model"}`, 400, CodeBadRequest, "path"},
		{"a repeated field on a bandit reset is 400", "POST", "/v1/admin/bandit/reset", "admin",
			`{"offer_id":"o1","Offer_ID":"o2"}`, 400, CodeBadRequest, "offer_id"},
		{"a repeated key in an event is bad_json, as before", "POST", "/v1/events", "ingest",
			`{"event_id":"d1","event_id":"d2","ts":"2026-11-20T09:59:00Z","type":"page_view","channel":"web","ids":{"member":"M1"}}`, 400, CodeNoValidEvents, ""},
		{"a query parameter on decide is 400", "POST", "/v1/decide?foo=1", "decide",
			`{"ids":{"member":"M1"},"channel":"app"}`, 400, CodeUnknownField, "foo"},
		{"a query parameter on events is 400", "POST", "/v1/events?dry_run=1", "ingest", event("q1", "page_view"), 400, CodeUnknownField, "dry_run"},
		{"a query parameter on a scenario reload is 400", "POST", "/v1/admin/scenarios?x=1", "admin", "", 400, CodeUnknownField, "x"},
		{"a query parameter on a model load is 400", "POST", "/v1/admin/models?force=1", "admin", `{"path":"m"}`, 400, CodeUnknownField, "force"},
		{"a query parameter on a bandit reset is 400", "POST", "/v1/admin/bandit/reset?x", "admin", `{"offer_id":"o1"}`, 400, CodeUnknownField, "x"},
		{"a query parameter on a customer lookup is 400", "GET", "/v1/customers/member:M1?x=1", "clienteling", "", 400, CodeUnknownField, "x"},
	}
	before := h.f.count()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = str(tc.body)
			}
			m := requireError(t, h.do(t, tc.method, tc.path, testTokens[tc.token], body), tc.status, tc.code)
			field, _ := m["field"].(string)
			require.Equal(t, tc.field, field)
			if tc.code == CodeNoValidEvents {
				rej := m["rejected"].([]any)[0].(map[string]any)
				require.Equal(t, string(features.ReasonBadJSON), rej["code"])
				require.Contains(t, rej["message"], "duplicate key")
			}
		})
	}
	require.Equal(t, before, h.f.count(), "nothing refused reached the broker")
	// The connections stay usable after a body left unread.
	require.Equal(t, 200, h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"app"}`)).status)
	require.Equal(t, 202, h.do(t, "POST", "/v1/events", testTokens["ingest"], str(event("q2", "page_view"))).status)
}
