package models

import (
	"math"
	"sort"
)

// AUC returns the area under the ROC curve of scores p for labels y:
// the probability that a random positive outranks a random negative,
// ties counting one half (the Mann-Whitney rank statistic with mid-ranks).
// It is NaN when either class is absent.
func AUC(p []float64, y []bool) float64 {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	var nPos, nNeg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && p[idx[j]] == p[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // mean of 1-based ranks i+1..j
		for k := i; k < j; k++ {
			if y[idx[k]] {
				rankSum += mid
				nPos++
			} else {
				nNeg++
			}
		}
		i = j
	}
	if nPos == 0 || nNeg == 0 {
		return math.NaN()
	}
	return (rankSum - nPos*(nPos+1)/2) / (nPos * nNeg)
}

// Accuracy is the share of rows whose label equals p >= 0.5.
func Accuracy(p []float64, y []bool) float64 {
	if len(p) == 0 {
		return math.NaN()
	}
	ok := 0
	for i := range p {
		if (p[i] >= 0.5) == y[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(p))
}

// logLossClip keeps a 0 or 1 probability from costing infinity.
const logLossClip = 1e-6

// LogLoss is the mean negative log-likelihood, probabilities clipped to
// [1e-6, 1-1e-6].
func LogLoss(p []float64, y []bool) float64 {
	if len(p) == 0 {
		return math.NaN()
	}
	s := 0.0
	for i := range p {
		q := math.Min(math.Max(p[i], logLossClip), 1-logLossClip)
		if y[i] {
			s -= math.Log(q)
		} else {
			s -= math.Log(1 - q)
		}
	}
	return s / float64(len(p))
}

// Calibration sorts rows by prediction and cuts them into ten bins of
// (nearly) equal size, reporting per bin the mean prediction and the
// observed positive rate. Rows with equal predictions may fall into
// neighbouring bins.
func Calibration(p []float64, y []bool) []CalibrationBin {
	n := len(p)
	if n == 0 {
		return nil
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	var bins []CalibrationBin
	for d := 0; d < 10; d++ {
		lo, hi := d*n/10, (d+1)*n/10
		if lo == hi {
			continue
		}
		b := CalibrationBin{Lo: p[idx[lo]], Hi: p[idx[hi-1]], Count: hi - lo}
		for _, i := range idx[lo:hi] {
			b.MeanPredicted += p[i]
			if y[i] {
				b.Observed++
			}
		}
		b.MeanPredicted /= float64(b.Count)
		b.Observed /= float64(b.Count)
		bins = append(bins, b)
	}
	return bins
}

// Evaluate computes all holdout metrics of predictions p.
func Evaluate(p []float64, y []bool) Metrics {
	return Metrics{
		AUC:         AUC(p, y),
		Accuracy:    Accuracy(p, y),
		LogLoss:     LogLoss(p, y),
		RowsTest:    len(p),
		Calibration: Calibration(p, y),
	}
}
