package api

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cloudwego/hertz/pkg/app"

	"nbo/engine"
	"nbo/features"
)

// registerRoutes declares every route once; Routes() and the OpenAPI test
// read the same table.
func (s *Server) registerRoutes() {
	add := func(method, path string, scope Scope, h handler) {
		rt := s.newRoute(method, path, scope, h)
		s.routes = append(s.routes, rt)
		s.h.Handle(method, path, s.wrap(rt))
	}
	add("POST", "/v1/events", ScopeIngest, s.handleEvents)
	add("POST", "/v1/decide", ScopeDecide, s.handleDecide)
	add("GET", "/v1/offers", ScopeDecide, s.handleOffers)
	add("GET", "/v1/customers/:key", ScopeClienteling, s.handleCustomer)
	add("GET", "/v1/customers/:key/offers", ScopeClienteling, s.handleOpenOffers)
	add("GET", "/v1/stats", ScopeAdmin, s.handleStats)
	add("GET", "/v1/admin/scenarios", ScopeAdmin, s.handleScenarioStatus)
	add("POST", "/v1/admin/scenarios", ScopeAdmin, s.handleScenarioReload)
	add("GET", "/v1/admin/models", ScopeAdmin, s.handleModelList)
	add("POST", "/v1/admin/models", ScopeAdmin, s.handleModelLoad)
	add("POST", "/v1/admin/bandit/reset", ScopeAdmin, s.handleBanditReset)
	add("GET", "/healthz", 0, s.handleHealthz)
	add("GET", "/readyz", 0, s.handleReadyz)
	// Load balancers probe with HEAD: the same status and headers as GET,
	// and hertz sends no body for a HEAD request.
	add("HEAD", "/healthz", 0, s.handleHealthz)
	add("HEAD", "/readyz", 0, s.handleReadyz)
	add("GET", "/openapi.json", 0, s.handleOpenAPI)

	s.h.NoRoute(s.wrap(s.newRoute("", "(no route)", 0, func(_ context.Context, c *app.RequestContext, _ Scope) {
		writeError(c, 404, CodeNotFound, "", "no such route; see /openapi.json")
	})))
	s.h.NoMethod(s.wrap(s.newRoute("", "(no method)", 0, func(_ context.Context, c *app.RequestContext, _ Scope) {
		c.Response.Header.Set("Allow", s.allowed(string(c.Path())))
		writeError(c, 405, CodeMethodNotAllowed, "", "this route does not take that method; see /openapi.json")
	})))
}

// allowed lists the methods the routes matching path take, for a 405's
// Allow header ("GET, HEAD").
func (s *Server) allowed(path string) string {
	var methods []string
	for _, rt := range s.routes {
		if routeMatches(rt.path, path) && !slices.Contains(methods, rt.method) {
			methods = append(methods, rt.method)
		}
	}
	return strings.Join(methods, ", ")
}

// routeMatches reports whether path matches a route pattern, where a
// ":name" segment matches any one non-empty segment.
func routeMatches(pattern, path string) bool {
	for {
		p, pRest, pMore := strings.Cut(strings.TrimPrefix(pattern, "/"), "/")
		q, qRest, qMore := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if pMore != qMore || p != q && (!strings.HasPrefix(p, ":") || q == "") {
			return false
		}
		if !pMore {
			return true
		}
		pattern, path = "/"+pRest, "/"+qRest
	}
}

// Route is a registered route, as Routes lists it.
type Route struct {
	Method string
	Path   string // OpenAPI form: /v1/customers/{key}
	Scope  Scope  // the scope it needs, 0 for none
}

// Routes lists the registered routes (for docs and tests).
func (s *Server) Routes() []Route {
	out := make([]Route, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, Route{Method: rt.method, Path: openapiPath(rt.path), Scope: rt.scope})
	}
	return out
}

// openapiPath turns hertz's :param segments into OpenAPI's {param}.
func openapiPath(p string) string {
	b := []byte(nil)
	for i := 0; i < len(p); i++ {
		if p[i] == ':' && (i == 0 || p[i-1] == '/') {
			j := i + 1
			for j < len(p) && p[j] != '/' {
				j++
			}
			b = append(b, '{')
			b = append(b, p[i+1:j]...)
			b = append(b, '}')
			i = j - 1
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

type rejectedEvent struct {
	Index   int             `json:"index"`
	Code    features.Reason `json:"code"`
	Field   string          `json:"field,omitempty"`
	Message string          `json:"message"`
}

type ingestAnswer struct {
	Accepted int             `json:"accepted"`
	Rejected []rejectedEvent `json:"rejected"`
}

type ingestError struct {
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Field    string          `json:"field,omitempty"`
	Rejected []rejectedEvent `json:"rejected"`
}

// handleEvents is POST /v1/events: split, decode each event, produce the
// valid ones and answer 202 only after the broker acknowledged them.
// Rejections are counted only once the answer is final (202 or 400): a
// batch answered 503 is retried by the client and counted then.
func (s *Server) handleEvents(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Ingester == nil {
		notImplemented(c, "event ingest")
		return
	}
	if !noQuery(c) {
		return
	}
	bp := bodyPool.Get().(*[]byte)
	defer putBody(bp)
	body, ok := readBody(c, s.opts.MaxBodyBytes, (*bp)[:0], true)
	if !ok {
		return
	}
	*bp = body
	events, rejected, total, e := decodeBatch(body, s.opts.Now().UnixMilli(), &s.opts.Decode, s.opts.MaxBatch)
	if e != nil {
		s.countRejected(features.Reason(e.Code))
		if e.Status == 413 {
			writeError(c, 413, CodePayloadTooLarge, e.Field, e.Message)
			return
		}
		writeAPIError(c, e)
		return
	}
	n := len(events)
	if n == 0 {
		for _, r := range rejected {
			s.countRejected(r.Code)
		}
		msg := "no event in the body is valid; see rejected for each event's reason"
		if total == 0 {
			msg = "the body holds no events"
		}
		b := ingestError{Code: CodeNoValidEvents, Message: msg, Rejected: rejected}
		s.writeJSON(ctx, c, 400, &b)
		return
	}
	ictx, cancel := context.WithTimeout(ctx, s.opts.IngestTimeout)
	err := s.opts.Ingester.Ingest(ictx, events)
	cancel()
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	for _, r := range rejected {
		s.countRejected(r.Code)
	}
	s.writeJSON(ctx, c, 202, &ingestAnswer{Accepted: n, Rejected: rejected})
}

// decodeBatch splits an ingest body and decodes each event. It returns
// the valid events, the rejected ones with their index, and the number of
// events in the body; or an error for the body as a whole (status 413
// past max events, else 400 with the reason code of features.SplitBatch).
func decodeBatch(body []byte, now int64, opts *features.DecodeOptions, max int) ([]features.Event, []rejectedEvent, int, *Error) {
	raws, rej := features.SplitBatch(body, max)
	if rej != nil {
		status := 400
		if rej.Code == features.ReasonTooLarge {
			status = 413
		}
		return nil, nil, 0, &Error{Status: status, Code: string(rej.Code), Field: rej.Field, Message: rej.Message}
	}
	events := make([]features.Event, len(raws))
	rejected := []rejectedEvent{}
	n := 0
	for i, raw := range raws {
		if r := features.DecodeEvent(raw, now, opts, &events[n]); r != nil {
			events[n] = features.Event{}
			rejected = append(rejected, rejectedEvent{Index: i, Code: r.Code, Field: r.Field, Message: r.Message})
			continue
		}
		n++
	}
	return events[:n], rejected, len(raws), nil
}

func putBody(bp *[]byte) {
	if cap(*bp) <= 2<<20 {
		*bp = (*bp)[:0]
		bodyPool.Put(bp)
	}
}

// handleDecide is POST /v1/decide.
func (s *Server) handleDecide(ctx context.Context, c *app.RequestContext, scope Scope) {
	if s.opts.Decider == nil {
		notImplemented(c, "deciding")
		return
	}
	if !noQuery(c) {
		return
	}
	bp := bodyPool.Get().(*[]byte)
	body, ok := readBody(c, s.opts.MaxRequestBytes, (*bp)[:0], false)
	if !ok {
		putBody(bp)
		return
	}
	*bp = body
	req := getRequest()
	defer putRequest(req)
	e := decodeDecideRequest(body, scope&ScopeAdmin != 0, req)
	putBody(bp) // the decoder copied every string req keeps out of body
	if e != nil {
		writeAPIError(c, e)
		return
	}
	s.decide(ctx, c, req)
}

// handleOffers is GET /v1/offers, the query-string form of decide.
func (s *Server) handleOffers(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Decider == nil {
		notImplemented(c, "deciding")
		return
	}
	req := getRequest()
	defer putRequest(req)
	if e := decodeOffersQuery(c.QueryArgs(), req); e != nil {
		writeAPIError(c, e)
		return
	}
	s.decide(ctx, c, req)
}

// requests are the decide requests in flight: one escaped to the heap per
// request otherwise (it crosses the Decider interface). Decider's contract
// is that Decide does not keep req, which makes the reuse safe.
var requests = sync.Pool{New: func() any { return new(engine.DecideRequest) }}

func getRequest() *engine.DecideRequest { return requests.Get().(*engine.DecideRequest) }

// putRequest clears req (dropping its strings and context map, which the
// Decider may keep) and pools it.
func putRequest(req *engine.DecideRequest) {
	*req = engine.DecideRequest{}
	requests.Put(req)
}

func (s *Server) decide(ctx context.Context, c *app.RequestContext, req *engine.DecideRequest) {
	d, err := s.opts.Decider.Decide(ctx, req)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	if d == nil {
		s.internal(ctx, c, errNilAnswer)
		return
	}
	if d.Offers == nil {
		d.Offers = []engine.OfferResult{}
	}
	bb := c.Response.BodyBuffer()
	// A decision is a few hundred bytes per offer; grow once rather than
	// on every append (hertz pools the buffer, so this is rare).
	out, err := appendDecision(slices.Grow(bb.B[:0], 512+384*len(d.Offers)), d)
	if err != nil {
		bb.B = out[:0]
		s.internal(ctx, c, fmt.Errorf("encoding decision %s: %w", d.DecisionID, err))
		return
	}
	bb.B = out
	c.Response.Header.SetContentType(contentJSON)
	c.SetStatusCode(200)
}

type apiErr string

func (e apiErr) Error() string { return string(e) }

const errNilAnswer = apiErr("api: a component returned neither an answer nor an error")

// handleCustomer is GET /v1/customers/{ns}:{id}.
func (s *Server) handleCustomer(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Customers == nil {
		notImplemented(c, "customer lookup")
		return
	}
	if !noQuery(c) {
		return
	}
	key, e := parseCustomerKey(c.Param("key"), "key")
	if e != nil {
		writeAPIError(c, e)
		return
	}
	v, err := s.opts.Customers.Customer(ctx, key)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	s.answer(ctx, c, v)
}

// handleOpenOffers is GET /v1/customers/{ns}:{id}/offers[?locale=…]:
// the offers the customer holds, for a store associate to remind them of.
func (s *Server) handleOpenOffers(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.OpenOffers == nil {
		notImplemented(c, "open offers")
		return
	}
	var locale []byte
	var e *Error
	c.QueryArgs().VisitAll(func(k, v []byte) {
		switch {
		case e != nil:
		case string(k) != "locale":
			e = &Error{Status: 400, Code: CodeUnknownField, Field: excerpt(string(k)), Message: "unknown query parameter; this route takes only locale"}
		case locale != nil:
			e = &Error{Status: 400, Code: CodeBadRequest, Field: "locale", Message: "parameter given twice"}
		default:
			locale = v
		}
	})
	if e != nil {
		writeAPIError(c, e)
		return
	}
	loc, e := parseLocale(string(locale), "locale")
	if e != nil {
		writeAPIError(c, e)
		return
	}
	key, e := parseCustomerKey(c.Param("key"), "key")
	if e != nil {
		writeAPIError(c, e)
		return
	}
	v, err := s.opts.OpenOffers.OpenOffers(ctx, key, loc)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	s.answer(ctx, c, v)
}

func (s *Server) answer(ctx context.Context, c *app.RequestContext, v any) {
	if v == nil {
		s.internal(ctx, c, errNilAnswer)
		return
	}
	s.writeJSON(ctx, c, 200, v)
}

// noQuery answers 400 unknown_field when a route that takes no
// parameters gets some: every route but GET /v1/offers (and the health
// routes, which ignore them). POST routes take their input in the body
// only; a parameter there is a client's mistake, not something to drop.
func noQuery(c *app.RequestContext) bool {
	if c.QueryArgs().Len() == 0 {
		return true
	}
	var name string
	c.QueryArgs().VisitAll(func(k, _ []byte) {
		if name == "" {
			name = string(k)
		}
	})
	writeError(c, 400, CodeUnknownField, excerpt(name), "this route takes no query parameters")
	return false
}

func (s *Server) handleStats(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Stats == nil {
		notImplemented(c, "stats")
		return
	}
	if !noQuery(c) {
		return
	}
	v, err := s.opts.Stats.Stats(ctx)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	s.answer(ctx, c, v)
}

func (s *Server) handleScenarioStatus(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Scenarios == nil {
		notImplemented(c, "scenario admin")
		return
	}
	if !noQuery(c) {
		return
	}
	v, err := s.opts.Scenarios.ScenarioStatus(ctx)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	s.answer(ctx, c, v)
}

// handleScenarioReload is POST /v1/admin/scenarios: an empty body or {}.
func (s *Server) handleScenarioReload(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Scenarios == nil {
		notImplemented(c, "scenario admin")
		return
	}
	if !noQuery(c) {
		return
	}
	body, ok := readBody(c, s.opts.MaxRequestBytes, nil, false)
	if !ok {
		return
	}
	if len(body) > 0 {
		var empty struct{}
		if e := decodeStrict(body, &empty); e != nil {
			writeAPIError(c, e)
			return
		}
	}
	v, err := s.opts.Scenarios.ReloadScenarios(ctx)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	s.answer(ctx, c, v)
}

type banditReset struct {
	OfferID string `json:"offer_id"`
}

// handleBanditReset is POST /v1/admin/bandit/reset {"offer_id": …}.
func (s *Server) handleBanditReset(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Bandit == nil {
		notImplemented(c, "bandit admin")
		return
	}
	if !noQuery(c) {
		return
	}
	body, ok := readBody(c, s.opts.MaxRequestBytes, nil, false)
	if !ok {
		return
	}
	var r banditReset
	if e := decodeStrict(body, &r, "offer_id"); e != nil {
		writeAPIError(c, e)
		return
	}
	if r.OfferID == "" {
		writeError(c, 400, CodeMissingField, "offer_id", "offer_id is required: the offer whose learning to forget")
		return
	}
	if len(r.OfferID) > 256 || !printable(r.OfferID) {
		writeError(c, 400, CodeBadRequest, "offer_id", "offer_id must be at most 256 printable characters")
		return
	}
	v, err := s.opts.Bandit.ResetOffer(ctx, r.OfferID)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	s.answer(ctx, c, v)
}

// handleModelList is GET /v1/admin/models.
func (s *Server) handleModelList(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Models == nil {
		notImplemented(c, "model admin")
		return
	}
	if !noQuery(c) {
		return
	}
	v, err := s.opts.Models.ListModels(ctx)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	s.answer(ctx, c, v)
}

type modelLoad struct {
	Path string `json:"path"`
}

// handleModelLoad is POST /v1/admin/models {"path": …}.
func (s *Server) handleModelLoad(ctx context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Models == nil {
		notImplemented(c, "model admin")
		return
	}
	if !noQuery(c) {
		return
	}
	body, ok := readBody(c, s.opts.MaxRequestBytes, nil, false)
	if !ok {
		return
	}
	var m modelLoad
	if e := decodeStrict(body, &m, "path"); e != nil {
		writeAPIError(c, e)
		return
	}
	if m.Path == "" {
		writeError(c, 400, CodeMissingField, "path", "path is required: the model artifact's file in the models directory (models_dir), relative to it or absolute")
		return
	}
	if len(m.Path) > 4096 || !printable(m.Path) {
		writeError(c, 400, CodeBadRequest, "path", "path must be at most 4096 printable characters")
		return
	}
	v, err := s.opts.Models.LoadModel(ctx, m.Path)
	if err != nil {
		s.fail(ctx, c, err)
		return
	}
	s.answer(ctx, c, v)
}

var (
	healthyBody  = []byte(`{"status":"ok"}`)
	readyBody    = []byte(`{"status":"ready"}`)
	notReadyBody = []byte(`{"code":"` + CodeNotReady + `","message":"restoring state or catching up with the log; retry shortly"}`)
)

func (s *Server) handleHealthz(_ context.Context, c *app.RequestContext, _ Scope) {
	c.Data(200, contentJSON, healthyBody)
}

func (s *Server) handleReadyz(_ context.Context, c *app.RequestContext, _ Scope) {
	if s.opts.Readiness == nil || s.opts.Readiness.Ready() {
		c.Data(200, contentJSON, readyBody)
		return
	}
	c.Response.Header.Set("Retry-After", strconv.Itoa(1))
	c.Data(503, contentJSON, notReadyBody)
}

func (s *Server) handleOpenAPI(_ context.Context, c *app.RequestContext, _ Scope) {
	c.Data(200, contentJSON, s.openapiJSON)
}
