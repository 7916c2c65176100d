package engine

import (
	"time"

	"nbo/features"
)

// Locale is the language an offer's title and text are returned in.
type Locale string

const (
	LocaleZhCN Locale = "zh-CN"
	LocaleEn   Locale = "en"
)

// DefaultLocale is the locale of a request that names none.
const DefaultLocale = LocaleZhCN

// DefaultLimit is the number of offers a request that names no limit gets.
const DefaultLimit = 3

// MaxLimit is the largest limit a request may ask for.
const MaxLimit = 20

// Experiment groups a decision can fall in.
const (
	GroupTreatment = "treatment"
	GroupHoldout   = "holdout"
)

// DecideRequest asks for the next best offers for one customer, on one
// channel, at one placement and moment. The HTTP layer builds it from
// POST /v1/decide or GET /v1/offers after validating every field, so the
// pipeline may trust it: IDs is non-empty, Channel is known, Limit is in
// [1, MaxLimit], Locale is one of the two locales.
type DecideRequest struct {
	// IDs are the customer's identifiers as in events ({"member": "M1"}).
	// Phone and email are in the form the event decoder stores them.
	IDs features.IDs `json:"ids"`
	// Channel is where the offers will be shown.
	Channel features.Channel `json:"channel"`
	// Placement names the slot ("home_banner", "cart_page"). May be empty.
	Placement string `json:"placement,omitempty"`
	// Store is the store the customer is in or near. May be empty.
	Store string `json:"store,omitempty"`
	// Limit is the number of offers wanted. Default: DefaultLimit.
	Limit int `json:"limit"`
	// Locale of titles and texts. Default: DefaultLocale.
	Locale Locale `json:"locale"`
	// Context holds request attributes scenarios may read (small).
	Context map[string]string `json:"context,omitempty"`
	// Now, when set, is the moment to decide at (replays and tests). The
	// HTTP layer accepts it only from keys with the admin scope; nil
	// means the wall clock.
	Now *time.Time `json:"now,omitempty"`
}

// Decision is the answer to a DecideRequest.
type Decision struct {
	// DecisionID identifies the decision; outcomes carry it back.
	DecisionID string `json:"decision_id"`
	// Customer is the canonical customer key ("member:M1"); empty for a
	// customer the engine has never seen.
	Customer string `json:"customer,omitempty"`
	// Offers are the chosen offers, best first (may be empty).
	Offers []OfferResult `json:"offers"`
	// Group is the experiment group: GroupTreatment or GroupHoldout.
	Group string `json:"group"`
	// ModelVersion names the propensity model used ("" for priors).
	ModelVersion string `json:"model_version,omitempty"`
	// NewestEventTS is the event time of the newest event behind the
	// decision (freshness); zero when the customer has no events.
	NewestEventTS time.Time `json:"newest_event_ts,omitzero"`
	// Fallback reports that the placement's fallback offers were served
	// (unknown customer, or nothing eligible fired).
	Fallback bool `json:"fallback"`
	// EmptyReason says why no offer was served, when none was: a
	// contact-policy code (cap_day, cap_week, quiet_hours, cooldown,
	// suppressed, redemption_limit: the first the offers met), budget, or
	// not_eligible. Empty when the decision serves an offer.
	EmptyReason string `json:"empty_reason,omitempty"`

	// segment is the bandit segment the decision was made in; its
	// outcomes are credited there (DecisionRecord.Segment).
	segment string
}

// OfferResult is one offer in a Decision.
type OfferResult struct {
	OfferID string `json:"offer_id"`
	// Type is the offer type (coupon, experience, service, product, …).
	Type string `json:"type"`
	// Title and Text are in the request's locale.
	Title string `json:"title"`
	Text  string `json:"text"`
	// Value is the offer's value in minor currency units.
	Value int64 `json:"value"`
	// CouponCode is the code a store till scans to redeem the offer; a
	// coupon_redeem event carrying it is attributed to this decision.
	CouponCode string `json:"coupon_code"`
	// Expiry is when the offer stops being redeemable (zero: none).
	Expiry time.Time `json:"expiry,omitzero"`
	// FulfilmentStore is where an in-store offer is fulfilled.
	FulfilmentStore string `json:"fulfilment_store,omitempty"`
	// Scenario is the scenario that proposed the offer ("" for fallback).
	Scenario string `json:"scenario,omitempty"`
	// ReasonCode is a stable code for why; Reason says it in plain language.
	ReasonCode string `json:"reason_code,omitempty"`
	Reason     string `json:"reason"`
	// Score are the parts of the offer's priority.
	Score ScoreParts `json:"score"`

	// store is the store the offer was served for
	// (scenarios.FulfilmentStore at decision time, online offers too):
	// its budget reservation and attribution record are under it. The
	// decision log keeps it so a replay reserves under the same store
	// (servedLog.ReservedStore); clients see FulfilmentStore only.
	store string
}

// ScoreParts explain a score: Total = (Propensity + Explore) ×
// ContextWeight × Value × Lever. Propensity is the model's (or the offer's
// prior) response probability, Explore the difference from it of the rate
// the bandit drew (or, for candidates not drawn, of the offer's learnt
// rate), Value the expected net revenue of a response in yuan (the
// customer's average order, or ¥200, less the offer's cost), Lever the
// scenario's priority boost, 1 + priority/100 (for untargeted offers 0.5,
// rising towards 1 as the offer's outcomes accumulate).
type ScoreParts struct {
	Propensity    float64 `json:"propensity"`
	ContextWeight float64 `json:"context_weight"`
	Value         float64 `json:"value"`
	Lever         float64 `json:"lever"`
	Explore       float64 `json:"explore"`
	Total         float64 `json:"total"`
}
