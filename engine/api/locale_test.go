package api

import (
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/engine"
	"nbo/features"
)

// A tablet or app sends its device's locale: regional and script tags of
// Chinese and English choose the texts; another language is refused.
func TestLocaleTakesADevicesTag(t *testing.T) {
	for tag, want := range map[string]engine.Locale{
		"": engine.DefaultLocale, "zh-CN": engine.LocaleZhCN, "en": engine.LocaleEn,
		"en-US": engine.LocaleEn, "en_GB": engine.LocaleEn, "zh": engine.LocaleZhCN, "zh-Hans-CN": engine.LocaleZhCN,
	} {
		got, e := parseLocale(tag, "locale")
		require.Nil(t, e, tag)
		require.Equal(t, want, got, tag)
	}
	_, e := parseLocale("fr-FR", "locale")
	require.NotNil(t, e)
	require.Equal(t, CodeBadRequest, e.Code)

	h := start(t, nil)
	a := h.do(t, "GET", "/v1/offers?customer=member:M1&channel=tablet&locale=en-US", testTokens["decide"], nil)
	require.Equal(t, 200, a.status, "%s", a.body)
	a = h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"tablet","locale":"zh-Hans"}`))
	require.Equal(t, 200, a.status, "%s", a.body)
	requireError(t, h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"tablet","locale":"ja-JP"}`)), 400, CodeBadRequest)
}

// A phone's '+' not encoded in a query string arrives as a space: refused
// with the fix, not read as another customer's number.
func TestAnUnencodedPlusInAQueryIsRefused(t *testing.T) {
	h := start(t, nil)
	tok := testTokens["decide"]
	for _, q := range []string{"customer=phone:+8613900000001", "customer=email:ann+news@example.com"} {
		m := requireError(t, h.do(t, "GET", "/v1/offers?channel=app&"+q, tok, nil), 400, CodeBadID)
		require.Contains(t, m["message"], "%2B", q)
	}
	for q, number := range map[string]string{"customer=phone:%2B8613900000001": "+8613900000001", "customer=phone:139+0000+0001": "13900000001"} {
		a := h.do(t, "GET", "/v1/offers?channel=app&"+q, tok, nil)
		require.Equal(t, 200, a.status, "%s: %s", q, a.body)
		want, ok := features.HashIdentifier(features.NSPhone, number)
		require.True(t, ok)
		h.f.mu.Lock()
		got := h.f.lastReq.IDs.Phone
		h.f.mu.Unlock()
		require.Equal(t, want, got, "%s is the number %s", q, number)
	}
}
