package features

// Window is a time window over which counters are kept.
type Window uint8

const (
	W1h Window = iota
	W24h
	W7d
	W30d
	WLifetime
	NumWindows
)

var windowNames = [NumWindows]string{"1h", "24h", "7d", "30d", "lifetime"}

// WindowMillis is each window's length in milliseconds (0 for lifetime).
var WindowMillis = [NumWindows]int64{3_600_000, 86_400_000, 7 * 86_400_000, 30 * 86_400_000, 0}

func (w Window) String() string {
	if w < NumWindows {
		return windowNames[w]
	}
	return "unknown"
}

// ParseWindow resolves "1h", "24h", "7d", "30d" or "lifetime".
func ParseWindow(s string) (Window, bool) {
	for i, n := range windowNames {
		if n == s {
			return Window(i), true
		}
	}
	return 0, false
}

// Purpose is a consent purpose.
type Purpose uint8

const (
	PurposeMarketing       Purpose = iota // offers and coupons
	PurposePersonalization                // using behaviour to choose content
	PurposeLocation                       // store visit and dwell tracking
	NumPurposes
)

var purposeNames = [NumPurposes]string{"marketing", "personalization", "location"}

func (p Purpose) String() string {
	if p < NumPurposes {
		return purposeNames[p]
	}
	return "unknown"
}

// ParsePurpose resolves a consent purpose name.
func ParsePurpose(s string) (Purpose, bool) {
	for i, n := range purposeNames {
		if n == s {
			return Purpose(i), true
		}
	}
	return 0, false
}

// ChannelMask is a set of channels, bit c for Channel c.
type ChannelMask uint16

// Has reports whether c is in the set.
func (m ChannelMask) Has(c Channel) bool { return m&(1<<c) != 0 }

// AllChannels is the set of every known channel.
const AllChannels ChannelMask = (1<<NumChannels - 1) &^ 1

// View is the read-only feature vector of one customer at one instant: the
// environment scenario expressions, models and the customer API read. It is
// a copy, so reading it takes no lock. Fill one with Store.ViewAt into a
// caller-owned value; slices are reused across calls (their backing arrays
// belong to the View).
//
// All times are Unix milliseconds of event time; 0 means never.
type View struct {
	Customer Key    // canonical customer ID; "" when unknown
	Known    bool   // false for a customer the engine has never seen
	Version  uint64 // bumps on every applied event (decision cache key)
	NewestTS int64  // event time of the newest applied event (freshness)
	FirstTS  int64  // event time of the first applied event
	Now      int64  // the instant the windows were evaluated at

	// Identifiers linked to this customer, as "ns:value" keys, sorted.
	Linked []Key

	// Totals over all categories: Counts[class][type][window] and the sums
	// of amounts (minor units; dwell events sum dwell seconds).
	Counts [NumClasses][NumTypes][NumWindows]uint32
	Sums   [NumClasses][NumTypes][NumWindows]int64
	// LastSeen[type] is the newest event time of that type on any channel.
	LastSeen [NumTypes]int64

	// Keys holds the per-category counters that are non-zero in some
	// window, sorted by (category, class, type).
	Keys []KeyStats

	// Viewed-not-bought: categories and SKUs looked at (online views,
	// in-store touches and try-ons) in the last 30 days and not bought on
	// any channel since. Sorted by most recent interest first.
	ViewedNotBought    []Interest
	ViewedNotBoughtSKU []Interest

	Cart      []CartItem // current cart, oldest first
	CartValue int64      // minor units
	CartTS    int64      // newest cart change

	LastStore string     // store of the newest offline event
	HomeStore string     // most visited store (ties: most recent)
	LastVisit VisitStats // the newest store visit

	SpendOnline  int64 // lifetime, minor units, net of returns
	SpendOffline int64
	Orders       int64 // lifetime purchases on any channel
	AOV          int64 // average order value, minor units
	Points       int64 // loyalty points: 1 per yuan online, 1.2 per yuan in store
	Member       bool  // has a member ID
	MemberSince  int64 // signup event time, 0 when no signup was seen

	// RFM: days since the newest purchase (-1 when none), lifetime
	// purchase count and spend, each also scored 1 (low) … 5 (high).
	RecencyDays            int
	RScore, FScore, MScore int

	// Consent[purpose] is the set of channels the customer opted into;
	// ConsentAt[purpose] the time of the newest consent event of that
	// purpose (0: none seen, the customer never said), which tells a
	// withdrawal from silence.
	Consent   [NumPurposes]ChannelMask
	ConsentAt [NumPurposes]int64

	Offers []OfferStats  // offer history, most recent first
	Recent []RecentEvent // the last events, newest first

	Group int // experiment bucket 0..99, a stable hash of the customer ID

	// Locale is the customer's language, "zh-CN" (the default) or "en",
	// from the newest event carrying attrs.locale.
	Locale string
}

// KeyStats are the counters of one (category, class, type) key.
type KeyStats struct {
	Category string
	Class    Class
	Type     EventType
	Count    [NumWindows]uint32
	Sum      [NumWindows]int64
	Last     int64 // newest event time
}

// Interest is a category or SKU with the newest time it was looked at and
// how often within 30 days.
type Interest struct {
	Name  string
	Last  int64
	Count uint32
}

// CartItem is one line of the current cart.
type CartItem struct {
	SKU      string
	Category string
	Quantity int32
	Amount   int64 // line value, minor units
	TS       int64
}

// VisitStats describe one store visit.
type VisitStats struct {
	Store      string
	Start      int64
	End        int64 // 0 while open
	DwellS     int64
	Purchased  bool     // a till purchase happened during the visit
	Categories []string // departments dwelt in or touched
}

// OfferStats is the history of one offer with this customer.
type OfferStats struct {
	Offer         string
	Impressions   uint32
	Clicks        uint32
	Dismissals    uint32
	DismissStreak uint32 // dismissals since the last click or redemption
	Redemptions   uint32
	LastShown     int64
	LastRedeemed  int64
}

// RecentEvent is a compact record of one applied event.
type RecentEvent struct {
	TS       int64
	Type     EventType
	Channel  Channel
	Category string
	SKU      string
	Store    string
	Amount   int64
}
