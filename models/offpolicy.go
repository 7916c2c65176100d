package models

import (
	"errors"
	"fmt"
	"math"
)

// Logged is one logged decision for off-policy evaluation: the context the
// logging policy saw, the action it took, the probability it had of taking
// that action, and the reward that followed.
type Logged struct {
	Context    []float64
	Action     int
	Propensity float64
	Reward     float64
}

// TargetPolicy returns the probability that the candidate policy takes
// action in context.
type TargetPolicy func(context []float64, action int) float64

// RewardModel predicts the expected reward of action in context (for
// instance a propensity model's score times the offer's value).
type RewardModel func(context []float64, action int) float64

// Estimate is an off-policy estimate of a policy's mean reward per
// decision.
type Estimate struct {
	Value  float64 `json:"value"`
	StdErr float64 `json:"stderr"`
	N      int     `json:"n"`
	// Clipped counts the importance weights cut down to the clip.
	Clipped   int     `json:"clipped"`
	MaxWeight float64 `json:"max_weight"`
}

// ErrBadLog marks a logged record an estimator cannot use.
var ErrBadLog = errors.New("models: bad logged decision")

// IPS is the inverse-propensity estimate of the target policy's value:
// the mean of w·r with w = π(a|x)/μ(a|x), each weight clipped at clip
// (clip ≤ 0: no clipping). Clipping trades a downward bias for variance.
func IPS(logs []Logged, pi TargetPolicy, clip float64) (Estimate, error) {
	return estimate(logs, pi, clip, func(l Logged, w float64) float64 { return w * l.Reward })
}

// DoublyRobust is the doubly-robust estimate: the reward model's value of
// the target policy, Σa π(a|x)·q(x,a), corrected by the importance-weighted
// error of the model on the logged action, w·(r − q(x,a)). It is unbiased
// when either the propensities or the reward model are right, and its
// variance is lower than IPS's when the model is good. actions is the
// number of actions; weights are clipped as in IPS.
func DoublyRobust(logs []Logged, pi TargetPolicy, q RewardModel, actions int, clip float64) (Estimate, error) {
	if actions <= 0 {
		return Estimate{}, fmt.Errorf("models: doubly robust: %d actions", actions)
	}
	return estimate(logs, pi, clip, func(l Logged, w float64) float64 {
		dm := 0.0
		for a := 0; a < actions; a++ {
			if p := pi(l.Context, a); p != 0 {
				dm += p * q(l.Context, a)
			}
		}
		return dm + w*(l.Reward-q(l.Context, l.Action))
	})
}

// estimate averages term over the records and reports the standard error
// of the mean.
func estimate(logs []Logged, pi TargetPolicy, clip float64, term func(l Logged, w float64) float64) (Estimate, error) {
	if len(logs) == 0 {
		return Estimate{}, fmt.Errorf("%w: no records", ErrBadLog)
	}
	e := Estimate{N: len(logs)}
	var sum, sumSq float64
	for i, l := range logs {
		if !(l.Propensity > 0 && l.Propensity <= 1) {
			return Estimate{}, fmt.Errorf("%w: record %d: logged propensity %v is not in (0, 1]", ErrBadLog, i, l.Propensity)
		}
		if math.IsNaN(l.Reward) || math.IsInf(l.Reward, 0) {
			return Estimate{}, fmt.Errorf("%w: record %d: reward %v", ErrBadLog, i, l.Reward)
		}
		w := pi(l.Context, l.Action) / l.Propensity
		if clip > 0 && w > clip {
			w = clip
			e.Clipped++
		}
		e.MaxWeight = math.Max(e.MaxWeight, w)
		v := term(l, w)
		sum += v
		sumSq += v * v
	}
	n := float64(len(logs))
	e.Value = sum / n
	if len(logs) > 1 {
		variance := (sumSq - n*e.Value*e.Value) / (n - 1)
		e.StdErr = math.Sqrt(math.Max(variance, 0) / n)
	}
	return e, nil
}
