package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"nbo/models"
)

func TestEvaluateReportsTheModelOnTheLatestPeriodAndEstimatesThePolicy(t *testing.T) {
	// Synthetic history from the real engine (genEngineHistory).
	h := genEngineHistory(t, 200, 24, 1)
	decisions, events := h.write(t)
	dir := t.TempDir()

	// First the logged propensities alone: this names the latest period.
	stdout, stderr, err := runModelCmd(t, "evaluate", "--decisions", decisions, "--events", events)
	require.NoError(t, err, stderr)
	base := decodeOne(t, stdout)
	require.NotContains(t, base, "model")
	period := base["latest_period"].(map[string]any)
	from := period["from"].(string)
	latestRows := period["rows"].(float64)
	require.InDelta(t, 0.2*period["labelled_decisions"].(float64), period["decisions"].(float64), 1, "the last 20%% of the labelled decisions")
	require.Greater(t, period["decisions"].(float64), 100.0)

	// Train on the decisions before that period only, evaluate on it.
	prop, purchase := filepath.Join(dir, "prop.json"), filepath.Join(dir, "purchase.json")
	_, stderr, err = runModelCmd(t, "train", "--decisions", decisions, "--events", events, "--decided-before", from, "--seed", "3", "--out", prop)
	require.NoError(t, err, stderr)
	stdout, stderr, err = runModelCmd(t, "evaluate", "--decisions", decisions, "--events", events, "--model", prop, "--temperature", "1e-9", "--reward", "response")
	require.NoError(t, err, stderr)
	got := decodeOne(t, stdout)
	require.Equal(t, from, got["latest_period"].(map[string]any)["from"])

	model, logged := got["model"].(map[string]any), got["logged_propensity"].(map[string]any)
	t.Logf("latest period from %s: %v rows; model AUC %.3f (trained before it), logged propensity AUC %.3f", from, latestRows, model["auc"], logged["auc"])
	require.GreaterOrEqual(t, model["auc"].(float64), 0.72, "keenness shows in the logged features (measured 0.82–0.89)")
	require.Greater(t, model["auc"].(float64), logged["auc"].(float64)+0.1, "the priors the engine logged know nothing of keenness")
	bins := model["calibration"].([]any)
	require.Len(t, bins, 10)
	count := 0.0
	for _, b := range bins {
		count += b.(map[string]any)["count"].(float64)
	}
	require.Equal(t, latestRows, count)
	top, bottom := bins[9].(map[string]any), bins[0].(map[string]any)
	require.Greater(t, top["observed"].(float64), bottom["observed"].(float64)+0.2)
	require.InDelta(t, top["observed"].(float64), top["mean_predicted"].(float64), 0.2, "the top decile is calibrated within 0.2")

	pol := got["policy"].(map[string]any)
	t.Logf("policy: %v decisions, logged %.3f, IPS %.3f, SNIPS %.3f, DR %.3f, agreement %.2f", pol["decisions"], pol["logged_value"],
		pol["ips"].(map[string]any)["value"], pol["snips"], pol["doubly_robust"].(map[string]any)["value"], pol["agreement"])
	require.Greater(t, pol["decisions"].(float64), 100.0)
	require.Contains(t, pol["logging_propensity"], "softmax")
	require.Contains(t, pol["caveat"], "not the probability")
	// At a near-zero temperature the softmax is the engine's argmax, so
	// the logging policy's own IPS equals the value it got. (Near zero
	// means far below the smallest gap between two served offers' scores:
	// at 0.001 a gap of 0.002 still left the top offer 0.88.)
	self := pol["self_check"].(map[string]any)
	require.InDelta(t, self["logged_value"].(float64), self["ips_of_logged_policy"].(float64), 1e-9)
	require.Greater(t, self["logged_value"].(float64), 0.0)

	// At temperature 1 the softmax spreads probability the engine did not,
	// and the self-check shows the bias.
	stdout, stderr, err = runModelCmd(t, "evaluate", "--decisions", decisions, "--events", events, "--model", prop, "--reward", "response")
	require.NoError(t, err, stderr)
	self = decodeOne(t, stdout)["policy"].(map[string]any)["self_check"].(map[string]any)
	t.Logf("temperature 1: self-check IPS %.3f vs logged %.3f", self["ips_of_logged_policy"], self["logged_value"])
	require.Greater(t, self["ips_of_logged_policy"].(float64), self["logged_value"].(float64))

	// By value (the default), the candidate weighs the offers' values.
	stdout, stderr, err = runModelCmd(t, "evaluate", "--decisions", decisions, "--events", events, "--model", prop)
	require.NoError(t, err, stderr)
	pol = decodeOne(t, stdout)["policy"].(map[string]any)
	require.Contains(t, pol["candidate"], "× offer value")
	require.Contains(t, pol["reward"], "offer value")

	// The purchase-intent model on its own rows; no policy there.
	_, stderr, err = runModelCmd(t, "train", "--decisions", decisions, "--events", events, "--target", "purchase_15d", "--purchase-window", "6d", "--decided-before", from, "--out", purchase)
	require.NoError(t, err, stderr)
	stdout, stderr, err = runModelCmd(t, "evaluate", "--decisions", decisions, "--events", events, "--target", "purchase_15d", "--purchase-window", "6d", "--model", purchase)
	require.NoError(t, err, stderr)
	got = decodeOne(t, stdout)
	t.Logf("purchase_15d (6d window) on the latest period: AUC %.3f", got["model"].(map[string]any)["auc"])
	require.GreaterOrEqual(t, got["model"].(map[string]any)["auc"].(float64), 0.68, "measured 0.77–0.78")
	require.NotContains(t, got, "policy")

	// A model of the other target is refused.
	_, _, err = runModelCmd(t, "evaluate", "--decisions", decisions, "--events", events, "--model", purchase)
	require.ErrorIs(t, err, models.ErrSchemaMismatch)
}

// TestEvaluateChecksFlagsBeforeReadingTheLogs: a negative --clip was
// accepted, and a bad --reward or --target was reported only after both
// logs were read. The logs here do not exist: reading them would fail
// with another error.
func TestEvaluateChecksFlagsBeforeReadingTheLogs(t *testing.T) {
	dir := t.TempDir()
	logs := []string{"evaluate", "--decisions", filepath.Join(dir, "decisions.ndjson"), "--events", filepath.Join(dir, "events.ndjson")}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--clip", "-1"}, "--clip -1 must not be negative (0: no clipping)"},
		{[]string{"--reward", "money"}, `unknown --reward "money"`},
		{[]string{"--target", "foo"}, `unknown --target "foo"`},
	}
	for _, tt := range tests {
		_, stderr, err := runModelCmd(t, append(logs, tt.args...)...)
		require.ErrorContains(t, err, tt.want)
		require.Empty(t, stderr)
	}
}

// TestEvaluateProgressDoesNotReadLikeAnError: errors print as "nbo: …",
// so progress lines on stderr must not start with "nbo".
func TestEvaluateProgressDoesNotReadLikeAnError(t *testing.T) {
	h := genEngineHistory(t, 200, 24, 1)
	decisions, events := h.write(t)
	_, stderr, err := runModelCmd(t, "evaluate", "--decisions", decisions, "--events", events)
	require.NoError(t, err, stderr)
	require.Contains(t, stderr, "decisions")
	requireNoErrorLikeLines(t, stderr)
}

// TestEvaluateReportsTheSupportOfItsEstimate: the candidate read "the
// highest the model's score × offer value", and nothing said how many
// decisions the weighted estimates rest on. At a near-zero temperature
// every weight is 1 where the candidate agrees with the logged offer and
// 0 elsewhere, so the mean weight is the agreement and the effective
// sample size the number of agreeing decisions.
func TestEvaluateReportsTheSupportOfItsEstimate(t *testing.T) {
	h := genEngineHistory(t, 200, 24, 1)
	decisions, events := h.write(t)
	prop := filepath.Join(t.TempDir(), "prop.json")
	_, stderr, err := runModelCmd(t, "train", "--decisions", decisions, "--events", events, "--trees", "5", "--out", prop)
	require.NoError(t, err, stderr)
	for _, temp := range []string{"1e-9", "1"} {
		stdout, stderr, err := runModelCmd(t, "evaluate", "--decisions", decisions, "--events", events, "--model", prop, "--temperature", temp)
		require.NoError(t, err, stderr)
		pol := decodeOne(t, stdout)["policy"].(map[string]any)
		require.Equal(t, "show the logged offer with the highest model score × offer value", pol["candidate"])
		n, agree := pol["decisions"].(float64), pol["agreement"].(float64)
		mean, ess := pol["mean_weight"].(float64), pol["effective_sample_size"].(float64)
		t.Logf("temperature %s: agreement %.3f, mean weight %.3f, effective sample size %.1f of %v", temp, agree, mean, ess, n)
		require.Greater(t, ess, 0.0)
		require.LessOrEqual(t, ess, n*agree+1e-6, "only agreeing decisions carry weight")
		if temp == "1e-9" {
			require.InDelta(t, agree, mean, 1e-9)
			require.InDelta(t, n*agree, ess, 1e-6)
		}
		if mean < 0.5 {
			require.Contains(t, pol["warning"], "little support")
			require.Contains(t, stderr, "warning: little support")
		} else {
			require.NotContains(t, pol, "warning")
			require.NotContains(t, stderr, "warning")
		}
		requireNoErrorLikeLines(t, stderr)
	}
}
