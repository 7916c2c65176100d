package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"nbo/models"
)

func init() {
	subcommands = append(subcommands, newEvaluateCmd)
}

// evalSummary is the one JSON object `nbo evaluate` prints.
type evalSummary struct {
	Target       string `json:"target"`
	Outcome      string `json:"outcome,omitempty"`
	Window       string `json:"window"`
	Decisions    int    `json:"decisions"`
	Rows         int    `json:"rows"`
	RowsCensored int    `json:"rows_censored"`
	Positives    int    `json:"positives"`
	// Latest is the evaluation period: the last share of labelled
	// decisions by time.
	Latest latestPeriod `json:"latest_period"`
	// Model is the given model on the latest period; Logged the
	// propensity the engine logged with each offer, as a baseline.
	Model  *fitReport          `json:"model,omitempty"`
	Logged *fitReport          `json:"logged_propensity,omitempty"`
	Policy *policyEval         `json:"policy,omitempty"`
	Stats  models.HistoryStats `json:"history"`
}

type latestPeriod struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Share float64   `json:"share"`
	// Decisions of the period, out of Labelled decisions with rows.
	Decisions int `json:"decisions"`
	Labelled  int `json:"labelled_decisions"`
	Rows      int `json:"rows"`
	Positives int `json:"positives"`
}

type fitReport struct {
	Version     string                  `json:"version,omitempty"`
	AUC         *float64                `json:"auc"`
	LogLoss     *float64                `json:"logloss"`
	MeanScore   *float64                `json:"mean_predicted"`
	Observed    *float64                `json:"observed_rate"`
	Calibration []models.CalibrationBin `json:"calibration"`
}

// policyEval is the off-policy estimate of the candidate policy against
// the logged one.
type policyEval struct {
	Candidate     string  `json:"candidate"`
	LoggedAction  string  `json:"logged_action"`
	Reward        string  `json:"reward"`
	LoggingPolicy string  `json:"logging_propensity"`
	Caveat        string  `json:"caveat"`
	Temperature   float64 `json:"temperature"`
	Clip          float64 `json:"clip"`
	Decisions     int     `json:"decisions"`
	// LoggedValue is the mean reward the logged policy got (on-policy).
	LoggedValue float64 `json:"logged_value"`
	// Agreement is the share of decisions where the candidate picks the
	// logged action.
	Agreement float64         `json:"agreement"`
	IPS       models.Estimate `json:"ips"`
	// SNIPS is the self-normalised IPS: Σ w·r / Σ w, which cancels a
	// uniform error in the logging propensities.
	SNIPS float64         `json:"snips"`
	DR    models.Estimate `json:"doubly_robust"`
	// Direct is the reward model's own value of the candidate (the DR
	// estimate without its correction).
	Direct float64 `json:"direct_method"`
	// SelfCheck estimates the logging policy itself (always its top
	// offer) with the approximated propensities: were they right, its IPS
	// would match LoggedValue. The gap measures the approximation.
	SelfCheck selfCheck `json:"self_check"`
	// EffectiveSampleSize is (Σw)²/Σw² over the candidate's (clipped)
	// importance weights: how many decisions IPS and SNIPS rest on.
	EffectiveSampleSize float64 `json:"effective_sample_size"`
	// MeanWeight is Σw/n: about 1 when the approximated propensities are
	// right and the candidate has support in the log.
	MeanWeight float64 `json:"mean_weight"`
	// Warning is set when MeanWeight is below lowSupport: the candidate
	// mostly picks offers the engine rarely showed.
	Warning string `json:"warning,omitempty"`
}

// lowSupport is the mean importance weight under which evaluate warns.
const lowSupport = 0.5

type selfCheck struct {
	IPS         float64 `json:"ips_of_logged_policy"`
	LoggedValue float64 `json:"logged_value"`
}

func finitePtr(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func fit(p []float64, y []bool) *fitReport {
	r := &fitReport{AUC: finitePtr(models.AUC(p, y)), LogLoss: finitePtr(models.LogLoss(p, y)), Calibration: models.Calibration(p, y)}
	if len(p) > 0 {
		var s, o float64
		for i := range p {
			s += p[i]
			if y[i] {
				o++
			}
		}
		r.MeanScore, r.Observed = finitePtr(s/float64(len(p))), finitePtr(o/float64(len(p)))
	}
	return r
}

func newEvaluateCmd() *cobra.Command {
	var (
		hist               historyFlags
		modelPath, reward  string
		latest, temp, clip float64
	)
	cmd := &cobra.Command{
		Use:   "evaluate",
		Short: "Replay the decision log: a model's AUC and calibration on the latest period, and an off-policy estimate of the policy it implies",
		Long: `Evaluate replays the engine's decision log (--decisions FILE, or
--decisions-from-kafka BROKERS) against the outcomes (--events FILE), labelled as
nbo train labels them (censored decisions left out), and prints one JSON object:

- the AUC, log loss and calibration deciles of --model (and of the propensity
  the engine logged with each offer, as a baseline) on the latest period: the
  last --latest share (default 20%) of the labelled decisions by time;
- for --target propensity, an off-policy estimate on the same period of the
  candidate policy "show the logged offer with the highest model score ×
  offer value" (the logged propensity when no --model is given), by inverse
  propensity (IPS) and doubly-robust (DR) estimators, next to the value the
  logged policy got. The logged action is the top offer of each decision and
  the reward its offer value if the outcome followed within the window
  (--reward value), or 1 (--reward response, and the candidate ranks by score
  alone).

The logging propensity is an approximation. The engine logs each offer's
response propensity (model or prior), its exploration sample and its total
score — not the probability that it would have chosen that offer. Evaluate
uses a softmax over the logged scores (score/--temperature) among the offers
of the decision. The engine actually ranks by score after a Thompson draw,
so the real choice probabilities are sharper or flatter than the softmax
depending on how much the draws move the scores; offers the engine never
shows in a context get no support, and IPS is then biased. Read the
estimates as a ranking of policies, and prefer DR when the reward model is
good. Weights are clipped at --clip.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !hist.enabled() {
				return errors.New("evaluate: --decisions FILE (or --decisions-from-kafka BROKERS) is required")
			}
			if !(latest > 0 && latest <= 1) {
				return fmt.Errorf("evaluate: --latest %v must be in (0, 1]", latest)
			}
			if !(temp > 0) {
				return fmt.Errorf("evaluate: --temperature %v must be positive", temp)
			}
			// Every flag is checked before the logs are read (which can
			// take minutes), so a typo fails at once.
			if !(clip >= 0) {
				return fmt.Errorf("evaluate: --clip %v must not be negative (0: no clipping)", clip)
			}
			if reward != "value" && reward != "response" {
				return fmt.Errorf("evaluate: unknown --reward %q (use value or response)", reward)
			}
			if hist.target != targetPropensity && hist.target != targetPurchase {
				return fmt.Errorf("evaluate: unknown --target %q (use propensity or purchase_15d)", hist.target)
			}
			var scorer *models.Scorer
			var art *models.Artifact
			if modelPath != "" {
				var err error
				if art, err = models.LoadArtifact(modelPath); err != nil {
					return fmt.Errorf("evaluate: %w", err)
				}
				if scorer, err = models.Compile(art); err != nil {
					return fmt.Errorf("evaluate: %w", err)
				}
			}
			opts, err := hist.options()
			if err != nil {
				return fmt.Errorf("evaluate: %w", err)
			}
			decs, outs, err := hist.read(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("evaluate: %w", err)
			}
			var hd *models.HistoryDataset
			sum := evalSummary{Target: hist.target, Window: hist.window}
			switch hist.target {
			case targetPropensity:
				hd, err = outs.PropensityDataset(decs, opts)
				sum.Outcome = opts.Outcome
			case targetPurchase:
				hd, err = outs.PurchaseDataset(decs, opts)
				sum.Window = hist.purchaseWindow
			default:
				err = fmt.Errorf("unknown --target %q (use propensity or purchase_15d)", hist.target)
			}
			if err != nil {
				return fmt.Errorf("evaluate: %w", err)
			}
			if art != nil && art.SchemaHash != hd.Schema.Hash() {
				return fmt.Errorf("evaluate: %w: the model was trained on feature schema %.12s…, the %s rows are %.12s…",
					models.ErrSchemaMismatch, art.SchemaHash, hist.target, hd.Schema.Hash())
			}
			sum.Decisions, sum.Rows, sum.RowsCensored, sum.Positives, sum.Stats = hd.Stats.Decisions, hd.Stats.Rows, hd.Stats.Censored, hd.Stats.Positives, hd.Stats
			if hd.Stats.Rows == 0 {
				return errors.New("evaluate: no labelled rows: every decision's window is still open, or the log is empty")
			}
			rows, nDec, nAll := latestRows(decs, hd, latest)
			first, last := decs[hd.Rows[rows[0]].Decision].TS, decs[hd.Rows[rows[len(rows)-1]].Decision].TS
			sum.Latest = latestPeriod{From: time.UnixMilli(first).UTC(), To: time.UnixMilli(last).UTC(), Share: latest, Decisions: nDec, Labelled: nAll, Rows: len(rows)}
			y := make([]bool, len(rows))
			for i, r := range rows {
				y[i] = hd.Y[r]
				if y[i] {
					sum.Latest.Positives++
				}
			}
			if scorer != nil {
				p := make([]float64, len(rows))
				for i, r := range rows {
					p[i] = scorer.Propensity(hd.X[r])
				}
				sum.Model = fit(p, y)
				sum.Model.Version = art.Version
			}
			if hist.target == targetPropensity {
				p := make([]float64, len(rows))
				for i, r := range rows {
					ref := hd.Rows[r]
					p[i] = decs[ref.Decision].Offers[ref.Offer].Propensity
				}
				sum.Logged = fit(p, y)
				pe, err := evaluatePolicy(decs, hd, rows, scorer, temp, clip, reward)
				if err != nil {
					return fmt.Errorf("evaluate: %w", err)
				}
				sum.Policy = pe
				if pe.Warning != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", pe.Warning)
				}
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(sum)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&hist.target, "target", targetPropensity, "propensity or purchase_15d")
	fl.StringVar(&modelPath, "model", "", "model artifact to evaluate (default: only the logged propensities)")
	fl.Float64Var(&latest, "latest", 0.2, "share of the labelled decisions, the latest by time, to evaluate on")
	fl.Float64Var(&temp, "temperature", 1, "temperature of the softmax over logged scores that stands in for the logging policy's choice probabilities")
	fl.StringVar(&reward, "reward", "value", "what an outcome is worth: value (the offer's value; offers worth 0 earn nothing) or response (1)")
	fl.Float64Var(&clip, "clip", 20, "clip importance weights at this value (0: no clipping)")
	hist.register(cmd)
	return cmd
}

// latestRows returns the dataset rows of the last share of labelled
// decisions by time, in time order, with the number of decisions taken
// and of decisions with rows.
func latestRows(decs []models.LoggedDecision, hd *models.HistoryDataset, share float64) (rows []int, taken, all int) {
	idx := make([]int, len(hd.Rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return decs[hd.Rows[idx[a]].Decision].TS < decs[hd.Rows[idx[b]].Decision].TS
	})
	// Cut at a decision boundary: all rows of a decision stay together.
	var order []int // distinct decisions in time order
	for _, r := range idx {
		if d := hd.Rows[r].Decision; len(order) == 0 || order[len(order)-1] != d {
			order = append(order, d)
		}
	}
	keep := max(1, int(math.Round(share*float64(len(order)))))
	from := map[int]bool{}
	for _, d := range order[len(order)-keep:] {
		from[d] = true
	}
	for _, r := range idx {
		if from[hd.Rows[r].Decision] {
			rows = append(rows, r)
		}
	}
	return rows, keep, len(order)
}

// evaluatePolicy estimates the value of "show the logged offer with the
// highest score × value" against the logged top offer, on the decisions
// of rows whose offers all have rows.
func evaluatePolicy(decs []models.LoggedDecision, hd *models.HistoryDataset, rows []int, scorer *models.Scorer, temp, clip float64, reward string) (*policyEval, error) {
	valueAt := -1 // reward "response": every outcome is worth 1
	if reward == "value" {
		valueAt = hd.Schema.Index("offer_value")
	}
	byDec := map[int]map[int]int{} // decision → offer → row
	for _, r := range rows {
		ref := hd.Rows[r]
		if byDec[ref.Decision] == nil {
			byDec[ref.Decision] = map[int]int{}
		}
		byDec[ref.Decision][ref.Offer] = r
	}
	ids := make([]int, 0, len(byDec))
	for d, m := range byDec {
		if len(m) == len(decs[d].Offers) && decs[d].Group != "holdout" {
			ids = append(ids, d)
		}
	}
	sort.Ints(ids)
	if len(ids) == 0 {
		return nil, errors.New("no decision of the latest period has rows for all its offers")
	}
	// Per decision: q(a) = score × value for each offer, the candidate's
	// choice, and the softmax logging probabilities.
	type ctx struct {
		q      []float64
		choice int
	}
	ctxs := make([]ctx, len(ids))
	logs := make([]models.Logged, len(ids))
	actions, agree := 1, 0
	pe := &policyEval{Temperature: temp, Clip: clip, Decisions: len(ids)}
	for k, d := range ids {
		offs := decs[d].Offers
		actions = max(actions, len(offs))
		c := ctx{q: make([]float64, len(offs))}
		maxScore := math.Inf(-1)
		for _, o := range offs {
			maxScore = math.Max(maxScore, o.Score)
		}
		var z float64
		for j, o := range offs {
			z += math.Exp((o.Score - maxScore) / temp)
			x := hd.X[byDec[d][j]]
			s := o.Propensity
			if scorer != nil {
				s = scorer.Propensity(x)
			}
			v := 1.0
			if valueAt >= 0 && !math.IsNaN(x[valueAt]) {
				v = x[valueAt]
			}
			c.q[j] = s * v
			if c.q[j] > c.q[c.choice] {
				c.choice = j
			}
		}
		if c.choice == 0 {
			agree++
		}
		ctxs[k] = c
		r0 := hd.X[byDec[d][0]]
		r := 0.0
		if hd.Y[byDec[d][0]] {
			r = 1
			if valueAt >= 0 && !math.IsNaN(r0[valueAt]) {
				r = r0[valueAt]
			}
		}
		pe.LoggedValue += r
		logs[k] = models.Logged{Context: []float64{float64(k)}, Action: 0, Propensity: math.Max(math.Exp((offs[0].Score-maxScore)/temp)/z, 1e-12), Reward: r}
	}
	pe.LoggedValue /= float64(len(ids))
	pe.Agreement = float64(agree) / float64(len(ids))
	pi := func(x []float64, a int) float64 {
		if ctxs[int(x[0])].choice == a {
			return 1
		}
		return 0
	}
	q := func(x []float64, a int) float64 {
		c := ctxs[int(x[0])]
		if a < len(c.q) {
			return c.q[a]
		}
		return 0
	}
	var err error
	if pe.IPS, err = models.IPS(logs, pi, clip); err != nil {
		return nil, err
	}
	if pe.DR, err = models.DoublyRobust(logs, pi, q, actions, clip); err != nil {
		return nil, err
	}
	var sw, swr, sww float64
	for k := range ctxs {
		pe.Direct += ctxs[k].q[ctxs[k].choice]
		if ctxs[k].choice == 0 {
			w := 1 / logs[k].Propensity
			if clip > 0 {
				w = math.Min(w, clip)
			}
			sw += w
			sww += w * w
			swr += w * logs[k].Reward
		}
		pe.SelfCheck.IPS += logs[k].Reward / logs[k].Propensity
	}
	if sw > 0 {
		pe.SNIPS = swr / sw
		pe.EffectiveSampleSize = sw * sw / sww
	}
	pe.MeanWeight = sw / float64(len(ctxs))
	if pe.MeanWeight < lowSupport {
		pe.Warning = fmt.Sprintf("little support: the mean importance weight is %.3g (about 1 when the candidate's offers were shown often enough); the candidate agrees with the logged offer in %.0f%% of %d decisions and the weighted estimates rest on about %.0f of them; read ips, snips and doubly_robust with care, or try another --temperature (see docs/models.md, reading the off-policy estimate)",
			pe.MeanWeight, 100*pe.Agreement, len(ctxs), pe.EffectiveSampleSize)
	}
	pe.SelfCheck.IPS /= float64(len(ctxs))
	pe.SelfCheck.LoggedValue = pe.LoggedValue
	pe.Direct /= float64(len(ctxs))
	scoreName := "logged propensity"
	if scorer != nil {
		scoreName = "model score"
	}
	pe.Candidate = "show the logged offer with the highest " + scoreName
	if valueAt >= 0 {
		pe.Candidate += " × offer value"
	}
	pe.LoggedAction = "the top (first) offer of each logged decision"
	pe.Reward = "1 if the outcome followed within the window, else 0"
	if valueAt >= 0 {
		pe.Reward = "offer value (offer_value feature, currency units) if the outcome followed within the window, else 0"
	}
	pe.LoggingPolicy = fmt.Sprintf("approximated: softmax of the logged total scores / %g over the decision's logged offers", temp)
	pe.Caveat = "the engine logs each offer's response propensity, exploration sample and score, not the probability it chose the offer; the softmax stands in for that probability, so IPS and DR are only as right as that approximation, and offers never shown in a context have no support"
	return pe, nil
}
