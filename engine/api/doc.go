// Package api is nbo's HTTP layer: the offer API (POST /v1/decide, GET
// /v1/offers), HTTP ingest (POST /v1/events), customer 360 for store
// tablets, stats and admin routes, health and readiness, and the OpenAPI
// document — on hertz, the only package that imports it. A separate plain
// net/http admin listener serves /metrics and pprof.
//
// It owns the API's manners and nothing else: API keys with scopes (stored
// hashed, compared in constant time), per-key rate limits, body limits,
// strict JSON decoding (unknown fields are errors; hertz's binder is never
// used because it ignores that setting and echoes bodies), stable error
// codes in {code, message, field}, panic recovery, request IDs and access
// logs that never hold a phone number or email address in clear.
//
// It does not decide, ingest or store anything itself: each route calls a
// small interface declared here (Decider, Ingester, CustomerReader, …)
// that the engine implements. A component left nil makes its route answer
// 501 not_implemented (the route stays registered, authenticated and
// documented).
//
// Scopes: ingest (POST /v1/events), decide (POST /v1/decide, GET
// /v1/offers), clienteling (GET /v1/customers/{key}), admin (everything:
// admin implies every other scope, and only admin may set "now" on a
// decide request or call /v1/stats and /v1/admin/*). /healthz, /readyz and
// /openapi.json need no key.
package api
