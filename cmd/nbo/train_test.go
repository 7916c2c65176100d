package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/engine"
	"nbo/features"
	"nbo/features/kafka"
	"nbo/models"
	"nbo/scenarios"
)

// runModelCmd runs the real command tree in-process and returns stdout and
// stderr separately.
func runModelCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func TestTrainOnRealDataPrintsOneJSONObjectAndScoresThroughTheArtifact(t *testing.T) {
	// Real public tables (see models/testdata/README.md): two from the R
	// package carData, whose floors are below what the forest measured
	// (arrests 0.715/0.727/0.738, wells 0.660/0.666/0.658) and at the
	// level of a logistic regression fitted in R on the same data
	// (arrests 0.72–0.74, wells 0.61–0.65); and the UCI in-vehicle coupon
	// table, where the issue asks for AUC 0.80 (measured 0.824/0.832/0.844).
	tests := []struct {
		name, file, label string
		floor             float64
	}{
		{"the marijuana-arrests table reaches AUC 0.70 for every seed", "arrests.csv", "released", 0.70},
		{"the well-switching table reaches AUC 0.64 for every seed", "wells.csv", "switch", 0.64},
		{"the in-vehicle coupon table reaches AUC 0.80 for every seed", "coupon.csv", "Y", 0.80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csv := filepath.Join("..", "..", "models", "testdata", tt.file)
			for seed := 1; seed <= 3; seed++ {
				out := filepath.Join(t.TempDir(), "model.json")
				stdout, stderr, err := runModelCmd(t, "train", "--csv", csv, "--label", tt.label, "--algo", "forest",
					"--trees", "100", "--holdout", "0.2", "--seed", strconv.Itoa(seed), "--out", out)
				require.NoError(t, err, stderr)
				require.Contains(t, stderr, "trees", "progress goes to stderr")
				dec := json.NewDecoder(strings.NewReader(stdout))
				var got map[string]any
				require.NoError(t, dec.Decode(&got))
				require.False(t, dec.More(), "exactly one JSON object on stdout, got %q", stdout)
				for _, k := range []string{"auc", "accuracy", "logloss", "rows_train", "rows_test", "algo", "seed", "trees", "schema_hash"} {
					require.Contains(t, got, k)
				}
				auc := got["auc"].(float64)
				t.Logf("%s seed %d: AUC %.4f logloss %.4f", tt.file, seed, auc, got["logloss"].(float64))
				require.GreaterOrEqual(t, auc, tt.floor)
				require.Equal(t, float64(seed), got["seed"])
				require.Equal(t, 100.0, got["trees"])

				if seed == 1 {
					checkScore(t, out, csv)
				}
			}
		})
	}
}

// checkScore runs nbo score and compares its lines with the compiled
// scorer on the same rows.
func checkScore(t *testing.T, model, csv string) {
	t.Helper()
	stdout, stderr, err := runModelCmd(t, "score", "--model", model, "--csv", csv)
	require.NoError(t, err, stderr)
	a, err := models.LoadArtifact(model)
	require.NoError(t, err)
	s, err := models.Compile(a)
	require.NoError(t, err)
	ds, err := models.ReadCSV(openModelTestCSV(t, csv), models.CSVOptions{Label: a.Label})
	require.NoError(t, err)
	require.Equal(t, a.SchemaHash, ds.Schema.Hash(), "the same file gives the same schema")
	sc := bufio.NewScanner(strings.NewReader(stdout))
	i := 0
	for sc.Scan() {
		p, err := strconv.ParseFloat(sc.Text(), 64)
		require.NoError(t, err)
		require.InDelta(t, s.Propensity(ds.X[i]), p, 1e-5, "row %d", i)
		i++
	}
	require.Equal(t, len(ds.X), i, "one line per row")
}

func TestTrainRefusesBadInputWithAClearError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	writeModelTestFile(t, bad, "a,y\n1,0\n2\n")
	_, _, err := runModelCmd(t, "train", "--csv", bad, "--label", "y", "--out", filepath.Join(dir, "m.json"))
	require.ErrorContains(t, err, "line 3: 1 fields, the header has 2")

	good := filepath.Join(dir, "good.csv")
	writeModelTestFile(t, good, "a,y\n1,0\n2,1\n")
	_, _, err = runModelCmd(t, "train", "--csv", good, "--label", "y", "--algo", "boosted", "--out", filepath.Join(dir, "m.json"))
	require.ErrorContains(t, err, `unknown algorithm "boosted"`)
	_, _, err = runModelCmd(t, "train", "--csv", good, "--label", "y", "--holdout", "1.5", "--out", filepath.Join(dir, "m.json"))
	require.ErrorContains(t, err, "holdout 1.5 must be between 0 and 1")
}

// TestTrainReadsNAAsMissingAndWarnsAboutNumberLikeCategories: one "NA" in
// a numeric column once made it a categorical column of ~360 values,
// silently (holdout AUC 0.897 → 0.584).
func TestTrainReadsNAAsMissingAndWarnsAboutNumberLikeCategories(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(4, 4))
	var na, odd strings.Builder
	na.WriteString("x,z,y\n")
	odd.WriteString("x,z,y\n")
	for i := 0; i < 400; i++ {
		x, z := rng.Float64()*100, rng.Float64()
		y := 0
		if x/100+rng.Float64()*0.5 > 0.8 {
			y = 1
		}
		xs, other := fmt.Sprintf("%.2f", x), fmt.Sprintf("%.2f", x)
		if i == 7 {
			xs, other = "NA", "?"
		}
		fmt.Fprintf(&na, "%s,%.3f,%d\n", xs, z, y)
		fmt.Fprintf(&odd, "%s,%.3f,%d\n", other, z, y)
	}
	csv := filepath.Join(dir, "na.csv")
	writeModelTestFile(t, csv, na.String())
	out := filepath.Join(dir, "m.json")
	_, stderr, err := runModelCmd(t, "train", "--csv", csv, "--label", "y", "--trees", "10", "--out", out)
	require.NoError(t, err, stderr)
	require.NotContains(t, stderr, "warning")
	a, err := models.LoadArtifact(out)
	require.NoError(t, err)
	require.Equal(t, models.Numeric, a.Schema.Features[0].Kind, "NA is missing, the column stays numeric")

	csv = filepath.Join(dir, "odd.csv")
	writeModelTestFile(t, csv, odd.String())
	_, stderr, err = runModelCmd(t, "train", "--csv", csv, "--label", "y", "--trees", "10", "--out", out)
	require.NoError(t, err, stderr)
	require.Regexp(t, `warning: column "x" is categorical with \d+ distinct values, \d+ of them numbers: line 9 holds "\?"`, stderr)
	requireNoErrorLikeLines(t, stderr)
}

// TestTrainWarnsWhichTextLabelIsPositive: with labels bought/no the
// positive class was "no" (the later alphabetically), silently.
func TestTrainWarnsWhichTextLabelIsPositive(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("a,outcome\n")
	for i := 0; i < 60; i++ {
		lbl := "no"
		if i%3 == 0 {
			lbl = "bought"
		}
		fmt.Fprintf(&b, "%d,%s\n", i%7, lbl)
	}
	csv := filepath.Join(dir, "labels.csv")
	writeModelTestFile(t, csv, b.String())
	_, stderr, err := runModelCmd(t, "train", "--csv", csv, "--label", "outcome", "--algo", "tree", "--out", filepath.Join(dir, "m.json"))
	require.NoError(t, err, stderr)
	require.Contains(t, stderr, `warning: the positive class is "no"`)
	require.Contains(t, stderr, `give --positive "bought"`)
	requireNoErrorLikeLines(t, stderr)

	_, stderr, err = runModelCmd(t, "train", "--csv", csv, "--label", "outcome", "--positive", "bought", "--algo", "tree", "--out", filepath.Join(dir, "m.json"))
	require.NoError(t, err, stderr)
	require.Contains(t, stderr, `positive label "bought"`)
	require.NotContains(t, stderr, "warning")
}

// TestTrainRefusesZeroTreesLikeNegative: "--trees 0" once trained the
// default 100 trees silently while "--trees -3" was refused; 0 is not
// documented as "the default", so both are refused the same way, before
// anything is read or trained.
func TestTrainRefusesZeroTreesLikeNegative(t *testing.T) {
	csv := filepath.Join("..", "..", "models", "testdata", "arrests.csv")
	// --trees is the forest's; the other algorithms ignore it.
	_, stderr, err := runModelCmd(t, "train", "--csv", csv, "--label", "released", "--algo", "nb", "--trees", "0", "--out", filepath.Join(t.TempDir(), "m.json"))
	require.NoError(t, err, stderr)
	for _, n := range []string{"0", "-3", "10001"} {
		out := filepath.Join(t.TempDir(), "m.json")
		_, stderr, err := runModelCmd(t, "train", "--csv", csv, "--label", "released", "--trees", n, "--out", out)
		require.ErrorContains(t, err, "--trees "+n+" out of range 1..10000")
		require.Empty(t, stderr, "refused before training")
		require.NoFileExists(t, out)
	}
}

// TestTrainChecksTheOutputBeforeTraining: "--out /nope/dir/m.json" once
// failed only after the whole model was trained.
func TestTrainChecksTheOutputBeforeTraining(t *testing.T) {
	csv := filepath.Join("..", "..", "models", "testdata", "arrests.csv")
	dir := t.TempDir()
	for _, tt := range []struct{ out, want string }{
		{filepath.Join(dir, "nope", "m.json"), "no such file or directory"},
		{dir, "is a directory"},
	} {
		_, stderr, err := runModelCmd(t, "train", "--csv", csv, "--label", "released", "--trees", "5", "--out", tt.out)
		require.ErrorContains(t, err, "--out")
		require.ErrorContains(t, err, tt.want)
		require.Empty(t, stderr, "refused before reading and training")
	}
	h := genEngineHistory(t, 10, 2, 1)
	decisions, events := h.write(t)
	_, stderr, err := runModelCmd(t, "train", "--decisions", decisions, "--events", events, "--out", filepath.Join(dir, "nope", "m.json"))
	require.ErrorContains(t, err, "no such file or directory")
	require.Empty(t, stderr, "refused before reading the history")
	_, stderr, err = runModelCmd(t, "train", "--decisions", decisions, "--events", events, "--target", "churn", "--out", filepath.Join(dir, "m.json"))
	require.ErrorContains(t, err, `unknown --target "churn"`)
	require.Empty(t, stderr, "refused before reading the history")
	// That run probed dir/m.json's directory for writing: the probe is gone.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "the probe file is removed")
}

// TestTrainProgressDoesNotReadLikeAnError: errors print as "nbo: …", so
// progress lines on stderr must not start with "nbo".
func TestTrainProgressDoesNotReadLikeAnError(t *testing.T) {
	csv := filepath.Join("..", "..", "models", "testdata", "arrests.csv")
	_, stderr, err := runModelCmd(t, "train", "--csv", csv, "--label", "released", "--trees", "5", "--out", filepath.Join(t.TempDir(), "m.json"))
	require.NoError(t, err, stderr)
	requireNoErrorLikeLines(t, stderr)
	require.Contains(t, stderr, "training on")

	h := genEngineHistory(t, 200, 24, 1)
	decisions, events := h.write(t)
	_, stderr, err = runModelCmd(t, "train", "--decisions", decisions, "--events", events, "--out", filepath.Join(t.TempDir(), "m.json"))
	require.NoError(t, err, stderr)
	require.Contains(t, stderr, "decisions")
	requireNoErrorLikeLines(t, stderr)
}

func requireNoErrorLikeLines(t *testing.T, stderr string) {
	t.Helper()
	for line := range strings.Lines(stderr) {
		require.False(t, strings.HasPrefix(line, "nbo"), "a progress line reads like an error: %q", line)
	}
}

func openModelTestCSV(t *testing.T, path string) *strings.Reader {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.NewReader(string(b))
}

func writeModelTestFile(t *testing.T, path, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
}

// engineHistory is a synthetic omnichannel history produced by the real
// engine: customers with a hidden keenness (which shows in what they buy
// and how often they visit) get decisions on the app every other day; the
// engine logs each decision with its feature vectors, and keen customers
// redeem the coupons they are offered and buy again far more often. The
// decision records are what the engine published, the events what it
// applied, both in order.
type engineHistory struct {
	decisions, events []string
	keen              map[string]bool // by canonical customer key
}

func genEngineHistory(t testing.TB, customers, days int, seed uint64) *engineHistory {
	t.Helper()
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	store, err := features.NewStore(features.Options{})
	require.NoError(t, err)
	set, err := scenarios.LoadBuiltin(start)
	require.NoError(t, err)
	policy, err := engine.NewPolicy(engine.PolicyOptions{})
	require.NoError(t, err)
	h := &engineHistory{keen: map[string]bool{}}
	var mu sync.Mutex
	clock := start
	eng, err := engine.New(engine.Options{
		Store: store, Scenarios: func() *scenarios.Set { return set }, Budgets: engine.NewBudgets(), Policy: policy,
		Explorer: &engine.BanditExplorer{Bandit: models.NewBandit()}, Holdout: engine.Holdout{Share: 0.05},
		Clock: func() time.Time { return clock }, Seed: 1,
		Decisions: engine.PublisherFunc(func(_, v []byte) {
			mu.Lock()
			h.decisions = append(h.decisions, string(v))
			mu.Unlock()
		}),
	})
	require.NoError(t, err)
	t.Cleanup(eng.Close)

	var opts features.DecodeOptions
	opts.EnsureDefaults()
	n := 0
	apply := func(at time.Time, body string, args ...any) {
		n++
		line := fmt.Sprintf(`{"event_id":"e%d","ts":%q,`, n, at.Format(time.RFC3339)) + fmt.Sprintf(body, args...) + "}"
		var ev features.Event
		require.Nil(t, features.DecodeEvent([]byte(line), at.Add(time.Hour).UnixMilli(), &opts, &ev), line)
		a, rej := store.Apply(&ev)
		require.Nil(t, rej, line)
		eng.OnApplied(&ev, a)
		h.events = append(h.events, line)
	}
	// Behaviour and responses draw from separate streams, so the engine's
	// own randomness (exploration, how many offers it shows) does not
	// change who buys when.
	rng := rand.New(rand.NewPCG(seed, 11))
	resp := rand.New(rand.NewPCG(seed, 12))
	keen := make([]bool, customers)
	for c := range keen {
		keen[c] = rng.IntN(3) == 0
		h.keen[fmt.Sprintf("member:M%d", c)] = keen[c]
		apply(start, `"type":"identify","channel":"app","ids":{"member":"M%d","card":"K%d"}`, c, c)
		apply(start.Add(time.Minute), `"type":"consent","channel":"app","ids":{"member":"M%d"},"attrs":{"purpose":"marketing","granted":"true"}`, c)
	}
	for day := 0; day < days; day++ {
		base := start.Add(time.Duration(day) * 24 * time.Hour)
		for c := 0; c < customers; c++ {
			m := fmt.Sprintf(`{"member":"M%d"}`, c)
			// Behaviour: keen customers browse and buy far more.
			browse, buy := 0.3, 0.08
			if keen[c] {
				browse, buy = 0.9, 0.45
			}
			if rng.Float64() < browse {
				apply(base.Add(2*time.Hour), `"type":"product_view","channel":"app","ids":%s,"sku":"SKU%d","category":"skincare"`, m, rng.IntN(20))
				apply(base.Add(2*time.Hour+time.Minute), `"type":"add_to_cart","channel":"app","ids":%s,"sku":"SKU%d","category":"skincare"`, m, rng.IntN(20))
			}
			if rng.Float64() < buy {
				apply(base.Add(3*time.Hour), `"type":"store_enter","channel":"store","ids":%s,"store":"S01"`, m)
				apply(base.Add(3*time.Hour+20*time.Minute), `"type":"pos_purchase","channel":"pos","ids":{"card":"K%d"},"store":"S01","category":"skincare","sku":"K1","amount":%d`, c, 5000+rng.IntN(30000))
				apply(base.Add(3*time.Hour+25*time.Minute), `"type":"store_exit","channel":"store","ids":%s,"store":"S01"`, m)
			}
			if day%2 != 0 {
				continue
			}
			now := base.Add(4 * time.Hour)
			clock = now
			d, err := eng.Decide(context.Background(), &engine.DecideRequest{IDs: features.IDs{Member: fmt.Sprintf("M%d", c)}, Channel: features.ChannelApp, Limit: 3, Locale: engine.LocaleEn, Now: &now})
			require.NoError(t, err)
			for k, o := range d.Offers {
				p := 0.04
				if keen[c] {
					p = 0.5
				}
				if resp.Float64() >= p {
					continue
				}
				at := now.Add(time.Duration(1+k) * time.Hour)
				if resp.IntN(2) == 0 {
					apply(at, `"type":"coupon_redeem","channel":"app","ids":%s,"decision_id":%q,"offer_id":%q`, m, d.DecisionID, o.OfferID)
				} else {
					apply(at, `"type":"coupon_redeem","channel":"pos","ids":{"card":"K%d"},"store":"S01","coupon_code":%q`, c, engine.CouponCode(d.DecisionID, o.OfferID))
				}
			}
		}
		if day%2 == 0 {
			// A stranger: the fallback offers, logged without a customer.
			now := base.Add(5 * time.Hour)
			_, err := eng.Decide(context.Background(), &engine.DecideRequest{IDs: features.IDs{Member: "NOBODY"}, Channel: features.ChannelApp, Limit: 2, Now: &now})
			require.NoError(t, err)
		}
	}
	return h
}

func (h *engineHistory) write(t testing.TB) (decisions, events string) {
	t.Helper()
	dir := t.TempDir()
	decisions, events = filepath.Join(dir, "decisions.ndjson"), filepath.Join(dir, "events.ndjson")
	require.NoError(t, os.WriteFile(decisions, []byte(strings.Join(h.decisions, "\n")+"\n"), 0o644))
	require.NoError(t, os.WriteFile(events, []byte(strings.Join(h.events, "\n")+"\n"), 0o644))
	return decisions, events
}

// decodeOne decodes stdout as exactly one JSON object.
func decodeOne(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var got map[string]any
	require.NoError(t, dec.Decode(&got))
	require.False(t, dec.More(), "exactly one JSON object on stdout, got %q", stdout)
	return got
}

func TestTrainFromTheEngineHistoryServesTheModels(t *testing.T) {
	// Synthetic history (see genEngineHistory): keen customers, a third of
	// them, redeem half the coupons they are offered and buy often; the
	// others redeem 4% and rarely buy. Their logged features show it. The
	// engine's own exploration varies from run to run, so the floors sit
	// below what was measured (propensity 0.83, purchase in 6 days 0.73–0.75).
	h := genEngineHistory(t, 200, 24, 1)
	decisions, events := h.write(t)
	tests := []struct {
		name, target, schema, served string
		floor                        float64
	}{
		{"the propensity model learns redemptions and serves as the offer model", "propensity", engine.PropensitySchema.Hash(), "propensity", 0.75},
		{"the purchase-intent model learns purchases and serves as the purchase_15d score", "purchase_15d", engine.CustomerSchema.Hash(), "purchase_15d", 0.68},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "model.json")
			stdout, stderr, err := runModelCmd(t, "train", "--decisions", decisions, "--events", events, "--target", tt.target,
				"--purchase-window", "6d", "--seed", "2", "--out", out)
			require.NoError(t, err, stderr)
			got := decodeOne(t, stdout)
			for _, k := range []string{"auc", "accuracy", "logloss", "rows_train", "rows_test", "rows_censored", "positives"} {
				require.Contains(t, got, k)
			}
			t.Logf("%s: AUC %.3f logloss %.3f, %v+%v rows, %v positive, %v censored", tt.target, got["auc"], got["logloss"],
				got["rows_train"], got["rows_test"], got["positives"], got["rows_censored"])
			require.GreaterOrEqual(t, got["auc"].(float64), tt.floor)
			require.Greater(t, got["rows_censored"].(float64), 0.0, "the last days' windows are still open")
			require.Greater(t, got["positives"].(float64), 20.0)
			require.Equal(t, 30.0, got["trees"], "30 trees by default from history")
			require.Equal(t, tt.schema, got["schema_hash"])

			reg := models.NewRegistry()
			require.NoError(t, reg.Load(out, tt.schema))
			res, err := newModelSet(t.TempDir(), filepath.Dir(out)).load(out)
			require.NoError(t, err)
			require.Equal(t, tt.served, res.(loadedModel).Name)
		})
	}
}

func TestTrainFromHistoryRefusesBadInput(t *testing.T) {
	h := genEngineHistory(t, 10, 2, 1)
	decisions, events := h.write(t)
	out := filepath.Join(t.TempDir(), "m.json")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"events are required with a decision file", []string{"--decisions", decisions}, "--events is required"},
		{"an unknown target is named", []string{"--decisions", decisions, "--events", events, "--target", "churn"}, `unknown --target "churn"`},
		{"an unknown outcome is named", []string{"--decisions", decisions, "--events", events, "--outcome", "buy"}, `unknown outcome "buy"`},
		{"a bad window is named", []string{"--decisions", decisions, "--events", events, "--window", "week"}, `bad window "week"`},
		{"csv and history do not mix", []string{"--decisions", decisions, "--events", events, "--csv", "x.csv"}, "not both"},
		{"a history whose windows are all open is refused", []string{"--decisions", decisions, "--events", events}, "no labelled rows yet"},
		{"a history of one class is refused", []string{"--decisions", decisions, "--events", events, "--window", "1h"}, "one class only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runModelCmd(t, append([]string{"train", "--out", out}, tt.args...)...)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestTheEngineLogsTheVectorsOfTheDecisionMomentAndTrainingUsesThem(t *testing.T) {
	// Replay the events in time order into a fresh store and, at each
	// decision's instant, rebuild the vectors from only what had happened
	// by then: they must equal what the engine logged, and the training
	// rows must equal the logged vectors. The customers' later vectors
	// differ (keen customers redeem and buy right after their decisions),
	// so a row taken from after the decision would not match.
	h := genEngineHistory(t, 60, 12, 4)
	decisions, events := h.write(t)
	f, err := os.Open(decisions)
	require.NoError(t, err)
	decs, err := models.ReadDecisions(f)
	f.Close()
	require.NoError(t, err)
	sort.SliceStable(decs, func(a, b int) bool { return decs[a].TS < decs[b].TS })

	type stamped struct {
		ts int64
		ev features.Event
	}
	var evs []stamped
	var dopts features.DecodeOptions
	for _, l := range h.events {
		var ev features.Event
		require.Nil(t, features.DecodeEvent([]byte(l), 1<<60, &dopts, &ev))
		evs = append(evs, stamped{ev.TS, ev})
	}
	sort.SliceStable(evs, func(a, b int) bool { return evs[a].ts < evs[b].ts })
	store, err := features.NewStore(features.Options{})
	require.NoError(t, err)
	set, err := scenarios.LoadBuiltin(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	loc, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)

	next, checked, changed, strangers := 0, 0, 0, 0
	for i := range decs {
		d := &decs[i]
		if d.Customer == "" {
			strangers++
			continue
		}
		for next < len(evs) && evs[next].ts < d.TS {
			_, rej := store.Apply(&evs[next].ev)
			require.Nil(t, rej)
			next++
		}
		var v features.View
		require.True(t, store.ViewKey(features.Key(d.Customer), d.TS, &v), d.Customer)
		require.Equal(t, engine.CustomerVector(nil, &v, loc), d.CustomerFeatures, "customer vector of %s", d.DecisionID)
		for _, o := range d.Offers {
			off := set.Offer(o.OfferID)
			require.NotNil(t, off, o.OfferID)
			require.Equal(t, engine.FeatureVector(nil, &v, off, features.ChannelApp, loc), o.Features, "offer %s of %s", o.OfferID, d.DecisionID)
			checked++
		}
	}
	// The same customer and offer at the customer's next decision, time of
	// day aside: mostly different (keen customers redeem and buy after a
	// decision), so a row taken from a later record would not match.
	hour, weekday := engine.PropensitySchema.Index("hour"), engine.PropensitySchema.Index("weekday")
	last := map[string][]float64{}
	for i := range decs {
		for _, o := range decs[i].Offers {
			k := decs[i].Customer + "|" + o.OfferID
			if prev, ok := last[k]; ok {
				for j := range prev {
					if j != hour && j != weekday && prev[j] != o.Features[j] {
						changed++
						break
					}
				}
			}
			last[k] = o.Features
		}
	}
	t.Logf("%d offer vectors rebuilt; %d differ from the same customer's and offer's previous vector", checked, changed)
	require.Greater(t, checked, 200)
	require.Equal(t, 6, strangers, "strangers' decisions are logged without a customer")
	require.Greater(t, changed, checked/4, "later vectors differ, so the equality above is not vacuous")

	o, err := os.Open(events)
	require.NoError(t, err)
	defer o.Close()
	outs, err := models.ReadOutcomes(o)
	require.NoError(t, err)
	hd, err := outs.PropensityDataset(decs, models.HistoryOptions{Schema: engine.PropensitySchema, CouponCode: engine.CouponCode})
	require.NoError(t, err)
	require.NotEmpty(t, hd.Rows)
	for r, ref := range hd.Rows {
		require.Equal(t, decs[ref.Decision].Offers[ref.Offer].Features, hd.X[r])
	}
}

func TestTrainReadsTheHistoryFromKafkaLikeFromFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	broker, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	defer broker.Close()
	brokers := broker.Addrs()
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Topics(4)))

	h := genEngineHistory(t, 100, 16, 5)
	decisions, events := h.write(t)
	produce := func(topic string, lines []string, key func(string) []byte) {
		p, err := kafka.NewProducer(kafka.ProducerOptions{Brokers: brokers, Topic: topic})
		require.NoError(t, err)
		defer p.Close()
		msgs := make([]kafka.Message, len(lines))
		for i, l := range lines {
			msgs[i] = kafka.Message{Key: key(l), Value: []byte(l)}
		}
		require.NoError(t, p.Produce(ctx, msgs))
	}
	produce(kafka.TopicDecisions, h.decisions, func(l string) []byte {
		d, err := models.DecodeDecision([]byte(l))
		require.NoError(t, err)
		return []byte(d.Customer)
	})
	var dopts features.DecodeOptions
	produce(kafka.TopicEvents, h.events, func(l string) []byte {
		// The best identifier, as docs/events.md asks: a card-only event
		// lands on another partition than the member's.
		var ev features.Event
		require.Nil(t, features.DecodeEvent([]byte(l), 1<<60, &dopts, &ev))
		for ns := features.NSMember; ns < features.NumNamespaces; ns++ {
			if v := ev.IDs.Get(ns); v != "" {
				return []byte(features.MakeKey(ns, v))
			}
		}
		return nil
	})

	run := func(args ...string) map[string]any {
		out := filepath.Join(t.TempDir(), "m.json")
		stdout, stderr, err := runModelCmd(t, append([]string{"train", "--out", out, "--seed", "4"}, args...)...)
		require.NoError(t, err, stderr)
		return decodeOne(t, stdout)
	}
	fromFiles := run("--decisions", decisions, "--events", events)
	fromKafka := run("--decisions-from-kafka", strings.Join(brokers, ","))
	t.Logf("files: AUC %.3f; kafka: AUC %.3f", fromFiles["auc"], fromKafka["auc"])
	// The same history gives the same model whichever way it was read.
	for _, k := range []string{"positives", "rows_censored", "rows_train", "rows_test", "auc", "version"} {
		require.Equal(t, fromFiles[k], fromKafka[k], k)
	}
	require.Equal(t, fromFiles["history"].(map[string]any)["events"], fromKafka["history"].(map[string]any)["events"])
}

// TestModelsDocCommandsRunAsWritten runs every nbo command docs/models.md
// shows (in sh blocks, and inline in backquotes with flags), in a directory
// holding the files they name: the coupon example once lacked the --out
// that train requires. Commands reading Kafka are left out (no broker
// here); forests get --trees 5 appended (the last value of a flag wins) to
// keep the test quick, which leaves the command as written otherwise.
func TestModelsDocCommandsRunAsWritten(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "models.md"))
	require.NoError(t, err)
	var cmds []string
	inSh := false
	for line := range strings.Lines(string(doc)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "```sh":
			inSh = true
		case line == "```":
			inSh = false
		case inSh && strings.HasPrefix(line, "nbo "):
			cmd, _, _ := strings.Cut(line, "#")
			cmds = append(cmds, strings.TrimSpace(cmd))
		}
	}
	for _, m := range regexp.MustCompile("`(nbo [a-z]+ --[^`]*)`").FindAllStringSubmatch(string(doc), -1) {
		cmds = append(cmds, m[1])
	}
	require.GreaterOrEqual(t, len(cmds), 6, "the doc's commands were found")

	dir := t.TempDir()
	abs, err := filepath.Abs(filepath.Join("..", "..", "models"))
	require.NoError(t, err)
	require.NoError(t, os.Symlink(abs, filepath.Join(dir, "models")))
	coupon, err := os.ReadFile(filepath.Join(abs, "testdata", "coupon.csv"))
	require.NoError(t, err)
	writeModelTestFile(t, filepath.Join(dir, "offers.csv"), string(coupon))
	writeModelTestFile(t, filepath.Join(dir, "new.csv"), string(coupon))
	decisions, events := genEngineHistory(t, 200, 24, 1).write(t)
	for _, f := range []string{decisions, events} {
		require.NoError(t, os.Symlink(f, filepath.Join(dir, filepath.Base(f))))
	}
	t.Chdir(dir)
	for _, c := range cmds {
		if strings.Contains(c, "kafka") {
			continue
		}
		t.Run(c, func(t *testing.T) {
			args := strings.Fields(c)[1:]
			if args[0] == "train" {
				args = append(args, "--trees", "5")
			}
			_, stderr, err := runModelCmd(t, args...)
			require.NoError(t, err, "%s\n%s", c, stderr)
		})
	}
}
