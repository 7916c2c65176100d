package features

import "strings"

// Event is one behavioural event, schema v1 (docs/events.md). It is the
// decoded, validated form: enums are resolved, the timestamp is Unix
// milliseconds, identifiers are normalised (phone and email hashed).
//
// The JSON tags document the wire names; the hot path decodes with
// DecodeEvent, not encoding/json.
type Event struct {
	ID         string            `json:"event_id"`
	TS         int64             `json:"ts"` // event time, Unix milliseconds (RFC 3339 on the wire)
	Type       EventType         `json:"type"`
	Channel    Channel           `json:"channel"`
	IDs        IDs               `json:"ids"`
	SKU        string            `json:"sku,omitempty"`
	Category   string            `json:"category,omitempty"`
	Store      string            `json:"store,omitempty"`
	Amount     int64             `json:"amount,omitempty"` // minor currency units (fen)
	Quantity   int32             `json:"quantity,omitempty"`
	DwellS     int32             `json:"dwell_s,omitempty"`
	OfferID    string            `json:"offer_id,omitempty"`
	DecisionID string            `json:"decision_id,omitempty"`
	CouponCode string            `json:"coupon_code,omitempty"`
	Query      string            `json:"query,omitempty"`
	Attrs      map[string]string `json:"attrs,omitempty"`
}

// IDs are the identifiers an event carries. At least one is required.
// Phone and email must arrive hashed (64 hex characters, SHA-256) or are
// hashed by the decoder; the engine never stores them in clear.
type IDs struct {
	Member string `json:"member,omitempty"`
	Card   string `json:"card,omitempty"`
	Phone  string `json:"phone,omitempty"`
	Email  string `json:"email,omitempty"`
	Device string `json:"device,omitempty"`
}

// Get returns the identifier in namespace ns ("" when absent).
func (ids *IDs) Get(ns Namespace) string {
	switch ns {
	case NSMember:
		return ids.Member
	case NSCard:
		return ids.Card
	case NSPhone:
		return ids.Phone
	case NSEmail:
		return ids.Email
	case NSDevice:
		return ids.Device
	}
	return ""
}

// Set stores v in namespace ns.
func (ids *IDs) Set(ns Namespace, v string) {
	switch ns {
	case NSMember:
		ids.Member = v
	case NSCard:
		ids.Card = v
	case NSPhone:
		ids.Phone = v
	case NSEmail:
		ids.Email = v
	case NSDevice:
		ids.Device = v
	}
}

// BestKey is the key of the best identifier set: the one of the
// highest-priority namespace (member > card > phone > email > device),
// the way producers key events ("" when none is set).
func (ids *IDs) BestKey() Key {
	for ns := NSMember; ns < NumNamespaces; ns++ {
		if v := ids.Get(ns); v != "" {
			return MakeKey(ns, v)
		}
	}
	return ""
}

// Empty reports whether no identifier is set.
func (ids *IDs) Empty() bool {
	return ids.Member == "" && ids.Card == "" && ids.Phone == "" && ids.Email == "" && ids.Device == ""
}

// Namespace is an identifier namespace. The order is the priority order:
// member > card > phone > email > device.
type Namespace uint8

const (
	NSMember Namespace = iota
	NSCard
	NSPhone
	NSEmail
	NSDevice
	NumNamespaces
)

var namespaceNames = [NumNamespaces]string{"member", "card", "phone", "email", "device"}

func (n Namespace) String() string {
	if n < NumNamespaces {
		return namespaceNames[n]
	}
	return "unknown"
}

// ParseNamespace resolves a namespace name.
func ParseNamespace(s string) (Namespace, bool) {
	for i, name := range namespaceNames {
		if name == s {
			return Namespace(i), true
		}
	}
	return 0, false
}

// Key is a namespaced identifier, "member:M1". It names a customer in APIs
// and is the canonical customer ID when it is the best identifier of its
// customer.
type Key string

// MakeKey joins a namespace and a value.
func MakeKey(ns Namespace, v string) Key { return Key(ns.String() + ":" + v) }

// ParseKey splits "ns:value".
func ParseKey(s string) (Namespace, string, bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return 0, "", false
	}
	ns, ok := ParseNamespace(s[:i])
	return ns, s[i+1:], ok
}

// Channel is where an event happened or where an offer is shown.
type Channel uint8

const (
	ChannelUnknown Channel = iota
	ChannelWeb
	ChannelApp
	ChannelMiniapp
	ChannelStore
	ChannelPOS
	ChannelTablet
	ChannelPush
	ChannelSMS
	ChannelSocial
	NumChannels
)

var channelNames = [NumChannels]string{"", "web", "app", "miniapp", "store", "pos", "tablet", "push", "sms", "social"}

func (c Channel) String() string {
	if c < NumChannels {
		return channelNames[c]
	}
	return "unknown"
}

// ParseChannel resolves a channel name.
func ParseChannel(s string) (Channel, bool) {
	for i := 1; i < int(NumChannels); i++ {
		if channelNames[i] == s {
			return Channel(i), true
		}
	}
	return ChannelUnknown, false
}

// Class is the channel class a window counter is kept under.
type Class uint8

const (
	Online Class = iota
	Offline
	NumClasses
)

var classNames = [NumClasses]string{"online", "offline"}

func (c Class) String() string { return classNames[c&1] }

// ParseClass resolves "online" or "offline".
func ParseClass(s string) (Class, bool) {
	switch s {
	case "online":
		return Online, true
	case "offline":
		return Offline, true
	}
	return 0, false
}

// Class is the channel's class: stores, tills and store tablets are
// offline; everything else is online.
func (c Channel) Class() Class {
	switch c {
	case ChannelStore, ChannelPOS, ChannelTablet:
		return Offline
	}
	return Online
}

// EventType is the kind of an event.
type EventType uint8

const (
	TypeUnknown EventType = iota
	// online journey
	PageView
	ProductView
	Search
	AddToCart
	RemoveFromCart
	Checkout
	Order
	// offline journey
	StoreEnter
	StoreExit
	Dwell
	ProductTouch
	TryOn
	PosPurchase
	Return
	// feedback on offers
	OfferImpression
	OfferClick
	OfferDismiss
	CouponRedeem
	PushOpen
	// social
	Share
	Review
	// identity, consent, membership
	Identify
	Consent
	Erase
	Signup
	NumTypes
)

var typeNames = [NumTypes]string{
	"", "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout", "order",
	"store_enter", "store_exit", "dwell", "product_touch", "try_on", "pos_purchase", "return",
	"offer_impression", "offer_click", "offer_dismiss", "coupon_redeem", "push_open",
	"share", "review", "identify", "consent", "erase", "signup",
}

func (t EventType) String() string {
	if t < NumTypes {
		return typeNames[t]
	}
	return "unknown"
}

// ParseEventType resolves an event type name.
func ParseEventType(s string) (EventType, bool) {
	for i := 1; i < int(NumTypes); i++ {
		if typeNames[i] == s {
			return EventType(i), true
		}
	}
	return TypeUnknown, false
}

// IsPurchase reports whether the type is a completed purchase on any
// channel (an online order or a till purchase).
func (t EventType) IsPurchase() bool { return t == Order || t == PosPurchase }

// Reason is a stable code for a rejected event. Codes are part of the API:
// they appear in HTTP answers, metrics labels and dead-letter records.
type Reason string

const (
	ReasonBadJSON      Reason = "bad_json"      // not a JSON object
	ReasonMissingField Reason = "missing_field" // a required field is absent or empty
	ReasonUnknownField Reason = "unknown_field" // a field not in schema v1
	ReasonWrongType    Reason = "wrong_type"    // a field has the wrong JSON type
	ReasonUnknownType  Reason = "unknown_type"  // "type" is not a known event type
	ReasonBadChannel   Reason = "bad_channel"   // "channel" is not a known channel
	ReasonBadTS        Reason = "bad_ts"        // "ts" is not RFC 3339
	ReasonFutureTS     Reason = "future_ts"     // "ts" is too far ahead of the clock
	ReasonTooLate      Reason = "too_late"      // older than the customer's watermark minus the allowed lateness
	ReasonTooLarge     Reason = "too_large"     // the event or a field is over its size limit
	ReasonBadID        Reason = "bad_id"        // an identifier is malformed
	ReasonBadValue     Reason = "bad_value"     // a value is out of range (negative amount, …)
	ReasonDuplicate    Reason = "duplicate"     // the event_id was already applied
)

// Reasons lists every reason code, for metrics and docs.
var Reasons = []Reason{
	ReasonBadJSON, ReasonMissingField, ReasonUnknownField, ReasonWrongType, ReasonUnknownType,
	ReasonBadChannel, ReasonBadTS, ReasonFutureTS, ReasonTooLate, ReasonTooLarge, ReasonBadID,
	ReasonBadValue, ReasonDuplicate,
}

// Rejection says why an event was refused: a stable code, the field at
// fault (JSON name, "" for the whole event) and a sentence for people that
// never quotes more than a short excerpt of the input.
type Rejection struct {
	Code    Reason `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (r *Rejection) Error() string {
	if r.Field != "" {
		return "features: event rejected (" + string(r.Code) + ", " + r.Field + "): " + r.Message
	}
	return "features: event rejected (" + string(r.Code) + "): " + r.Message
}
