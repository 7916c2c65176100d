package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	// The store zones (Asia/Urumqi, Asia/Hong_Kong, …) must resolve on a
	// machine without a system zoneinfo database.
	_ "time/tzdata"

	"nbo/features"
)

// The retailer: stores, a catalog and customers with latent traits. All of
// it is a pure function of the seed. Customers are never stored: a
// customer's traits are recomputed from (seed, index) whenever they are
// needed, which is what keeps a million simulated customers at a few bytes
// each (only their place in the event schedule is kept).

// Categories is the catalog's departments, in a fixed order (a customer's
// favourite categories are indexes into it).
var Categories = []string{
	"skincare", "makeup", "baby", "electronics", "phones",
	"apparel", "shoes", "home", "sports", "grocery",
}

// Category indexes with journey-specific roles.
const (
	catSkincare = iota
	catMakeup
	catBaby
	catElectronics
	catPhones
	catApparel
	catShoes
	catHome
	catSports
	catGrocery
	numCategories
)

// categoryPrice is the median price of each category in minor units (fen).
var categoryPrice = [numCategories]float64{
	25000, 18000, 15000, 120000, 350000, 40000, 60000, 30000, 35000, 6000,
}

// categoryCode abbreviates each category in SKU IDs.
var categoryCode = [numCategories]string{"SKN", "MKP", "BBY", "ELC", "PHN", "APL", "SHO", "HOM", "SPT", "GRC"}

// orderStatusPage is the attrs of an order-tracking page view; shared by
// every such event (Attrs maps are never modified once emitted).
var orderStatusPage = map[string]string{"page": "order_status"}

// babyQueries are search texts of the evening baby-product journey.
var babyQueries = []string{"婴儿奶粉", "纸尿裤", "baby stroller", "婴儿推车", "baby formula", "安抚奶嘴"}

// Store is one physical store.
type Store struct {
	ID   string
	City string
	Lat  float64
	Lon  float64
	// Zone is the store's IANA time zone; journeys happen in local time.
	Zone string
	// Stock is the units in stock per category, indexed like Categories;
	// zero means the store does not carry the category.
	Stock [numCategories]int32

	loc *time.Location
}

// Location returns the store's time zone.
func (s *Store) Location() *time.Location { return s.loc }

// Carries reports whether the store stocks the category.
func (s *Store) Carries(category string) bool {
	i := categoryIndex(category)
	return i >= 0 && s.Stock[i] > 0
}

// SKU is one catalog item.
type SKU struct {
	ID       string
	Category string
	Price    int64 // minor units

	cat uint8
}

type city struct {
	name, code, zone string
	lat, lon         float64
}

var cities = []city{
	{"Shanghai", "SH", "Asia/Shanghai", 31.23, 121.47},
	{"Beijing", "BJ", "Asia/Shanghai", 39.90, 116.40},
	{"Shenzhen", "SZ", "Asia/Shanghai", 22.54, 114.06},
	{"Guangzhou", "GZ", "Asia/Shanghai", 23.13, 113.26},
	{"Hangzhou", "HZ", "Asia/Shanghai", 30.27, 120.15},
	{"Chengdu", "CD", "Asia/Shanghai", 30.57, 104.07},
	{"Hong Kong", "HK", "Asia/Hong_Kong", 22.32, 114.17},
	{"Urumqi", "UR", "Asia/Urumqi", 43.83, 87.62},
	{"Wuhan", "WH", "Asia/Shanghai", 30.59, 114.31},
}

func categoryIndex(name string) int {
	for i, c := range Categories {
		if c == name {
			return i
		}
	}
	return -1
}

// draw is a small deterministic random stream on PCG. It is a value type
// so drawing a customer's traits does not allocate.
type draw struct{ pcg rand.PCG }

func newDraw(a, b uint64) draw {
	var d draw
	d.pcg.Seed(a, b)
	return d
}

func (d *draw) u64() uint64 { return d.pcg.Uint64() }

// float is uniform in [0, 1).
func (d *draw) float() float64 { return float64(d.u64()>>11) / (1 << 53) }

// intn is uniform in [0, n).
func (d *draw) intn(n int) int { return int((d.u64() >> 32) * uint64(n) >> 32) }

// between is uniform in [lo, hi].
func (d *draw) between(lo, hi int) int { return lo + d.intn(hi-lo+1) }

// chance is true with probability p.
func (d *draw) chance(p float64) bool { return d.float() < p }

// exp is exponential with mean 1.
func (d *draw) exp() float64 { return -math.Log(1 - d.float()) }

// norm is standard normal (Box-Muller).
func (d *draw) norm() float64 {
	u := 1 - d.float()
	v := d.float()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*v)
}

// mix64 is a 64-bit finaliser (splitmix64) used to derive independent
// stream keys from the seed.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Stream salts: each kind of randomness has its own stream so changing one
// (say, the journey mix) leaves the others (traits) as they were.
const (
	saltStores uint64 = iota + 1
	saltCatalog
	saltTraits
	saltJourney
	saltStock
)

func buildStores(seed uint64, n int) ([]Store, error) {
	d := newDraw(mix64(seed^saltStores<<56), saltStores)
	stores := make([]Store, n)
	perCity := make(map[string]int)
	for i := range stores {
		c := cities[i%len(cities)]
		perCity[c.code]++
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			return nil, fmt.Errorf("loading time zone %s for store %d: %w", c.zone, i, err)
		}
		s := Store{
			ID:   fmt.Sprintf("%s-%02d", c.code, perCity[c.code]),
			City: c.name,
			Lat:  c.lat + (d.float()-0.5)*0.2,
			Lon:  c.lon + (d.float()-0.5)*0.2,
			Zone: c.zone,
			loc:  loc,
		}
		for k := range s.Stock {
			// Most stores carry most departments; phones and baby are the
			// ones that are missing somewhere, so "in stock nearby" matters.
			carry := 0.95
			if k == catPhones || k == catBaby {
				carry = 0.7
			}
			if d.chance(carry) {
				s.Stock[k] = int32(d.between(5, 200))
			}
		}
		stores[i] = s
	}
	return stores, nil
}

func buildCatalog(seed uint64, perCategory int) [][]SKU {
	d := newDraw(mix64(seed^saltCatalog<<56), saltCatalog)
	cat := make([][]SKU, numCategories)
	for k := range cat {
		cat[k] = make([]SKU, perCategory)
		for j := range cat[k] {
			// Log-normal around the category median, rounded to whole yuan
			// minus one fen the way shelf prices are (¥199.00 → 19900).
			p := categoryPrice[k] * math.Exp(0.6*d.norm())
			price := max(int64(p/100)*100-100, 900)
			cat[k][j] = SKU{
				ID:       fmt.Sprintf("SKU-%s-%04d", categoryCode[k], j+1),
				Category: Categories[k],
				Price:    price,
				cat:      uint8(k),
			}
		}
	}
	return cat
}

// Habit is a customer's channel habit.
type Habit uint8

const (
	// OnlineOnly customers shop in the app, mini-program and web shop.
	OnlineOnly Habit = iota
	// StoreOnly customers shop in stores; they may own the app for
	// coupons and membership but do not buy online.
	StoreOnly
	// Omnichannel customers do both and move between them.
	Omnichannel
)

var habitNames = [...]string{"online_only", "store_only", "omnichannel"}

func (h Habit) String() string {
	if int(h) < len(habitNames) {
		return habitNames[h]
	}
	return "unknown"
}

// Customer is the latent profile of one simulated customer. Policies never
// see it; they see the events it produces. It is recomputed from the seed
// and the index on demand and never stored.
type Customer struct {
	Index int
	Habit Habit
	// Favourites are category indexes (into Categories), strongest first.
	Favourites [3]uint8
	// PriceSensitivity in [0, 1]: high means coupons work and premium
	// services do not.
	PriceSensitivity float64
	// Affluence in [0, 1] scales basket sizes and VIP appeal.
	Affluence float64
	// HomeStore indexes the store list; DistanceKm is how far away the
	// customer lives from it.
	HomeStore  int
	DistanceKm float64
	// Member customers have (or will get) a membership: member ID, card,
	// phone. JoinJourney is the journey at which they sign up in a store
	// (0: a member from the start). Non-members are anonymous: a device ID.
	Member      bool
	JoinJourney int
	// AppUser customers have the app, so push reaches them.
	AppUser bool
	// Consent per purpose, as granted on the first journey (members) or at
	// signup. MarketingChannels is the opt-in list for marketing.
	Marketing, Personalization, Location bool
	MarketingChannels                    features.ChannelMask
	// MeanGap is the mean time between journeys.
	MeanGap time.Duration
	// LapseAfter is the journey after which the customer goes quiet for
	// two to four months (0: never lapses).
	LapseAfter int
}

// Parent reports whether baby products are among the customer's favourites.
func (c *Customer) Parent() bool {
	for _, f := range c.Favourites {
		if f == catBaby {
			return true
		}
	}
	return false
}

func (c *Customer) likes(cat uint8) bool {
	for _, f := range c.Favourites {
		if f == cat {
			return true
		}
	}
	return false
}

// nearness is 0 for a customer next door to their home store, rising
// to 1.5 for one 12 km or more away.
func (c *Customer) nearness() float64 { return math.Min(c.DistanceKm/8, 1.5) }

// meanNearness is the population mean of nearness (distance is 0.3 km
// plus an exponential of mean 6 km): 0.3 + 6·(1 − e^(−11.7/6)) km over 8.
const meanNearness = 0.68

// storeLean scales how often a customer goes to a store rather than
// online, by distance: 1.3 next door, 0.63 at 12 km or more, 1 on
// average over customers, so the population's journey mix stays as it
// was while each customer's follows where they live.
func (c *Customer) storeLean() float64 { return 1 - 0.45*(c.nearness()-meanNearness) }

// pricierLean is the chance the customer picks the pricier of two items
// they compare: affluence raises it, price sensitivity lowers it.
func (c *Customer) pricierLean() float64 {
	return min(max(c.Affluence-0.6*(c.PriceSensitivity-0.5), 0.05), 0.95)
}

// customer draws the traits of customer idx.
func (s *Simulator) customer(idx int) Customer {
	d := newDraw(s.traitKey, uint64(idx))
	c := Customer{Index: idx}
	switch r := d.float(); {
	case r < 0.30:
		c.Habit = OnlineOnly
	case r < 0.55:
		c.Habit = StoreOnly
	default:
		c.Habit = Omnichannel
	}
	// Favourites: three distinct categories; a third of customers are
	// parents with baby first.
	c.Favourites[0] = uint8(d.intn(numCategories))
	if d.chance(0.12) {
		c.Favourites[0] = catBaby
	}
	for i := 1; i < 3; i++ {
		for {
			f := uint8(d.intn(numCategories))
			if f != c.Favourites[0] && (i == 1 || f != c.Favourites[1]) {
				c.Favourites[i] = f
				break
			}
		}
	}
	c.PriceSensitivity = d.float()
	c.Affluence = math.Min(1, math.Max(0, 0.5+0.25*d.norm()-0.3*(c.PriceSensitivity-0.5)))
	c.HomeStore = d.intn(len(s.stores))
	c.DistanceKm = 0.3 + 12*d.exp()/2
	c.Member = d.chance(s.opts.MemberShare)
	if c.Member && d.chance(0.15) {
		c.JoinJourney = d.between(1, 4)
	}
	c.AppUser = c.Habit != StoreOnly || d.chance(0.4)
	c.Marketing = d.chance(0.75)
	c.Personalization = d.chance(0.85)
	c.Location = d.chance(0.6)
	c.MarketingChannels = features.ChannelMask(1<<features.ChannelStore | 1<<features.ChannelPOS | 1<<features.ChannelTablet)
	if c.AppUser {
		c.MarketingChannels |= 1<<features.ChannelApp | 1<<features.ChannelMiniapp | 1<<features.ChannelWeb
		if d.chance(0.7) {
			c.MarketingChannels |= 1 << features.ChannelPush
		}
	}
	if d.chance(0.35) {
		c.MarketingChannels |= 1 << features.ChannelSMS
	}
	// Log-uniform between one day and three weeks.
	gapH := 24 * math.Exp(d.float()*math.Log(21))
	if c.Habit == StoreOnly {
		// A store-only customer's every journey is a trip to a store, and
		// the farther away they live the rarer the trips.
		gapH /= c.storeLean()
	}
	c.MeanGap = time.Duration(gapH * float64(time.Hour))
	if d.chance(0.12) {
		c.LapseAfter = d.between(1, 3)
	}
	return c
}

// taste is the customer's individual offset on the response log-odds of
// offer type t. It has its own stream so the schedule (which needs the
// traits on every journey) does not pay for it.
func (s *Simulator) taste(idx int, t OfferType) float64 {
	d := newDraw(s.traitKey^0x7a57e, uint64(idx)<<3|uint64(t))
	return tasteSD * d.norm()
}

// OfferType is what an offer gives; the names match the scenarios
// package's offer types.
type OfferType uint8

const (
	OfferCoupon OfferType = iota
	OfferExperience
	OfferServiceBooking
	OfferProduct
	OfferVIPService
	OfferBundle
	OfferPoints
	NumOfferTypes
)

var offerTypeNames = [NumOfferTypes]string{"coupon", "experience", "service_booking", "product", "vip_service", "bundle", "points"}

func (t OfferType) String() string {
	if t < NumOfferTypes {
		return offerTypeNames[t]
	}
	return "unknown"
}

// ParseOfferType resolves an offer type name.
func ParseOfferType(s string) (OfferType, bool) {
	for i, n := range offerTypeNames {
		if n == s {
			return OfferType(i), true
		}
	}
	return 0, false
}

// inStore reports whether the offer is fulfilled in a store (an
// experience or a service booking is redeemed at the store).
func (t OfferType) inStore() bool { return t == OfferExperience || t == OfferServiceBooking }

// baseLogit is each offer type's response log-odds before traits.
var baseLogit = [NumOfferTypes]float64{-2.6, -3.0, -3.3, -2.8, -3.4, -3.5, -2.9}

// TrueProbability is the hidden probability that customer idx redeems an
// offer of type t shown on channel ch (given that the offer was seen). It
// is a fixed function of the customer's traits plus an individual taste
// term, so a policy that learns from behaviour can approach it and an
// oracle can use it. Channels the customer cannot be reached on give 0.
func (s *Simulator) TrueProbability(idx int, t OfferType, ch features.Channel) float64 {
	if idx < 0 || idx >= s.opts.Customers || t >= NumOfferTypes {
		return 0
	}
	c := s.customer(idx)
	return c.trueProbability(t, ch, s.taste(idx, t))
}

// trueProbability is the response probability given the customer's
// individual taste for the offer type: an offset on the log-odds that no
// observable explains, which keeps the oracle out of reach of any policy
// that only sees behaviour.
func (c *Customer) trueProbability(t OfferType, ch features.Channel, taste float64) float64 {
	z, ok := c.logit(t, ch)
	if !ok {
		return 0
	}
	return sigmoid(z + taste)
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// tasteSD is the standard deviation of the individual taste term on the
// response log-odds.
const tasteSD = 0.5

// logit is the response log-odds of offer type t on channel ch from the
// customer's traits, before their individual taste; ok is false when the
// channel cannot reach the customer (probability 0).
func (c *Customer) logit(t OfferType, ch features.Channel) (z float64, ok bool) {
	z = baseLogit[t]
	online := c.Habit != StoreOnly
	visits := c.Habit != OnlineOnly
	near := c.nearness()
	switch t {
	case OfferCoupon:
		z += 4 * (c.PriceSensitivity - 0.5)
		if online {
			z += 0.3
		}
	case OfferExperience:
		if visits {
			z += 1.2
		}
		z -= near
		if c.likes(catSkincare) || c.likes(catMakeup) || c.likes(catElectronics) || c.likes(catPhones) {
			z += 0.6
		}
	case OfferServiceBooking:
		if c.likes(catSkincare) || c.likes(catMakeup) {
			z += 1.6
		}
		if visits {
			z += 0.5
		}
		z -= 0.6 * near
	case OfferProduct:
		if online {
			z += 0.8
		}
		z += 1.0 * (0.5 - c.PriceSensitivity)
	case OfferVIPService:
		z += 4.4 * (c.Affluence - 0.5)
		if !c.Member {
			z -= 0.7
		}
	case OfferBundle:
		if c.Parent() {
			z += 2.6
		} else {
			z -= 1.0
		}
	case OfferPoints:
		if c.Member {
			z += 1.0
		} else {
			z -= 2.0
		}
		z += 1.6 * (c.PriceSensitivity - 0.5)
	}
	switch ch {
	case features.ChannelApp:
		if !c.AppUser {
			return 0, false
		}
		z += 0.3
	case features.ChannelMiniapp:
		z += 0.1
	case features.ChannelWeb:
		if c.Habit == StoreOnly {
			z -= 0.8
		}
		z -= 0.2
	case features.ChannelPush:
		if !c.AppUser {
			return 0, false
		}
		z -= 0.3
	case features.ChannelSMS:
		z -= 0.8
	case features.ChannelTablet, features.ChannelStore, features.ChannelPOS:
		// Shown by an associate in the store: only store visitors see it,
		// and a person asking works better than a banner.
		if !visits {
			return 0, false
		}
		z += 0.8
	case features.ChannelSocial:
		z -= 1.0
	default:
		return 0, false
	}
	return z + channelFit(t, ch), true
}

// channelFit is how well offer type t suits channel ch, on the response
// log-odds: an associate in the store sells an experience, a service or
// VIP treatment far better than a banner does, while a coupon, points or
// a product to order are a tap away in the app or on the web and mean a
// detour at a till. So the best offer for a customer depends on where
// they are, not only on who they are.
func channelFit(t OfferType, ch features.Channel) float64 {
	switch ch {
	case features.ChannelTablet, features.ChannelStore, features.ChannelPOS:
		return inStoreFit[t]
	}
	return digitalFit[t]
}

// Offer type fit on digital channels (web, app, mini-program, push, SMS,
// social) and in store, by OfferType.
var (
	digitalFit = [NumOfferTypes]float64{0.3, -0.4, -0.3, 0.3, -0.2, 0, 0.4}
	inStoreFit = [NumOfferTypes]float64{-0.4, 0.6, 0.6, -0.2, 0.5, 0, -0.4}
)

// Identifiers. They embed the customer index (so feedback can be mapped
// back to the customer) and a tag of the seed (so two simulations with
// different seeds do not share customers in one engine).

func (s *Simulator) memberID(idx int) string {
	return "M" + s.tag + "-" + strconv.Itoa(idx)
}

func (s *Simulator) cardID(idx int) string {
	return "C" + s.tag + "-" + strconv.Itoa(idx)
}

func (s *Simulator) deviceID(idx int) string {
	return "dv" + s.tag + "-" + strconv.Itoa(idx)
}

func (s *Simulator) phoneHash(idx int) string {
	// A mainland mobile number: unique per index below ten million within
	// one seed.
	n := 13_000_000_000 + (s.opts.Seed%90*10_000_000+uint64(idx))%1_000_000_000
	h, _ := features.HashIdentifier(features.NSPhone, "+86"+strconv.FormatUint(n, 10))
	return h
}

// CustomerIndex maps an identifier a simulated event carried (member, card
// or device) back to the customer's index.
func (s *Simulator) CustomerIndex(ids features.IDs) (int, bool) {
	for _, p := range []struct{ v, prefix string }{
		{ids.Member, "M"}, {ids.Card, "C"}, {ids.Device, "dv"},
	} {
		if p.v == "" {
			continue
		}
		want := p.prefix + s.tag + "-"
		if len(p.v) <= len(want) || p.v[:len(want)] != want {
			continue
		}
		n, err := strconv.Atoi(p.v[len(want):])
		if err != nil || n < 0 || n >= s.opts.Customers {
			continue
		}
		return n, true
	}
	return 0, false
}
