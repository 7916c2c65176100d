package scenarios

import (
	"slices"
	"time"

	"nbo/features"
)

// Locale is a language of titles, texts and reasons. Both are required on
// every offer and scenario.
type Locale uint8

const (
	ZhCN Locale = iota // zh-CN, simplified Chinese
	En                 // en, English
	NumLocales
)

var localeNames = [NumLocales]string{"zh-CN", "en"}

func (l Locale) String() string {
	if l < NumLocales {
		return localeNames[l]
	}
	return "unknown"
}

// ParseLocale resolves "zh-CN" or "en" (also "zh" and "en-US" style tags,
// matched on the language).
func ParseLocale(s string) (Locale, bool) {
	switch s {
	case "zh-CN", "zh", "zh-Hans", "zh_CN":
		return ZhCN, true
	case "en", "en-US", "en-GB", "en_US":
		return En, true
	}
	return 0, false
}

// OfferType is what an offer gives the customer.
type OfferType uint8

const (
	Coupon OfferType = iota
	Experience
	ServiceBooking
	Product
	VIPService
	Bundle
	Points
	NumOfferTypes // how many types there are
)

var offerTypeNames = [NumOfferTypes]string{"coupon", "experience", "service_booking", "product", "vip_service", "bundle", "points"}

func (t OfferType) String() string {
	if t < NumOfferTypes {
		return offerTypeNames[t]
	}
	return "unknown"
}

// Fulfilment is where an offer is redeemed.
type Fulfilment uint8

const (
	Either  Fulfilment = iota // online or in a store
	Online                    // online only
	InStore                   // in a store only
	numFulfilments
)

var fulfilmentNames = [numFulfilments]string{"either", "online", "in_store"}

func (f Fulfilment) String() string {
	if f < numFulfilments {
		return fulfilmentNames[f]
	}
	return "unknown"
}

// Phase is a campaign phase of the marketing calendar.
type Phase uint8

const (
	NoPhase  Phase = iota // outside every declared phase, or none declared
	Preheat               // warm-up: teasers, reservations
	Burst                 // the main event
	LongTail              // after the peak
	NumPhases
)

var phaseNames = [NumPhases]string{"none", "preheat", "burst", "long_tail"}

func (p Phase) String() string {
	if p < NumPhases {
		return phaseNames[p]
	}
	return "unknown"
}

// Span is a half-open interval of Unix milliseconds [From, To). A zero
// bound is open.
type Span struct{ From, To int64 }

// Contains reports whether t is inside the span.
func (s Span) Contains(t int64) bool { return (s.From == 0 || t >= s.From) && (s.To == 0 || t < s.To) }

// Budget limits the total cost an offer may spend, in minor units of Cost.
// Zero is unlimited. The engine keeps the counters.
type Budget struct {
	Total    int64
	PerStore int64
}

// ServedChannels are the channels an offer can be shown on: those
// /v1/decide takes (engine/api's offer channels: web, app, miniapp, pos,
// tablet, push and sms) and push, on which event triggers send. The other
// channels (store, social) are only where events happen: an offer or a
// scenario naming one could never be served there, so loading refuses it.
const ServedChannels features.ChannelMask = 1<<features.ChannelWeb | 1<<features.ChannelApp | 1<<features.ChannelMiniapp |
	1<<features.ChannelPOS | 1<<features.ChannelTablet | 1<<features.ChannelPush | 1<<features.ChannelSMS

// Cap limits how often one customer gets an offer: at most Count within
// Period. The zero Cap (no cap: in the file) is uncapped; a file's cap has
// a Count of 1 or more (count: 0 is a load error, not "never"). The engine
// keeps the counters.
type Cap struct {
	Count  int
	Period time.Duration
}

// Offer is one entry of the offer catalog. Offers are immutable once
// loaded; the engine reads the budget, cap, cooldown and transactional
// fields to enforce contact policy.
type Offer struct {
	ID       string
	Type     OfferType
	Title    [NumLocales]string
	Text     [NumLocales]string
	Value    int64 // face value to the customer, minor units
	Cost     int64 // cost to the retailer, minor units
	Channels features.ChannelMask
	// Stores is the sorted list of stores the offer is valid at; nil means
	// every store.
	Stores []string
	Valid  Span
	// Phases are the campaign phase windows; a zero Span is undeclared.
	Phases          [NumPhases]Span
	Budget          Budget
	Cap             Cap
	Cooldown        time.Duration
	RequiresConsent bool
	ConsentPurpose  features.Purpose
	Fulfilment      Fulfilment
	// Prior is the propensity prior the engine uses when no model scores
	// the offer. Default: 0.05.
	Prior float64
	// Category groups offers for diversity in arbitration.
	Category string
	// Transactional offers (service confirmations, onboarding) bypass
	// the channels' contact caps and dismissal suppression; their own Cap
	// and Cooldown still apply.
	Transactional bool
	// Untargeted offers may also be served when no scenario proposes
	// them: to a customer no scenario fits, to the holdout, to a customer
	// nbo has not seen yet, and as the bandit's exploration. Otherwise
	// only the scenarios that list the offer propose it, so their
	// conditions say who gets it.
	Untargeted bool

	// Index is the offer's position in its Set's Offers, so per-offer
	// state can live in a slice instead of a map.
	Index int

	File string // where the offer was defined
	Line int
}

// PhaseAt returns the campaign phase at instant now (Unix ms).
func (o *Offer) PhaseAt(now int64) Phase {
	for p := Preheat; p < NumPhases; p++ {
		if s := o.Phases[p]; s != (Span{}) && s.Contains(now) {
			return p
		}
	}
	return NoPhase
}

// Ineligible says why an offer cannot be given; Eligible is the zero value.
type Ineligible uint8

const (
	Eligible        Ineligible = iota
	OutsideValidity            // now is outside valid_from..valid_to
	OutsidePhases              // phases are declared and now is in none of them
	WrongChannel               // the offer is not shown on the request's channel
	WrongStore                 // the offer is not valid at the store in question
	NoConsent                  // the customer has not consented to the purpose on the channel
	numIneligible
)

var ineligibleNames = [numIneligible]string{"eligible", "outside_validity", "outside_phases", "wrong_channel", "wrong_store", "no_consent"}

// String returns the stable reason code.
func (r Ineligible) String() string {
	if r < numIneligible {
		return ineligibleNames[r]
	}
	return "unknown"
}

// AvailableAt reports whether the offer is valid at instant now: inside
// its validity window and, when it declares phases, inside one of them.
func (o *Offer) AvailableAt(now int64) Ineligible {
	if !o.Valid.Contains(now) {
		return OutsideValidity
	}
	declared := false
	for p := Preheat; p < NumPhases; p++ {
		if o.Phases[p] != (Span{}) {
			declared = true
			if o.Phases[p].Contains(now) {
				return Eligible
			}
		}
	}
	if declared {
		return OutsidePhases
	}
	return Eligible
}

// OnChannel reports whether the offer may be shown on channel ch.
func (o *Offer) OnChannel(ch features.Channel) bool { return o.Channels.Has(ch) }

// AtStore reports whether the offer is valid at store (always true for
// an offer without a store list; false for an empty store when it has one).
func (o *Offer) AtStore(store string) bool {
	if o.Stores == nil {
		return true
	}
	_, ok := slices.BinarySearch(o.Stores, store)
	return ok
}

// Consented reports whether the customer consented to the offer's
// purpose on channel ch (true when the offer requires no consent).
func (o *Offer) Consented(v *features.View, ch features.Channel) bool {
	return !o.RequiresConsent || v.Consent[o.ConsentPurpose].Has(ch)
}

// FulfilmentStore is the store an offer would be redeemed at for this
// request: the request's store, else the customer's home store, else the
// last store visited.
func FulfilmentStore(v *features.View, req *Request) string {
	switch {
	case req.Store != "":
		return req.Store
	case v.HomeStore != "":
		return v.HomeStore
	}
	return v.LastStore
}

// EligibleFor applies every pure eligibility rule for one customer and
// request: validity and phase, channel, store and consent. Budgets, caps,
// cooldowns and contact policy are the engine's (they need counters).
//
// The store rule: an offer with a store list needs the fulfilment store
// (FulfilmentStore) in the list when it is redeemed in store, and the
// request's store, when there is one, for an online offer.
func (o *Offer) EligibleFor(v *features.View, req *Request) Ineligible {
	if r := o.AvailableAt(req.Now); r != Eligible {
		return r
	}
	if !o.OnChannel(req.Channel) {
		return WrongChannel
	}
	if o.Stores != nil {
		store := req.Store
		if o.Fulfilment != Online {
			store = FulfilmentStore(v, req)
		}
		if (store != "" || o.Fulfilment != Online) && !o.AtStore(store) {
			return WrongStore
		}
	}
	if !o.Consented(v, req.Channel) {
		return NoConsent
	}
	return Eligible
}
