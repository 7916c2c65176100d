package api

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/engine"
	"nbo/features"
)

// decideSeeds are bodies that exercise encoding/json's rules the decoder
// must share: folding of field names, repeated fields, nulls, escapes and
// surrogates, numbers, nesting, trailing data and every kind of syntax
// error.
var decideSeeds = []string{
	`{"ids":{"member":"M1"},"channel":"app"}`,
	`{"ids":{"member":"M1","phone":"+8613800138000"},"channel":"tablet","placement":"home","store":"S1","limit":5,"locale":"en","context":{"a":"b"},"now":"2026-11-20T10:00:00Z"}`,
	`{"ids":{"email":"A@B.cn"},"channel":"push","limit":0}`,
	`{"ids":{},"channel":"app"}`,
	`{"ids":{"member":"M1"},"channel":"app","x":1}`,
	`{"ids":{"member":"M1"},"channel":"app"} trailing`,
	`{"ids":{"member":"M1"},"channel":"app","limit":1e3}`,
	`[]`, `null`, ``, `{"ids":null,"channel":null}`, " \t\r\n", `{`, `{"ids"`, `{"ids":{"member":"M1"},"channel":"app"`,
	`{"IDS":{"member":"M1"},"Channel":"app","LIMIT":2}`,
	`{"ids":{"member":"M1"},"ſtore":"S1","channel":"app"}`,
	`{"ıds":{"member":"M1"},"channel":"app"}`,
	`{"ids":{"member":"M1"},"ids":{"card":"C1"},"channel":"app"}`,
	`{"ids":{"member":"M1"},"ids":null,"channel":"app"}`,
	`{"ids":{"member":"M1"},"channel":"app","channel":null}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":4,"limit":null}`,
	`{"ids":{"member":"M1","member":"M2"},"channel":"app"}`,
	`{"ids":{"member":null},"channel":"app"}`,
	`{"ids":{"member":"M1","zz":"1","aa":"2"},"channel":"app"}`,
	`{"ids":{"member":"bad id!","zz":"1"},"channel":"app"}`,
	`{"ids":{"\u006demb\u0065r":"M\u0031"},"channel":"\u0061pp","placement":"\ud83d\ude00","store":"\ud800x"}`,
	`{"ids":{"member":"M1"},"channel":"app","placement":"\udc00\ud800\u0041"}`,
	`{"ids":{"member":"M1"},"channel":"app","placement":"a\"b\\c\/d\b\f\n\r\t"}`,
	"{\"ids\":{\"member\":\"M1\"},\"channel\":\"app\",\"placement\":\"\xff\xfe\xed\xa0\x80\"}",
	"{\"ids\":{\"member\":\"M1\"},\"channel\":\"app\",\"placement\":\"a\x01\"}",
	`{"ids":{"member":"M1"},"channel":"app","limit":-0}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":1.0}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":9223372036854775807}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":9223372036854775808}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":-9223372036854775808}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":-9223372036854775809}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":123456789012345678901234567890123456789012345678901234567890}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":01}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":-}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":1.}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":1e+}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":"3"}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":[3]}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":{}}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":true}`,
	`{"ids":"M1","channel":"app"}`,
	`{"ids":{"member":1},"channel":"app"}`,
	`{"ids":{"member":{"x":[1,2,{"y":null}]}},"channel":"app"}`,
	`{"ids":{"member":"M1"},"channel":5}`,
	`{"ids":{"member":"M1"},"channel":"app","now":5}`,
	`{"ids":{"member":"M1"},"channel":"app","now":null}`,
	`{"ids":{"member":"M1"},"channel":"app","x":[1,{"a":true,"b":false,"c":null,"d":-1.5e-7}],"y":{}}`,
	`{"ids":{"member":"M1"},"channel":"app","x":1,"channel":true}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":"x","y":1}`,
	`{"ids":{"member":"M1"},"channel":"app","x":1,"y":}`,
	`{"ids":{"member":"M1"},"channel":"app",}`,
	`{"ids":{"member":"M1"},"channel":"app"}}`,
	`{"ids":{"member":"M1"},"channel":"app"}]`,
	`{"ids":{"member":"M1"} "channel":"app"}`,
	`{"ids" {"member":"M1"}}`,
	`{ids:{"member":"M1"}}`,
	`{"ids":{"member":"M1"},"channel":"app","x":tru}`,
	`{"ids":{"member":"M1"},"channel":"app","x":nul`,
	`{"ids":{"member":"M1"},"channel":"app","x":"\x"}`,
	`{"ids":{"member":"M1"},"channel":"app","x":"\u12G4"}`,
	`{"ids":{"member":"M1"},"channel":"app","x":"\u12`,
	`{"ids":{"member":"M1"},"channel":"app","context":{"a":"1","a":"2","b":null}}`,
	`{"ids":{"member":"M1"},"channel":"app","context":{"a":"1"},"context":{"b":"2"}}`,
	`{"ids":{"member":"M1"},"channel":"app","context":{"a":"1"},"context":null}`,
	`{"ids":{"member":"M1"},"channel":"app","context":{"":"x"}}`,
	`{"ids":{"member":"M1"},"channel":"app","context":{"b":"\u0000","a":"ok","c":"\u0001"}}`,
	`{"ids":{"member":"M1"},"channel":"app","context":[]}`,
	`{"ids":{"member":"M1"},"channel":"app","locale":"zh-CN","placement":"` + strings.Repeat("p", 129) + `"}`,
	`"string"`, `12`, `12x`, `12 x`, `-`, `true`, `truex`, `null x`, `null}`, `[1,2]x`, `[1,`, `{}`, `{} {}`, "\xef\xbb\xbf{}",
	// The bodies of TestStrictDecoding and TestDecideRequestReachesTheDeciderValidated.
	`{"ids":{"member":"M1"},"channel":"app","colour":"red"}`,
	`{"ids":{"member":"M1","passport":"X"},"channel":"app"}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":"three"}`,
	`{"ids":{"member":"M1"}}`, `{"channel":"app"}`,
	`{"ids":{"member":"M1"},"channel":"social"}`,
	`{"ids":{"phone":"12ab"},"channel":"app"}`,
	`{"ids":{"member":"M1"},"channel":"app","limit":99}`,
	`{"ids":{"member":"M1"},"channel":"app","locale":"fr"}`,
	`{"ids":{"member":"M1"},"channel":"app","now":"yesterday"}`,
	`{"ids":{"member":"M1"},"channel":"app","now":"9999-12-31T23:59:59Z"}`,
	`{"ids":{"member":"M1"},"channel":"app","now":"1999-12-31T23:59:59.999Z"}`,
	`{"ids":{"member":"M1"},"channel":"app","now":"2100-01-01T00:00:00Z"}`,
	`{"ids":{"member":"M1"},"channel":"app","now":"2000-01-01T08:00:00+08:00"}`,
	`{"ids":{"member":"M1","phone":"+86 138-0013-8000"},
		"channel":"tablet","placement":"home","store":"S1","limit":5,"locale":"en","context":{"weather":"rain"},
		"now":"2026-11-20T18:00:00+08:00"}`,
	`{"` + strings.Repeat("k", 40) + `":1}`,
	`{"ids":{"` + strings.Repeat("\u00e9", 20) + `":"1"},"channel":"app"}`,
}

// contextSeeds are bodies around the limit on context keys.
func contextSeeds() []string {
	keys := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"k` + strconv.Itoa(i) + `":"v"`)
		}
		return b.String()
	}
	pre := `{"ids":{"member":"M1"},"channel":"app","context":{`
	return []string{
		pre + keys(32) + `}}`,
		pre + keys(33) + `}}`,
		pre + keys(32) + `,"k0":"w"}}`,
		pre + keys(40) + `},"context":null}`,
		pre + keys(20) + `},"context":{` + keys(20) + `}}`,
		pre + keys(40) + `},"limit":"x"}`,
	}
}

// nestingSeeds are bodies at encoding/json's nesting limit.
func nestingSeeds() []string {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	pre := `{"ids":{"member":"M1"},"channel":"app","x":`
	return []string{
		pre + deep(9999) + `}`,
		pre + deep(10000) + `}`,
		deep(10000), deep(10001),
		`{"ids":{"member":` + deep(9998) + `}}`,
		`{"ids":{"member":` + deep(9999) + `}}`,
		pre + strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat("}", 10001) + `}`,
	}
}

// corpusSeeds reads the checked-in fuzz corpus of the decide decoders.
func corpusSeeds(t testing.TB) []string {
	var out []string
	for _, dir := range []string{"FuzzDecideRequest", "FuzzDecodeDecideRequestMatchesReference"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
		for _, p := range files {
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "[]byte("); ok {
					s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
					require.NoError(t, err, "%s", p)
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func allDecideSeeds(t testing.TB) []string {
	seeds := append([]string(nil), decideSeeds...)
	seeds = append(seeds, contextSeeds()...)
	seeds = append(seeds, nestingSeeds()...)
	seeds = append(seeds, corpusSeeds(t)...)
	for _, b := range decodeBenchBodies {
		seeds = append(seeds, b.body)
	}
	return seeds
}

// requireSameAsReference decodes body with both decoders and requires the
// same answer: the same error (status, code, field and message) or the
// same request.
func requireSameAsReference(t *testing.T, body []byte, allowNow bool) {
	t.Helper()
	var got, want engine.DecideRequest
	we := referenceDecodeDecideRequest(body, allowNow, &want)
	ge := decodeDecideRequest(body, allowNow, &got)
	require.Equal(t, we, ge, "errors differ for %q", body)
	if we != nil {
		return
	}
	require.Equal(t, want.Now == nil, got.Now == nil)
	if want.Now != nil {
		require.True(t, want.Now.Equal(*got.Now), "now %v, want %v", got.Now, want.Now)
		_, wo := want.Now.Zone()
		_, gotOff := got.Now.Zone()
		require.Equal(t, wo, gotOff)
		want.Now, got.Now = nil, nil
	}
	require.Equal(t, want, got, "requests differ for %q", body)
}

func TestDecodeDecideRequestMatchesReferenceOnSeeds(t *testing.T) {
	for _, s := range allDecideSeeds(t) {
		for _, allowNow := range []bool{false, true} {
			requireSameAsReference(t, []byte(s), allowNow)
		}
	}
}

// FuzzDecodeDecideRequestMatchesReference holds the hand-written decoder
// to the encoding/json one it replaced: for any body, the same error
// (status, code, field and message) or the same request.
func FuzzDecodeDecideRequestMatchesReference(f *testing.F) {
	for _, s := range allDecideSeeds(f) {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, allowNow bool) {
		requireSameAsReference(t, body, allowNow)
	})
}

// TestDecodeDecideRequest states the decoder's rules directly (the
// reference test above only says they are encoding/json's).
func TestDecodeDecideRequest(t *testing.T) {
	const ids = `"ids":{"member":"M1"}`
	tests := []struct {
		name, body string
		check      func(t *testing.T, req *engine.DecideRequest)
	}{
		{"the smallest body gets the defaults", `{` + ids + `,"channel":"app"}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, "M1", r.IDs.Member)
			require.Equal(t, engine.DefaultLimit, r.Limit)
			require.Equal(t, engine.DefaultLocale, r.Locale)
			require.Nil(t, r.Context)
		}},
		{"field names match case-insensitively", `{"IDS":{"member":"M1"},"Channel":"web","PlaceMent":"p","LIMIT":2}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, "M1", r.IDs.Member)
			require.Equal(t, "p", r.Placement)
			require.Equal(t, 2, r.Limit)
		}},
		{"field names fold as Unicode does", `{` + ids + `,"channel":"app","ſtore":"S1"}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, "S1", r.Store)
		}},
		{"escapes and surrogate pairs decode", `{"ids":{"m\u0065mber":"M\u0031"},"channel":"app","placement":"\ud83d\ude00\u95e8"}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, "M1", r.IDs.Member)
			require.Equal(t, "😀门", r.Placement)
		}},
		{"a lone surrogate becomes U+FFFD", `{` + ids + `,"channel":"app","store":"\ud800x\udc00"}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, "\ufffdx\ufffd", r.Store)
		}},
		{"invalid UTF-8 becomes U+FFFD", "{" + ids + ",\"channel\":\"app\",\"store\":\"a\xffb\"}", func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, "a\ufffdb", r.Store)
		}},
		{"whitespace anywhere between tokens is fine", " \r\n\t{ \"ids\" :\n{ \"member\" : \"M1\" } ,\t\"channel\" : \"app\" , \"limit\" : 7 } \n", func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, 7, r.Limit)
		}},
		{"null for a string field is the empty string", `{` + ids + `,"channel":"app","placement":null}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, "", r.Placement)
		}},
		{"null for limit is the default", `{` + ids + `,"channel":"app","limit":null}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, engine.DefaultLimit, r.Limit)
		}},
		{"null context values are empty strings", `{` + ids + `,"channel":"app","context":{"b":"3","c":null}}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, map[string]string{"b": "3", "c": ""}, r.Context)
		}},
		{"a null identifier is empty and skipped", `{"ids":{"member":null,"card":"C1"},"channel":"app"}`, func(t *testing.T, r *engine.DecideRequest) {
			require.Equal(t, "", r.IDs.Member)
			require.Equal(t, "C1", r.IDs.Card)
		}},
		{"unknown fields with any value are skipped when the body is refused anyway", `{` + ids + `,"channel":"app","limit":-0}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req engine.DecideRequest
			e := decodeDecideRequest([]byte(tc.body), false, &req)
			if tc.check == nil {
				require.NotNil(t, e)
			} else {
				require.Nil(t, e)
				tc.check(t, &req)
			}
			requireSameAsReference(t, []byte(tc.body), false)
		})
	}
}

func TestDecodeDecideRequestErrors(t *testing.T) {
	const pre = `{"ids":{"member":"M1"},"channel":"app"`
	tests := []struct {
		name, body   string
		code, field  string
		messageStart string
	}{
		{"an empty body is refused", "  \n", CodeBadRequest, "", "the body is empty"},
		{"a body that ends inside the object is refused", pre, CodeBadRequest, "", "the JSON ends early"},
		{"a syntax error names its byte, counting from 1", `{"ids" {}}`, CodeBadRequest, "", "malformed JSON at byte 8"},
		{"a syntax error after an unknown field wins over it", pre + `,"x":1,"y":}`, CodeBadRequest, "", "malformed JSON at byte 50"},
		{"a trailing comma is a syntax error", pre + `,}`, CodeBadRequest, "", "malformed JSON at byte 40"},
		{"an unknown field is named", pre + `,"colour":"red"}`, CodeUnknownField, "colour", "unknown field"},
		{"the first of several problems is named", pre + `,"limit":"x","colour":"red"}`, CodeBadRequest, "limit", "wrong JSON type: got string, want integer"},
		{"a fractional limit is a wrong type", pre + `,"limit":2.5}`, CodeBadRequest, "limit", "wrong JSON type: got number 2.5, want integer"},
		{"a limit in exponent form is a wrong type", pre + `,"limit":1e1}`, CodeBadRequest, "limit", "wrong JSON type: got number 1e1, want integer"},
		{"a limit past int64 is a wrong type, quoted only in part", pre + `,"limit":` + strings.Repeat("9", 300) + `}`, CodeBadRequest, "limit", "wrong JSON type: got number 9999999999999999999999999…, want integer"},
		{"a wrong type inside ids names ids", `{"ids":{"member":7},"channel":"app"}`, CodeBadRequest, "ids", "wrong JSON type: got number, want string"},
		{"an object where a string belongs is a wrong type", pre + `,"store":{}}`, CodeBadRequest, "store", "wrong JSON type: got object, want string"},
		{"an array as the body is a wrong type", `[{}]`, CodeBadRequest, "", "wrong JSON type: got array, want object"},
		{"data after the object is refused", pre + `} {}`, CodeBadRequest, "", "the body holds data after its JSON value"},
		{"nesting deeper than 10000 is refused", pre + `,"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, CodeBadRequest, "", "malformed JSON at byte 10043"},
		{"the smallest unknown namespace is named", `{"ids":{"zz":"1","member":"M1","passport":"P"},"channel":"app"}`, CodeUnknownField, "ids.passport", "unknown identifier namespace"},
		{"more than 32 context keys are refused", pre + `,"context":{` + contextKeys(33) + `}}`, CodeBadRequest, "context", "context holds more than 32"},
		// A key given twice is refused, as POST /v1/events refuses it;
		// the last value used to win.
		{"a repeated field is refused", pre + `,"limit":2,"limit":9}`, CodeBadRequest, "limit", "duplicate key “limit”; send each key once"},
		{"a field repeated as null is refused", pre + `,"placement":"p","placement":null}`, CodeBadRequest, "placement", "duplicate key “placement”"},
		{"two spellings of one field are refused", pre + `,"Channel":"sms"}`, CodeBadRequest, "channel", "duplicate key “channel”"},
		{"repeated ids objects are refused", `{"ids":{"member":"M1"},"ids":{"card":"C1"},"channel":"app"}`, CodeBadRequest, "ids", "duplicate key “ids”"},
		{"a repeated namespace is refused", `{"ids":{"member":"M1","member":"M2"},"channel":"app"}`, CodeBadRequest, "ids.member", "duplicate key “member” in ids"},
		{"a repeated context key is refused", pre + `,"context":{"a":"1","a":"2"}}`, CodeBadRequest, "context", "duplicate key in context"},
		{"a repeated context key past 32 is refused as a duplicate", pre + `,"context":{` + contextKeys(40) + `,"k39":"w"}}`, CodeBadRequest, "context", "duplicate key in context"},
		{"a duplicate wins over an unknown field and a wrong type", pre + `,"colour":"red","limit":"x","channel":"web"}`, CodeBadRequest, "channel", "duplicate key “channel”"},
		{"a syntax error wins over a duplicate", pre + `,"channel":"web",}`, CodeBadRequest, "", "malformed JSON at byte"},
		{"unknown fields are not compared", pre + `,"x":1,"x":2}`, CodeUnknownField, "x", "unknown field"},
		{"the smallest bad context key is named", pre + `,"context":{"z":"\u0001","b":"\u0000","a":"ok"}}`, CodeBadRequest, "context.b", "context values must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req engine.DecideRequest
			e := decodeDecideRequest([]byte(tc.body), false, &req)
			require.NotNil(t, e)
			require.Equal(t, 400, e.Status)
			require.Equal(t, tc.code, e.Code)
			require.Equal(t, tc.field, e.Field)
			require.True(t, strings.HasPrefix(e.Message, tc.messageStart), "message %q", e.Message)
			requireSameAsReference(t, []byte(tc.body), false)
		})
	}
}

func contextKeys(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":"v"`)
	}
	return b.String()
}

// TestDecodeDecideRequestAllocations pins the point of the decoder: a
// typical body costs one allocation (the request's strings); context adds
// its map.
func TestDecodeDecideRequestAllocations(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		max  float64
	}{
		{"a body without context allocates its strings once", benchBody, 1},
		{"escapes cost nothing more", decodeBenchBodies[2].body, 1},
		{"context adds its map", decodeBenchBodies[1].body, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			n := testing.AllocsPerRun(100, func() {
				var req engine.DecideRequest
				if e := decodeDecideRequest(body, false, &req); e != nil {
					t.Fatal(e)
				}
			})
			max := tc.max
			if raceEnabled {
				max++ // a dropped pooled decoder, made anew now and then
			}
			require.LessOrEqual(t, n, max)
		})
	}
}

// TestDecideRequestsAreClearedBetweenRequests: the server reuses request
// structs, so nothing of one request may show in the next.
func TestDecideRequestsAreClearedBetweenRequests(t *testing.T) {
	h := start(t, nil)
	full := `{"ids":{"card":"C1","device":"D1","member":"M0"},"channel":"tablet","placement":"p","store":"S1","limit":7,"locale":"en","context":{"a":"b"},"now":"2026-11-20T10:00:00Z"}`
	for i := 0; i < 20; i++ {
		a := h.do(t, "POST", "/v1/decide", testTokens["admin"], str(full))
		require.Equal(t, 200, a.status, "body: %s", a.body)
		a = h.do(t, "POST", "/v1/decide", testTokens["decide"], str(`{"ids":{"member":"M1"},"channel":"app"}`))
		require.Equal(t, 200, a.status, "body: %s", a.body)
		want := engine.DecideRequest{Channel: features.ChannelApp, Limit: engine.DefaultLimit, Locale: engine.DefaultLocale}
		want.IDs.Member = "M1"
		require.Equal(t, want, *h.f.last())
		a = h.do(t, "GET", "/v1/offers?customer=card:C2&channel=web", testTokens["decide"], nil)
		require.Equal(t, 200, a.status, "body: %s", a.body)
		want = engine.DecideRequest{Channel: features.ChannelWeb, Limit: engine.DefaultLimit, Locale: engine.DefaultLocale}
		want.IDs.Card = "C2"
		require.Equal(t, want, *h.f.last())
	}
}
