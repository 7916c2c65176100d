package api

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// GET /v1/customers/{key}/offers takes the locale and nothing else, each
// parameter once; the customer key is checked like the 360's.
func TestOpenOffersRoute(t *testing.T) {
	h := start(t, nil)
	tok := testTokens["clienteling"]
	a := h.do(t, "GET", "/v1/customers/member:M1/offers?locale=en", tok, nil)
	require.Equal(t, 200, a.status, "%s", a.body)
	require.Equal(t, "en", a.json(t)["locale"], "the locale reaches the component")
	a = h.do(t, "GET", "/v1/customers/member:M1/offers", tok, nil)
	require.Equal(t, "zh-CN", a.json(t)["locale"], "zh-CN by default")

	require.Equal(t, "store", requireError(t, h.do(t, "GET", "/v1/customers/member:M1/offers?store=S01", tok, nil), 400, CodeUnknownField)["field"])
	requireError(t, h.do(t, "GET", "/v1/customers/member:M1/offers?locale=en&locale=en", tok, nil), 400, CodeBadRequest)
	requireError(t, h.do(t, "GET", "/v1/customers/member:M1/offers?locale=fr", tok, nil), 400, CodeBadRequest)
	requireError(t, h.do(t, "GET", "/v1/customers/nope/offers", tok, nil), 400, CodeBadID)
	requireError(t, h.do(t, "GET", "/v1/customers/member:M2/offers", tok, nil), 404, CodeNotFound)
	requireError(t, h.do(t, "GET", "/v1/customers/member:M1/offers", testTokens["decide"], nil), 403, CodeForbidden)
}
