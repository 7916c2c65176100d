package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features/kafka"
	"nbo/scenarios"
)

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, c *child, base string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve never became ready:\n%s", c.stderr)
}

// TestACrashDoesNotOverIssueABudget serves an offer with a budget of 5 coupons
// to strangers, kills the engine with SIGKILL after the budget ran out
// and long before its next snapshot, restarts it, and requires that the
// offer is not issued again: the reservations made since the snapshot
// come back from nbo.decisions.
func TestACrashDoesNotOverIssueABudget(t *testing.T) {
	const budget = 5
	bin := nboBinary(t)
	dir := t.TempDir()
	rules := t.TempDir()
	require.NoError(t, os.CopyFS(rules, scenarios.Builtin()))
	require.NoError(t, os.WriteFile(filepath.Join(rules, "crash_offers.yaml"), []byte(fmt.Sprintf(`offers:
  - id: crash_coupon
    type: coupon
    title: {zh-CN: 限量券, en: Limited coupon}
    text: {zh-CN: 立减, en: Money off}
    value: 90000
    cost: 500
    channels: [app]
    fulfilment: online
    budget: {total: %d}
    prior: 0.95
    category: crash
    untargeted: true
`, budget*500)), 0o644)) // the budget is money: budget coupons at cost 500
	httpAddr, kafkaAddr := freePort(t), freePort(t)
	base := "http://" + httpAddr
	args := []string{"--data-dir", dir, "--embedded-kafka-addr", kafkaAddr, "--http", httpAddr, "--admin", freePort(t),
		"--scenarios", rules, "--snapshot-every", "1h", "--log-level", "debug"}

	requests := 0
	issue := func(t *testing.T, key string, n int) int {
		t.Helper()
		issued := 0
		for i := 0; i < n; i++ {
			requests++
			code, dec := call(t, "POST", base+"/v1/decide", key, fmt.Sprintf(`{"ids":{"member":"STRANGER%d"},"channel":"app","limit":3}`, requests))
			require.Equal(t, 200, code, "%v", dec)
			offers, _ := dec["offers"].([]any)
			for _, o := range offers {
				if o.(map[string]any)["offer_id"] == "crash_coupon" {
					issued++
				}
			}
		}
		return issued
	}

	// First run: two coupons, then a clean stop (a snapshot).
	c := startChild(t, bin, args...)
	waitReady(t, c, base)
	keyBytes, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	require.NoError(t, err)
	key := strings.TrimSpace(string(keyBytes))
	first := issue(t, key, 2)
	require.Positive(t, first)
	c.stop(t)

	// Second run: the rest of the budget, then SIGKILL once the decision
	// log holds every decision (a decision still in the publisher's
	// buffer at a crash is not in the log).
	c = startChild(t, bin, args...)
	waitReady(t, c, base)
	second := issue(t, key, 4*budget)
	require.Equal(t, budget, first+second, "the budget is spent, not exceeded")
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		end, err := kafka.EndOffsets(ctx, []string{kafkaAddr}, kafka.TopicDecisions)
		var n int64
		for _, o := range end {
			n += o
		}
		return err == nil && n == int64(requests)
	}, 20*time.Second, 20*time.Millisecond, "every decision reaches the log")
	c.kill(t)

	// Third run: the reservations come back from the log; none is issued.
	c = startChild(t, bin, args...)
	waitReady(t, c, base)
	third := issue(t, key, 2*budget)
	require.Zero(t, third, "after the crash the budget is still spent: no coupon is issued twice")
	require.True(t, c.stderr.wait(time.Second, `"msg":"replayed the decision log since the snapshot","decisions":20,`), "the second run's decisions are replayed:\n%s", c.stderr)
	c.stop(t)

	// And a restart after the clean stop does not replay them twice.
	c = startChild(t, bin, args...)
	waitReady(t, c, base)
	require.Zero(t, issue(t, key, budget))
	c.stop(t)
}
