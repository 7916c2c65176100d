package api

import (
	"errors"
	"unicode/utf8"
)

// Stable error codes. They are part of the API: clients switch on them.
const (
	CodeBadRequest       = "bad_request"   // malformed body or parameter
	CodeUnknownField     = "unknown_field" // a JSON field the API does not define
	CodeUnauthorized     = "unauthorized"  // missing or wrong API key
	CodeForbidden        = "forbidden"     // the key lacks the route's scope
	CodeNotFound         = "not_found"     // no such route or customer
	CodeMethodNotAllowed = "method_not_allowed"
	CodePayloadTooLarge  = "payload_too_large" // body over the route's limit
	CodeRateLimited      = "rate_limited"      // the key is over its rate
	CodeUnavailable      = "unavailable"       // a dependency (Kafka) is down; retry
	CodeNotReady         = "not_ready"         // restore or catch-up still running
	CodeNotImplemented   = "not_implemented"   // the route's component is not configured
	CodeNoValidEvents    = "no_valid_events"   // every event in an ingest batch was rejected
	CodeInternal         = "internal"          // a bug; the request ID finds it in the logs
)

// Stable codes the shipped components (cmd/nbo) return through Error, 422
// from the admin routes. They are listed here so the OpenAPI document and
// its test see every code a client can get.
const (
	CodeScenariosInvalid = "scenarios_invalid" // a scenario reload that does not compile; the old set stays
	CodeBadModel         = "bad_model"         // a model artifact that cannot be loaded; the old model stays
)

// ErrUnavailable marks an error of a dependency that is down for now
// (Kafka unreachable, overloaded). The API answers 503 with Retry-After.
// Implementations wrap it: fmt.Errorf("producing events: %w", api.ErrUnavailable).
var ErrUnavailable = errors.New("api: unavailable")

// ErrNotFound marks a lookup of something that does not exist (a customer
// the engine has never seen). The API answers 404.
var ErrNotFound = errors.New("api: not found")

// Error is an answer an implementation wants the client to see verbatim:
// a status, a stable code, the field at fault and a sentence on how to
// fix it. Return it (or wrap it) from a handler's component; any other
// error becomes 500 internal with a generic message.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return "api: " + e.Code + " (" + e.Field + "): " + e.Message
	}
	return "api: " + e.Code + ": " + e.Message
}

// maxExcerpt bounds how much of a client's input an error may quote.
const maxExcerpt = 32

// excerpt shortens s to at most maxExcerpt bytes on a rune boundary, so
// errors never echo more than a short piece of the input.
func excerpt(s string) string {
	if len(s) <= maxExcerpt {
		return s
	}
	cut := maxExcerpt
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
