package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/engine"
	"nbo/features"
)

func call(t *testing.T, method, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// TestServeEndToEnd runs `nbo serve` as a user would — no keys file, the
// embedded broker — posts events over HTTP and reads them back through
// the customer API, asks for offers, and stops it with SIGTERM.
func TestServeEndToEnd(t *testing.T) {
	bin := nboBinary(t)
	dir := t.TempDir()
	httpAddr := freePort(t)
	c := startChild(t, bin, "--data-dir", dir, "--embedded-kafka-addr", freePort(t), "--http", httpAddr, "--admin", freePort(t))
	require.True(t, c.stderr.wait(60*time.Second, "caught up with the log"), "serve did not become ready:\n%s", c.stderr)
	keyBytes, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	require.NoError(t, err, "serve writes the generated admin key under the data dir")
	key := strings.TrimSpace(string(keyBytes))
	base := "http://" + httpAddr

	code, _ := call(t, "GET", base+"/readyz", "", "")
	require.Equal(t, 200, code)
	code, _ = call(t, "GET", base+"/v1/customers/member:M9", "", "")
	require.Equal(t, 401, code, "no key")

	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	body := strings.Join([]string{
		fmt.Sprintf(`{"event_id":"h1","ts":%q,"type":"consent","channel":"app","ids":{"member":"M9"},"attrs":{"purpose":"marketing","granted":"true"}}`, ts(-3*time.Hour)),
		fmt.Sprintf(`{"event_id":"h2","ts":%q,"type":"store_enter","channel":"store","ids":{"member":"M9","card":"C9"},"store":"S01"}`, ts(-2*time.Hour)),
		fmt.Sprintf(`{"event_id":"h3","ts":%q,"type":"pos_purchase","channel":"pos","ids":{"card":"C9"},"store":"S01","category":"skincare","amount":25900}`, ts(-time.Hour)),
		`{"event_id":"h4","ts":"yesterday","type":"page_view","channel":"web","ids":{"member":"M9"}}`,
	}, "\n")
	code, resp := call(t, "POST", base+"/v1/events", key, body)
	require.Equal(t, 202, code, "%v", resp)
	require.EqualValues(t, 3, resp["accepted"])
	require.Len(t, resp["rejected"], 1)

	var cust map[string]any
	require.Eventually(t, func() bool {
		code, cust = call(t, "GET", base+"/v1/customers/card:C9", key, "")
		return code == 200 && cust["version"] == float64(3)
	}, 20*time.Second, 20*time.Millisecond, "posted events become visible in the customer API")
	require.Equal(t, "member:M9", cust["customer"])
	require.Equal(t, float64(25900), cust["spend_offline"])

	code, dec := call(t, "POST", base+"/v1/decide", key, `{"ids":{"card":"C9"},"channel":"app","locale":"en"}`)
	require.Equal(t, 200, code, "%v", dec)
	require.NotEmpty(t, dec["decision_id"])
	require.Equal(t, "member:M9", dec["customer"])

	code, _ = call(t, "POST", base+"/v1/decide", key, `{"ids":{"card":"C9"},"channel":"app","colour":"red"}`)
	require.Equal(t, 400, code, "unknown fields are refused")

	// A till scans the coupon: only the code. The customer's offer
	// history counts the redemption of the offer the code was issued for.
	offers := dec["offers"].([]any)
	require.NotEmpty(t, offers, "%v", dec)
	offer := offers[0].(map[string]any)
	code, resp = call(t, "POST", base+"/v1/events", key, fmt.Sprintf(`{"event_id":"h5","ts":%q,"type":"coupon_redeem","channel":"pos","ids":{"card":"C9"},"store":"S01","coupon_code":%q,"amount":19900}`, ts(0), offer["coupon_code"]))
	require.Equal(t, 202, code, "%v", resp)
	require.Eventually(t, func() bool {
		code, cust = call(t, "GET", base+"/v1/customers/card:C9", key, "")
		if code != 200 {
			return false
		}
		for _, o := range cust["offers"].([]any) {
			if o := o.(map[string]any); o["offer_id"] == offer["offer_id"] && o["redemptions"] == float64(1) {
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "the redemption counts for offer %v", offer["offer_id"])

	// An anonymous browse, then a login, in one batch: every event counts
	// for the member, the cart included (the device-only events were once
	// refused as too_late behind the login, read from another partition).
	body = strings.Join([]string{
		fmt.Sprintf(`{"event_id":"j1","ts":%q,"type":"product_view","channel":"app","ids":{"device":"D10"},"sku":"SKU-1","category":"shoes"}`, ts(-time.Hour)),
		fmt.Sprintf(`{"event_id":"j2","ts":%q,"type":"add_to_cart","channel":"app","ids":{"device":"D10"},"sku":"SKU-1","category":"shoes","quantity":1,"amount":39900}`, ts(-50*time.Minute)),
		fmt.Sprintf(`{"event_id":"j3","ts":%q,"type":"page_view","channel":"app","ids":{"member":"M10","device":"D10"}}`, ts(-5*time.Minute)),
	}, "\n")
	code, resp = call(t, "POST", base+"/v1/events", key, body)
	require.Equal(t, 202, code, "%v", resp)
	require.Eventually(t, func() bool {
		code, cust = call(t, "GET", base+"/v1/customers/member:M10", key, "")
		return code == 200 && cust["version"] == float64(3)
	}, 20*time.Second, 20*time.Millisecond, "all three events apply to the member")
	require.EqualValues(t, 39900, cust["cart_value"])

	// No model loaded: the list of models in force is empty.
	code, resp = call(t, "GET", base+"/v1/admin/models", key, "")
	require.Equal(t, 200, code, "%v", resp)
	require.Equal(t, []any{}, resp["models"])

	// A hang-up reloads the scenarios and does not stop the service.
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGHUP))
	require.True(t, c.stderr.wait(20*time.Second, "SIGHUP: scenarios reloaded"), "no reload logged:\n%s", c.stderr)
	code, _ = call(t, "GET", base+"/readyz", "", "")
	require.Equal(t, 200, code, "still serving after SIGHUP")

	c.stop(t)
	_, err = os.Stat(filepath.Join(dir, "state.snap"))
	require.NoError(t, err, "SIGTERM writes a final snapshot")
}

// TestMalformedCorpusOverHTTP posts every file of the decoder's malformed
// corpus to a running `nbo serve`, each alone, and the good corpus beside
// them: each bad event is refused with its own code, the rejection
// counters on /metrics are exact, and every valid event is applied.
func TestMalformedCorpusOverHTTP(t *testing.T) {
	bin := nboBinary(t)
	dir := t.TempDir()
	httpAddr, adminAddr := freePort(t), freePort(t)
	// One partition: the good corpus links a device to a member, and
	// events keyed by different identifiers of one customer keep their
	// order only within a partition.
	c := startChild(t, bin, "--data-dir", dir, "--embedded-kafka-addr", freePort(t), "--http", httpAddr, "--admin", adminAddr, "--partitions", "1")
	require.True(t, c.stderr.wait(60*time.Second, "caught up with the log"), "serve did not become ready:\n%s", c.stderr)
	keyBytes, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	require.NoError(t, err)
	key := strings.TrimSpace(string(keyBytes))
	base := "http://" + httpAddr

	tsv, err := os.ReadFile("../../features/testdata/events/bad.tsv")
	require.NoError(t, err)
	counted := map[string]int{}
	files := 0
	for _, line := range strings.Split(string(tsv), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		body, err := os.ReadFile(filepath.Join("../../features/testdata/events/bad", cols[0]))
		require.NoError(t, err)
		code, resp := call(t, "POST", base+"/v1/events", key, string(body))
		files++
		if len(body) > 1<<20 {
			require.Equal(t, 413, code, cols[0])
			continue
		}
		require.Equal(t, 400, code, "%s: %v", cols[0], resp)
		rejected, _ := resp["rejected"].([]any)
		seen := false
		for _, r := range rejected {
			rc := r.(map[string]any)["code"].(string)
			counted[rc]++
			seen = seen || rc == cols[1]
		}
		require.True(t, seen, "%s: want code %s, got %v", cols[0], cols[1], resp)
	}
	require.GreaterOrEqual(t, files, 10)

	// The good corpus, one event of every type, in event-time order (its
	// file order is not, and lateness would refuse some).
	good, err := os.ReadFile("../../features/testdata/events/good.ndjson")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(good)), "\n")
	tsOf := func(l string) time.Time {
		var e struct{ TS time.Time }
		require.NoError(t, json.Unmarshal([]byte(l), &e))
		return e.TS
	}
	sort.SliceStable(lines, func(i, j int) bool { return tsOf(lines[i]).Before(tsOf(lines[j])) })
	nGood := len(lines)
	code, resp := call(t, "POST", base+"/v1/events", key, strings.Join(lines, "\n"))
	require.Equal(t, 202, code, "%v", resp)
	require.EqualValues(t, nGood, resp["accepted"])

	metric := func(name string) map[string]float64 { return scrapeMetric(t, adminAddr, name) }
	require.Eventually(t, func() bool { return metric("nbo_events_applied_total")[""] == float64(nGood) }, 20*time.Second, 50*time.Millisecond, "every valid event is applied: applied %v, rejected %v", metric("nbo_events_applied_total"), metric("nbo_events_rejected_total"))
	rej := metric("nbo_events_rejected_total")
	for code, n := range counted {
		require.Equal(t, float64(n), rej[code], "nbo_events_rejected_total{reason=%q}", code)
	}
	c.stop(t)
}

// scrapeMetric reads a metric from the admin listener's /metrics, by its
// reason label ("" without one).
func scrapeMetric(t *testing.T, adminAddr, name string) map[string]float64 {
	t.Helper()
	r, err := http.Get("http://" + adminAddr + "/metrics")
	require.NoError(t, err)
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, name+" ") && !strings.HasPrefix(l, name+"{") {
			continue
		}
		var label string
		var v float64
		if i := strings.Index(l, `reason="`); i >= 0 {
			label = l[i+8 : i+8+strings.IndexByte(l[i+8:], '"')]
		}
		fmt.Sscanf(l[strings.LastIndexByte(l, ' ')+1:], "%g", &v)
		out[label] = v
	}
	return out
}

// TestResetAnOffersLearning resets an offer's bandit posteriors through
// the admin API of a running engine.
func TestResetAnOffersLearning(t *testing.T) {
	bin := nboBinary(t)
	dir := t.TempDir()
	httpAddr := freePort(t)
	adminAddr := freePort(t)
	c := startChild(t, bin, "--data-dir", dir, "--embedded-kafka-addr", freePort(t), "--http", httpAddr, "--admin", adminAddr)
	require.True(t, c.stderr.wait(60*time.Second, "caught up with the log"), "serve did not become ready:\n%s", c.stderr)
	keyBytes, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	require.NoError(t, err)
	key := strings.TrimSpace(string(keyBytes))
	posteriors := func() float64 { return scrapeMetric(t, adminAddr, "nbo_bandit_posteriors")[""] }
	require.Zero(t, posteriors(), "nothing learnt or drawn yet")
	require.Contains(t, scrapeMetric(t, adminAddr, "nbo_attribution_records"), "", "the attribution store's fill is exposed")
	require.Contains(t, scrapeMetric(t, adminAddr, "nbo_attribution_records_evicted_total"), "")
	for _, m := range []string{"nbo_dead_letters_pending", "nbo_dead_letter_bytes", "nbo_ingest_paused"} {
		got := scrapeMetric(t, adminAddr, m)
		require.Contains(t, got, "", "%s is exposed", m)
		require.Zero(t, got[""], "%s: the dead-letter topic is up", m)
	}
	// A new member who accepts marketing gets the untargeted offers.
	code, resp := call(t, "POST", "http://"+httpAddr+"/v1/events", key, fmt.Sprintf(
		`{"event_id":"c1","ts":%q,"type":"consent","channel":"app","ids":{"member":"M-new"},"attrs":{"purpose":"marketing","granted":"true"}}`,
		time.Now().UTC().Format(time.RFC3339)))
	require.Equal(t, 202, code, "%v", resp)
	var offers []any
	require.Eventually(t, func() bool {
		code, resp = call(t, "POST", "http://"+httpAddr+"/v1/decide", key, `{"ids":{"member":"M-new"},"channel":"app","limit":3}`)
		offers, _ = resp["offers"].([]any)
		return code == 200 && len(offers) > 0
	}, 20*time.Second, 50*time.Millisecond, "the new member gets the untargeted offers: %v", resp)
	drawn := offers[0].(map[string]any)["offer_id"].(string)
	before := posteriors()
	require.Positive(t, before, "the decision's draws read (and so hold) posteriors")
	code, resp = call(t, "POST", "http://"+httpAddr+"/v1/admin/bandit/reset", key, `{"offer_id":"`+drawn+`"}`)
	require.Equal(t, 200, code, "%v", resp)
	require.Less(t, posteriors(), before, "a reset offer's posteriors are dropped")
	code, resp = call(t, "POST", "http://"+httpAddr+"/v1/admin/bandit/reset", key, `{"offer_id":"instore_trial_coupon"}`)
	require.Equal(t, 200, code, "%v", resp)
	require.Equal(t, "instore_trial_coupon", resp["reset"])
	code, resp = call(t, "POST", "http://"+httpAddr+"/v1/admin/bandit/reset", key, `{}`)
	require.Equal(t, 400, code, "%v", resp)
	require.Equal(t, "offer_id", resp["field"])
	code, resp = call(t, "POST", "http://"+httpAddr+"/v1/admin/bandit/reset", key, `{"offer_id":"instore_trial_cuopon"}`)
	require.Equal(t, 404, code, "a mistyped offer is no reset: %v", resp)
	require.Equal(t, "not_found", resp["code"])
	require.Equal(t, "offer_id", resp["field"])
	c.stop(t)
}

func TestBatchKeysFollowTheLinksInTheBatch(t *testing.T) {
	ev := func(ids features.IDs) features.Event { return features.Event{IDs: ids} }
	events := []features.Event{
		ev(features.IDs{Device: "D1"}),               // anonymous browse …
		ev(features.IDs{Device: "D1"}),               // … and cart
		ev(features.IDs{Member: "M1", Device: "D1"}), // the login links them
		ev(features.IDs{Device: "D2"}),               // someone else
		ev(features.IDs{Card: "C3"}),                 // a till purchase by card …
		ev(features.IDs{Phone: "p3", Card: "C3"}),    // … linked to a phone …
		ev(features.IDs{Member: "M3", Phone: "p3"}),  // … linked to a member
		ev(features.IDs{}),                           // no identifier (refused later)
	}
	require.Equal(t, []string{"member:M1", "member:M1", "member:M1", "device:D2", "member:M3", "member:M3", "member:M3", ""}, batchKeys(events))
	// A shared device does not join two members: each keeps their key.
	require.Equal(t, []string{"member:M1", "member:M2", "member:M2", "member:M1"}, batchKeys([]features.Event{
		ev(features.IDs{Member: "M1", Device: "T1"}),
		ev(features.IDs{Member: "M2", Device: "T1"}),
		ev(features.IDs{Member: "M2", Card: "C2"}),
		ev(features.IDs{Device: "T1"}), // the device is the first member's, as far as this batch tells
	}))
	// Without links every event keeps its own best identifier.
	require.Equal(t, []string{"device:D1", "member:M9"}, batchKeys([]features.Event{ev(features.IDs{Device: "D1"}), ev(features.IDs{Member: "M9"})}))
}

// TestServePushesWhenAnAbsenceWindowClosesOnAQuietStream: a customer
// enters a store and buys nothing for 3 s; no other event arrives, and
// the push goes out anyway (the ingest loop's idle hook fires the
// wake-up by the wall clock).
func TestServePushesWhenAnAbsenceWindowClosesOnAQuietStream(t *testing.T) {
	bin := nboBinary(t)
	dir, rules := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(rules, "offers.yaml"), []byte(`offers:
  - id: come_back
    type: coupon
    title: {zh-CN: 回来看看, en: Come back}
    text: {zh-CN: 线上立减, en: Money off online}
    cost: 500
    channels: [push]
    fulfilment: online
    requires_consent: marketing
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(rules, "scenarios.yaml"), []byte(`scenarios:
  - id: left_without_buying
    description: Entered a store and bought nothing within 3 seconds.
    after: {types: [store_enter], class: offline, within: 1h}
    absent: {types: [order, pos_purchase], within: 3s}
    when: true
    offers: [come_back]
    channels: [push]
    trigger: on_event
    priority: 50
    reason: {zh-CN: 进店未购买, en: Left without buying}
`), 0o644))
	// Pushes are quiet 22:00-08:00 in the store's zone: pick a zone where
	// it is daytime now.
	zone := ""
	for _, z := range []string{"Asia/Shanghai", "Europe/London", "America/New_York", "America/Los_Angeles", "Pacific/Auckland", "Asia/Kolkata"} {
		loc, err := time.LoadLocation(z)
		require.NoError(t, err)
		if h := time.Now().In(loc).Hour(); h >= 9 && h < 20 {
			zone = z
			break
		}
	}
	require.NotEmpty(t, zone, "one of the zones is in daytime")
	httpAddr, adminAddr := freePort(t), freePort(t)
	c := startChild(t, bin, "--data-dir", dir, "--embedded-kafka-addr", freePort(t), "--http", httpAddr, "--admin", adminAddr,
		"--scenarios", rules, "--time-zone", zone)
	require.True(t, c.stderr.wait(60*time.Second, "caught up with the log"), "serve did not become ready:\n%s", c.stderr)
	keyBytes, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	require.NoError(t, err)
	key := strings.TrimSpace(string(keyBytes))

	// A customer outside the holdout, which gets no pushes.
	holdout := engine.Holdout{}
	holdout.EnsureDefaults()
	member := ""
	for i := 20; member == ""; i++ {
		if m := fmt.Sprintf("M%d", i); !holdout.InHoldout(features.MakeKey(features.NSMember, m)) {
			member = m
		}
	}
	now := time.Now().UTC()
	body := strings.Join([]string{
		fmt.Sprintf(`{"event_id":"q1","ts":%q,"type":"consent","channel":"app","ids":{"member":%q},"attrs":{"purpose":"marketing","granted":"true"}}`, now.Add(-time.Minute).Format(time.RFC3339Nano), member),
		fmt.Sprintf(`{"event_id":"q2","ts":%q,"type":"store_enter","channel":"store","ids":{"member":%q},"store":"S01"}`, now.Format(time.RFC3339Nano), member),
	}, "\n")
	code, resp := call(t, "POST", "http://"+httpAddr+"/v1/events", key, body)
	require.Equal(t, 202, code, "%v", resp)
	require.Eventually(t, func() bool {
		return scrapeMetric(t, adminAddr, "nbo_triggers_total")[""] >= 1
	}, 30*time.Second, 100*time.Millisecond, "the push goes out once the window closes, with no further event:\n%s", c.stderr)
	require.Equal(t, float64(2), scrapeMetric(t, adminAddr, "nbo_events_applied_total")[""], "no other event arrived")
	c.stop(t)
}

// TestACorruptSnapshotIsRefusedWithAdvice: serve does not start on a
// snapshot that fails its checks, and says how to recover.
func TestACorruptSnapshotIsRefusedWithAdvice(t *testing.T) {
	bin := nboBinary(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state.snap"), []byte("not a snapshot at all"), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "serve", "--data-dir", dir, "--embedded-kafka-addr", freePort(t), "--http", freePort(t), "--admin", freePort(t)).CombinedOutput()
	require.Error(t, err, "serve must not start:\n%s", out)
	require.Contains(t, string(out), "corrupt snapshot")
	require.Contains(t, string(out), "move the snapshot away")
	require.Contains(t, string(out), "--group-id nbo-rebuild-")
}
