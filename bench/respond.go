package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"nbo/features"
)

// Delivery is one offer put in front of a simulated customer.
type Delivery struct {
	// Customer is the customer's index (see CustomerIndex).
	Customer int
	// OfferID is the offer's catalog ID; required.
	OfferID string
	// Type is the offer's type; it selects the hidden probability.
	Type OfferType
	// Channel is where the offer was shown or sent.
	Channel features.Channel
	// DecisionID and CouponCode close the loop; feedback events carry
	// them (an in-store redemption carries the coupon code when there is
	// one, else the decision ID).
	DecisionID string
	CouponCode string
	// Store is where an in-store redemption happens. Default: the
	// customer's home store.
	Store string
	// At is when the offer was delivered, Unix ms.
	At int64
	// Purpose is the consent purpose the offer requires on Channel (the
	// catalog's requires_consent). Default: marketing.
	Purpose features.Purpose
	// NoConsent marks an offer that requires no consent (a transactional
	// service offer): delivering it never violates consent.
	NoConsent bool
}

// Outcome is how the customer responded.
type Outcome struct {
	Impression bool // the customer saw the offer
	Click      bool // and opened it
	Redeem     bool // and redeemed it, with a purchase
	// InStore is true when the redemption happened at a store till.
	InStore bool
	// ConsentViolation is true when the offer requires a consent purpose
	// (Delivery.Purpose, unless NoConsent) that the customer had not
	// granted on the delivery channel (as their consent events said, or
	// ever, for members who have not joined yet and anonymous visitors who
	// declined): a policy that delivers such an offer breaks the rules,
	// whatever the customer then does.
	ConsentViolation bool
	// Revenue is the purchase that came with the redemption, minor units.
	Revenue int64
	// Events are the feedback events, in time order: offer_impression,
	// offer_click, then coupon_redeem with its purchase (order or
	// pos_purchase). Inject them into the stream or send them to a sink.
	Events []features.Event
}

// visibility is the chance an offer delivered on a channel is seen at all:
// a banner in the app is, a push or an SMS often is not.
func visibility(ch features.Channel) float64 {
	switch ch {
	case features.ChannelPush:
		return 0.6
	case features.ChannelSMS:
		return 0.45
	case features.ChannelSocial:
		return 0.5
	}
	return 1
}

// clickBoost scales the redemption probability into the click
// probability: many more people open an offer than redeem it.
const clickBoost = 3

// Respond samples the customer's response to a delivered offer from the
// hidden probabilities, drawing from rng (the caller owns it; Respond is
// safe for concurrent use with distinct rngs):
//
//	P(impression)          = visibility(channel)
//	P(click | impression)  = min(1, 3·p)
//	P(redeem | click)      = p / P(click | impression)
//
// so P(redeem | impression) = TrueProbability(customer, type, channel) = p.
// The returned events carry the offer, decision and coupon IDs; their
// times are after d.At (a redemption may come days later, at a store for
// store-fulfilled offers and store-only customers).
func (s *Simulator) Respond(d Delivery, rng *rand.Rand) (Outcome, error) {
	if d.Customer < 0 || d.Customer >= s.opts.Customers {
		return Outcome{}, fmt.Errorf("responding to offer %q: customer %d out of range 0..%d", d.OfferID, d.Customer, s.opts.Customers-1)
	}
	if d.OfferID == "" || d.Type >= NumOfferTypes {
		return Outcome{}, fmt.Errorf("responding to an offer for customer %d: offer ID and a known offer type are required", d.Customer)
	}
	c := s.customer(d.Customer)
	p := c.trueProbability(d.Type, d.Channel, s.taste(d.Customer, d.Type))
	var out Outcome
	out.ConsentViolation = !d.NoConsent && !c.consented(d.Purpose, d.Channel)
	if rng.Float64() >= visibility(d.Channel) {
		return out, nil
	}
	out.Impression = true
	ids := s.CustomerIDs(d.Customer)
	// Event IDs are unique per producer (docs/events.md). The customer's
	// index keeps two customers' responses apart whatever rng the caller
	// hands in — a caller may replay a stream (a restarted demo) or seed
	// one per call — and the draw keeps one customer's responses apart.
	base := "rsp" + s.tag + "-" + strconv.FormatInt(int64(d.Customer), 36) + "-" + strconv.FormatUint(rng.Uint64(), 36) + "-"
	t := d.At
	add := func(typ features.EventType, ch features.Channel, dt int64) *features.Event {
		t += dt
		out.Events = append(out.Events, features.Event{
			ID: base + strconv.Itoa(len(out.Events)), TS: t, Type: typ, Channel: ch, IDs: ids,
			OfferID: d.OfferID, DecisionID: d.DecisionID,
		})
		return &out.Events[len(out.Events)-1]
	}
	// Impressions happen where the offer is shown; a push or SMS is read
	// in the app.
	showCh := d.Channel
	if showCh == features.ChannelPush || showCh == features.ChannelSMS {
		showCh = features.ChannelApp
	}
	add(features.OfferImpression, showCh, int64(rng.IntN(30))*second)
	pc := math.Min(1, clickBoost*p)
	if rng.Float64() >= pc {
		return out, nil
	}
	out.Click = true
	if d.Channel == features.ChannelPush {
		add(features.PushOpen, features.ChannelApp, int64(1+rng.IntN(20))*second)
	}
	add(features.OfferClick, showCh, int64(2+rng.IntN(60))*second)
	if rng.Float64() >= p/pc {
		return out, nil
	}
	out.Redeem = true
	sku := s.basketItem(&c, rng)
	out.Revenue = sku.Price
	out.InStore = d.Type.inStore() || c.Habit == StoreOnly ||
		(c.Habit == Omnichannel && rng.Float64() < 0.4) ||
		d.Channel == features.ChannelTablet || d.Channel == features.ChannelStore || d.Channel == features.ChannelPOS
	if out.InStore {
		store := d.Store
		if store == "" {
			store = s.stores[c.HomeStore].ID
		}
		dt := int64(2+rng.IntN(72)) * hour
		r := add(features.CouponRedeem, features.ChannelPOS, dt)
		r.IDs = features.IDs{Device: ids.Device}
		if ids.Member != "" {
			r.IDs = features.IDs{Member: ids.Member}
		}
		r.Store, r.CouponCode, r.Amount = store, d.CouponCode, sku.Price
		if r.CouponCode != "" {
			// At the till the coupon code is what is scanned.
			r.DecisionID = ""
		}
		ids := r.IDs
		p := add(features.PosPurchase, features.ChannelPOS, second)
		p.IDs, p.Store, p.SKU, p.Category, p.Amount, p.Quantity = ids, store, sku.ID, sku.Category, sku.Price, 1
		p.OfferID, p.DecisionID = "", ""
		return out, nil
	}
	r := add(features.CouponRedeem, features.ChannelApp, int64(1+rng.IntN(120))*minute)
	r.CouponCode, r.Amount = d.CouponCode, sku.Price
	o := add(features.Order, features.ChannelApp, second)
	o.SKU, o.Category, o.Amount, o.Quantity = sku.ID, sku.Category, sku.Price, 1
	o.OfferID, o.DecisionID = "", ""
	return out, nil
}

// consented reports whether the customer granted purpose p on channel ch:
// marketing on the channels they listed; personalization and location
// everywhere or nowhere (their consent events name no channels).
func (c *Customer) consented(p features.Purpose, ch features.Channel) bool {
	switch p {
	case features.PurposeMarketing:
		return c.Marketing && c.MarketingChannels.Has(ch)
	case features.PurposePersonalization:
		return c.Personalization
	case features.PurposeLocation:
		return c.Location
	}
	return false
}

// basketItem is what a redeeming customer buys: an item from a favourite
// category.
func (s *Simulator) basketItem(c *Customer, rng *rand.Rand) *SKU {
	items := s.catalog[c.Favourites[rng.IntN(len(c.Favourites))]]
	return &items[rng.IntN(len(items))]
}
