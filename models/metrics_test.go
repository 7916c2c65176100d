package models

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAUC(t *testing.T) {
	tests := []struct {
		name string
		p    []float64
		y    []bool
		want float64
	}{
		{"a perfect ranking scores one", []float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{"a reversed ranking scores zero", []float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		{"all scores tied give one half", []float64{0.5, 0.5, 0.5, 0.5}, []bool{false, true, false, true}, 0.5},
		{"a tie between a positive and a negative counts one half", []float64{0.1, 0.5, 0.5, 0.9}, []bool{false, false, true, true}, 0.875},
		{"one discordant pair of four", []float64{0.1, 0.6, 0.5, 0.9}, []bool{false, false, true, true}, 0.75},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.InDelta(t, tt.want, AUC(tt.p, tt.y), 1e-12)
		})
	}
	require.True(t, math.IsNaN(AUC([]float64{0.1, 0.2}, []bool{true, true})), "one class has no AUC")
}

func TestAccuracyAndLogLoss(t *testing.T) {
	p := []float64{0.9, 0.2, 0.5, 0}
	y := []bool{true, false, false, true}
	require.InDelta(t, 0.5, Accuracy(p, y), 1e-12, "0.5 counts as positive")
	want := -(math.Log(0.9) + math.Log(0.8) + math.Log(0.5) + math.Log(1e-6)) / 4
	require.InDelta(t, want, LogLoss(p, y), 1e-12, "a zero probability of the truth is clipped, not infinite")
}

func TestCalibrationCutsDecilesOfPrediction(t *testing.T) {
	var p []float64
	var y []bool
	for i := 0; i < 1000; i++ {
		q := float64(i) / 1000
		p = append(p, q)
		y = append(y, i%10 < int(q*10)) // observed rate equals the decile's lower edge
	}
	bins := Calibration(p, y)
	require.Len(t, bins, 10)
	for d, b := range bins {
		require.Equal(t, 100, b.Count)
		require.InDelta(t, float64(d)/10+0.0495, b.MeanPredicted, 1e-9)
		require.InDelta(t, float64(d)/10, b.Observed, 1e-9)
	}
}
