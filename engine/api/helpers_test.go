package api

import (
	"encoding/hex"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }

// counterValue reads a counter without prometheus/testutil (which needs a
// module this repository does not pin).
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
