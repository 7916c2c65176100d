package engine

import (
	"fmt"

	"github.com/cespare/xxhash/v2"

	"nbo/features"
)

// Holdout assigns customers to a stable control group by hashing their
// canonical ID with a salt: the same customer is always in the same group
// for one salt, and a new salt draws a fresh, independent control group
// (for a new measurement period) without touching the feature store's own
// experiment buckets (View.Group). The zero value is valid after
// EnsureDefaults: a 5% holdout with the empty salt.
//
// Assignment follows the canonical ID, so an identity merge can move a
// customer into the other group; that is the price of one ID per person
// and is recorded per decision (the group is logged with every decision).
type Holdout struct {
	// Share is the fraction of customers held out, 0..1. Default: 0.05.
	// A negative share means no holdout at all.
	Share float64
	// Salt separates independent holdouts. Default: "".
	Salt string
}

// EnsureDefaults fills unset fields with their defaults.
func (h *Holdout) EnsureDefaults() {
	if h.Share == 0 {
		h.Share = 0.05
	}
}

// Validate reports a share above 1.
func (h *Holdout) Validate() error {
	if h.Share > 1 {
		return fmt.Errorf("engine: holdout share %v is above 1; use a fraction such as 0.05", h.Share)
	}
	return nil
}

// InHoldout reports whether the customer is in the control group. It does
// not allocate.
func (h *Holdout) InHoldout(customer features.Key) bool {
	if h.Share <= 0 || customer == "" {
		return false
	}
	if h.Share >= 1 {
		return true
	}
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(h.Salt)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(string(customer))
	// The top 53 bits as a uniform fraction in [0, 1).
	return float64(d.Sum64()>>11)/(1<<53) < h.Share
}

// Group returns GroupHoldout or GroupTreatment (types.go) for the customer.
func (h *Holdout) Group(customer features.Key) string {
	if h.InHoldout(customer) {
		return GroupHoldout
	}
	return GroupTreatment
}
