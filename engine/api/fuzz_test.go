package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"

	"nbo/engine"
	"nbo/features"
)

// Native fuzz targets for every decoder of client input in this package:
// decide bodies, offers query strings, keys files, and the log redactor.
// Event batches are decoded by features.SplitBatch and DecodeEvent, which
// have their own fuzz targets in features.

func checkError(t *testing.T, e *Error, input string) {
	t.Helper()
	if e.Code == "" || e.Message == "" {
		t.Fatalf("error without code or message: %+v", e)
	}
	if e.Status != 400 && e.Status != 403 {
		t.Fatalf("decoder answered status %d", e.Status)
	}
	// Errors quote at most a short excerpt: a field path and a sentence.
	if len(e.Field) > 48 || len(e.Message) > 200 {
		t.Fatalf("error too long (field %d, message %d bytes): %+v", len(e.Field), len(e.Message), e)
	}
	if len(input) > 64 && strings.Contains(e.Message+e.Field, input) {
		t.Fatalf("error echoes the input")
	}
}

func checkRequest(t *testing.T, req *engine.DecideRequest, allowNow bool) {
	t.Helper()
	if req.IDs.Empty() {
		t.Fatal("accepted a request without identifiers")
	}
	switch req.Channel {
	case features.ChannelApp, features.ChannelWeb, features.ChannelMiniapp, features.ChannelTablet,
		features.ChannelPOS, features.ChannelPush, features.ChannelSMS:
	default:
		t.Fatalf("accepted channel %v", req.Channel)
	}
	if req.Limit < 1 || req.Limit > engine.MaxLimit {
		t.Fatalf("accepted limit %d", req.Limit)
	}
	if req.Locale != engine.LocaleEn && req.Locale != engine.LocaleZhCN {
		t.Fatalf("accepted locale %q", req.Locale)
	}
	if len(req.Context) > maxContextKeys {
		t.Fatalf("accepted %d context keys", len(req.Context))
	}
	if req.Now != nil && !allowNow {
		t.Fatal("accepted now from a non-admin key")
	}
	for _, v := range []string{req.IDs.Phone, req.IDs.Email} {
		if v != "" && !isHashed(v) {
			t.Fatalf("phone or email not hashed: %q", v)
		}
	}
}

func FuzzDecideRequest(f *testing.F) {
	for _, s := range []string{
		`{"ids":{"member":"M1"},"channel":"app"}`,
		`{"ids":{"member":"M1","phone":"+8613800138000"},"channel":"tablet","placement":"home","store":"S1","limit":5,"locale":"en","context":{"a":"b"},"now":"2026-11-20T10:00:00Z"}`,
		`{"ids":{"email":"A@B.cn"},"channel":"push","limit":0}`,
		`{"ids":{},"channel":"app"}`,
		`{"ids":{"member":"M1"},"channel":"app","x":1}`,
		`{"ids":{"member":"M1"},"channel":"app"} trailing`,
		`{"ids":{"member":"M1"},"channel":"app","limit":1e3}`,
		`[]`, `null`, ``, `{"ids":null,"channel":null}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, allowNow bool) {
		var req engine.DecideRequest
		e := decodeDecideRequest(body, allowNow, &req)
		var again engine.DecideRequest
		e2 := decodeDecideRequest(body, allowNow, &again)
		if (e == nil) != (e2 == nil) || (e != nil && *e != *e2) {
			t.Fatalf("decoding is not deterministic: %v vs %v", e, e2)
		}
		if e != nil {
			checkError(t, e, string(body))
			return
		}
		checkRequest(t, &req, allowNow)
	})
}

func FuzzOffersQuery(f *testing.F) {
	for _, s := range []string{
		"customer=member:M1&channel=app",
		"customer=phone:%2B8613800138000&channel=web&limit=20&locale=zh-CN&placement=cart&store=S1",
		"customer=member:M1&channel=app&channel=web",
		"customer=member&channel=app",
		"customer=member:M1&channel=app&limit=-1",
		"foo=bar", "", "&&&=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		var args protocol.Args
		args.ParseBytes([]byte(q))
		var req engine.DecideRequest
		if e := decodeOffersQuery(&args, &req); e != nil {
			checkError(t, e, q)
			return
		}
		checkRequest(t, &req, false)
	})
}

func FuzzKeysFile(f *testing.F) {
	good, err := os.ReadFile("testdata/keys.good.yml")
	if err != nil {
		f.Fatal(err)
	}
	bad, err := os.ReadFile("testdata/keys.bad.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bad)
	f.Add([]byte("keys: []\n"))
	f.Add([]byte("keys:\n  - name: x\n    sha256: " + HashKey("k") + "\n    scopes: [ingest, admin]\n    extra: 1\n"))
	f.Add([]byte("keys:\n  - {name: a, sha256: " + HashKey("k") + ", scopes: [admin]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "keys.yml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ring, err := LoadKeys(p)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for i := 0; i < ring.Len(); i++ {
			s := ring.Spec(i)
			if s.Name == "" || s.Scopes == 0 || names[s.Name] {
				t.Fatalf("accepted key %+v", s)
			}
			names[s.Name] = true
		}
	})
}

func FuzzRedactPath(f *testing.F) {
	for _, s := range []string{
		"/v1/customers/phone:+8613800138000", "/v1/customers/email:a@b.cn", "/v1/customers/member:M1",
		"/v1/customers/phone:" + strings.Repeat("a", 64), "/x/138 0013 8000/y", "/v1/customers/a%40b.cn",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		out := redactPath(p)
		for _, seg := range strings.Split(out, "/") {
			if seg == "" || isHashed(seg) {
				continue
			}
			if _, v, ok := strings.Cut(seg, ":"); ok && isHashed(v) {
				continue
			}
			if strings.Contains(seg, "@") {
				t.Fatalf("an email survived redaction: %q → %q", p, out)
			}
			if sensitive(seg) && !strings.HasSuffix(seg, redacted) {
				t.Fatalf("a phone-like segment survived redaction: %q → %q", p, out)
			}
		}
	})
}

// FuzzDecisionEncoding holds the hand-written encoder to encoding/json's
// output, byte for byte.
func FuzzDecisionEncoding(f *testing.F) {
	f.Add("d-1", "member:M1", "o1", "到店体验券 <b>&</b>\u2028", "reason \"q\" \\ \n\t\x01\xff", int64(500), 0.25, 1e-7, 1e21, int64(1763632800123), true)
	f.Add("", "", "", "", "", int64(-1), 0.0, -0.0, 123456789.125, int64(0), false)
	f.Fuzz(func(t *testing.T, id, cust, offer, title, reason string, value int64, p, x, total float64, ms int64, fb bool) {
		d := &engine.Decision{
			DecisionID: id, Customer: cust, Group: engine.GroupHoldout, ModelVersion: title, Fallback: fb,
			NewestEventTS: time.UnixMilli(ms).In(time.FixedZone("CST", 8*3600)),
			Offers: []engine.OfferResult{
				{OfferID: offer, Type: "coupon", Title: title, Text: reason, Value: value, Expiry: time.UnixMilli(ms).UTC(),
					FulfilmentStore: cust, Scenario: id, ReasonCode: offer, Reason: reason,
					Score: engine.ScoreParts{Propensity: p, ContextWeight: x, Value: total, Lever: -p, Explore: x * 3, Total: total / 7}},
				{},
			},
		}
		want, werr := json.Marshal(d)
		got, gerr := appendDecision(nil, d)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json error %v, ours %v", werr, gerr)
		}
		if werr == nil && string(want) != string(got) {
			t.Fatalf("encodings differ:\nencoding/json: %s\nours:          %s", want, got)
		}
	})
}

// FuzzEventsBatch drives the ingest route's decoding: whatever the body,
// every event is either accepted or rejected exactly once, rejections
// keep their event's index in order, and errors stay short.
func FuzzEventsBatch(f *testing.F) {
	ev := `{"event_id":"e1","ts":"2026-11-20T09:59:00Z","type":"page_view","channel":"web","ids":{"member":"M1"}}`
	for _, s := range []string{
		ev, "[" + ev + "," + ev + "]", ev + "\n" + ev + "\n", "[" + ev + `,{"x":1},3]`,
		"[]", "", "[", ev + "\n{broken\n", `{"event_id":"e2","ts":"2099-01-01T00:00:00Z","type":"order","channel":"app","ids":{"phone":"+8613800138000"},"amount":100}`,
	} {
		f.Add([]byte(s))
	}
	now := testNow.UnixMilli()
	f.Fuzz(func(t *testing.T, body []byte) {
		var opts features.DecodeOptions
		opts.EnsureDefaults()
		events, rejected, total, e := decodeBatch(body, now, &opts, 8)
		if e != nil {
			if e.Status != 400 && e.Status != 413 {
				t.Fatalf("status %d", e.Status)
			}
			if len(e.Message) > 200 || e.Code == "" {
				t.Fatalf("bad error %+v", e)
			}
			return
		}
		if total > 8 {
			t.Fatalf("%d events past the limit of 8", total)
		}
		if len(events)+len(rejected) != total {
			t.Fatalf("%d accepted + %d rejected != %d events", len(events), len(rejected), total)
		}
		last := -1
		for _, r := range rejected {
			if r.Index <= last || r.Index >= total || r.Code == "" || len(r.Message) > 300 {
				t.Fatalf("bad rejection %+v after index %d", r, last)
			}
			last = r.Index
		}
		for i := range events {
			if events[i].ID == "" || events[i].IDs.Empty() {
				t.Fatalf("accepted an event without id or identifiers: %+v", events[i])
			}
		}
	})
}
