package engine

import (
	"time"

	"nbo/features"
	"nbo/scenarios"
)

// OpenOffer is an offer served to a customer that they can still redeem:
// not redeemed, not expired, and still in the catalog.
type OpenOffer struct {
	OfferID    string `json:"offer_id"`
	Type       string `json:"type"`
	Title      string `json:"title"` // in the request's locale
	Text       string `json:"text"`
	Value      int64  `json:"value"` // minor units, as served
	CouponCode string `json:"coupon_code"`
	// DecisionID is the decision (or push trigger: "dt_…") that served it.
	DecisionID string `json:"decision_id"`
	Scenario   string `json:"scenario,omitempty"`
	// Channel is where it was served (app, push, tablet, …).
	Channel  string    `json:"channel"`
	ServedAt time.Time `json:"served_at"`
	// Expiry is when it stops being redeemable: worked out again from
	// when it was served and the offer's terms now (the reservation time
	// and its end date), which are the terms it was served with unless
	// the catalog changed them since.
	Expiry time.Time `json:"expiry"`
	// FulfilmentStore is where an in-store offer is redeemed.
	FulfilmentStore string `json:"fulfilment_store,omitempty"`
}

// OpenOffers is the answer of GET /v1/customers/{key}/offers.
type OpenOffers struct {
	Customer string      `json:"customer"` // canonical key
	Offers   []OpenOffer `json:"offers"`   // newest first
}

// OpenOffers lists the offers served to the customer holding identifier
// key that they can still redeem at now, newest first, titles in locale:
// what a store associate can remind them of (a decision served again
// would be in cooldown and show nothing new). It reports false for an
// unknown customer.
//
// It reads the attribution records (Stats), one per offer served, which
// keep each customer's newest StatsOptions.MaxTouches (default 32) and at
// most StatsOptions.MaxDecisions over all customers: on a busy server an
// old offer may be missing although still valid. Without Stats the list
// is always empty.
func (e *Engine) OpenOffers(key features.Key, locale Locale, now int64) (OpenOffers, bool) {
	customer, ok := e.opts.Store.ResolveKey(key)
	if !ok {
		return OpenOffers{}, false
	}
	out := OpenOffers{Customer: string(customer), Offers: []OpenOffer{}}
	if e.opts.Stats == nil || e.opts.Scenarios == nil {
		return out, true
	}
	if e.records != nil {
		e.records.flush() // decisions served a moment ago are listed too
	}
	set := e.opts.Scenarios()
	loc := localeIndex(locale)
	served := e.opts.Stats.Served(customer, nil)
	// Newest decision first, each decision's offers in the order it
	// served them (its records are adjacent, in that order).
	for end := len(served); end > 0; {
		start := end - 1
		for start > 0 && served[start-1].DecisionID == served[end-1].DecisionID {
			start--
		}
		for i := start; i < end; i++ {
			if oo, ok := e.openOffer(set, &served[i], loc, now); ok {
				out.Offers = append(out.Offers, oo)
			}
		}
		end = start
	}
	return out, true
}

// openOffer is the served offer s as an OpenOffer, if it is still open at
// now.
func (e *Engine) openOffer(set *scenarios.Set, s *ServedOffer, loc scenarios.Locale, now int64) (OpenOffer, bool) {
	var o *scenarios.Offer
	if set != nil {
		o = set.Offer(s.OfferID)
	}
	if s.Redeemed || o == nil {
		return OpenOffer{}, false
	}
	expiry := offerExpiry(s.TS, e.reservationTTL(o, s.TS))
	if expiry.UnixMilli() <= now {
		return OpenOffer{}, false
	}
	oo := OpenOffer{
		OfferID: o.ID, Type: o.Type.String(), Title: o.Title[loc], Text: o.Text[loc], Value: s.Value,
		CouponCode: CouponCode(s.DecisionID, s.OfferID), DecisionID: s.DecisionID, Scenario: s.Scenario,
		Channel: s.Channel.String(), ServedAt: time.UnixMilli(s.TS).UTC(), Expiry: expiry,
		FulfilmentStore: fulfilmentStore(o, s.Store),
	}
	return oo, true
}
