package features

import (
	"encoding/json"
	"time"
)

// FormatTS renders Unix milliseconds as RFC 3339 UTC with milliseconds;
// 0 renders as "".
func FormatTS(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

type windowsJSON map[string]int64

func windows[T uint32 | int64](a [NumWindows]T) windowsJSON {
	m := make(windowsJSON, NumWindows)
	for w := W1h; w < NumWindows; w++ {
		m[w.String()] = int64(a[w])
	}
	return m
}

type keyJSON struct {
	Category string      `json:"category"`
	Class    string      `json:"class"`
	Type     string      `json:"type"`
	Counts   windowsJSON `json:"counts"`
	Sums     windowsJSON `json:"sums"`
	Last     string      `json:"last"`
}

type interestJSON struct {
	Name  string `json:"name"`
	Last  string `json:"last"`
	Count uint32 `json:"count_30d"`
}

type cartJSON struct {
	SKU      string `json:"sku"`
	Category string `json:"category,omitempty"`
	Quantity int32  `json:"quantity"`
	Amount   int64  `json:"amount"`
	TS       string `json:"ts"`
}

type visitJSON struct {
	Store      string   `json:"store"`
	Start      string   `json:"start"`
	End        string   `json:"end"`
	DwellS     int64    `json:"dwell_s"`
	Purchased  bool     `json:"purchased"`
	Categories []string `json:"categories"`
}

type offerJSON struct {
	Offer         string `json:"offer_id"`
	Impressions   uint32 `json:"impressions"`
	Clicks        uint32 `json:"clicks"`
	Dismissals    uint32 `json:"dismissals"`
	DismissStreak uint32 `json:"dismiss_streak"`
	Redemptions   uint32 `json:"redemptions"`
	LastShown     string `json:"last_shown,omitempty"`
	LastRedeemed  string `json:"last_redeemed,omitempty"`
}

type recentJSON struct {
	TS       string `json:"ts"`
	Type     string `json:"type"`
	Channel  string `json:"channel"`
	Category string `json:"category,omitempty"`
	SKU      string `json:"sku,omitempty"`
	Store    string `json:"store,omitempty"`
	Amount   int64  `json:"amount,omitempty"`
}

type rfmJSON struct {
	RecencyDays int `json:"recency_days"`
	R           int `json:"r"`
	F           int `json:"f"`
	M           int `json:"m"`
}

type viewJSON struct {
	Customer        Key                               `json:"customer"`
	Known           bool                              `json:"known"`
	Linked          []Key                             `json:"linked"`
	Version         uint64                            `json:"version"`
	NewestTS        string                            `json:"newest_event_ts"`
	FirstTS         string                            `json:"first_event_ts"`
	EvaluatedAt     string                            `json:"evaluated_at"`
	Counts          map[string]map[string]windowsJSON `json:"counts"`
	Sums            map[string]map[string]windowsJSON `json:"sums"`
	LastSeen        map[string]string                 `json:"last_seen"`
	Categories      []keyJSON                         `json:"categories"`
	ViewedNotBought []interestJSON                    `json:"viewed_not_bought"`
	ViewedSKUs      []interestJSON                    `json:"viewed_not_bought_skus"`
	Cart            []cartJSON                        `json:"cart"`
	CartValue       int64                             `json:"cart_value"`
	LastStore       string                            `json:"last_store"`
	HomeStore       string                            `json:"home_store"`
	LastVisit       *visitJSON                        `json:"last_visit"`
	SpendOnline     int64                             `json:"spend_online"`
	SpendOffline    int64                             `json:"spend_offline"`
	Orders          int64                             `json:"orders"`
	AOV             int64                             `json:"aov"`
	Points          int64                             `json:"points"`
	Member          bool                              `json:"member"`
	MemberSince     string                            `json:"member_since"`
	RFM             rfmJSON                           `json:"rfm"`
	Consent         map[string][]string               `json:"consent"`
	Offers          []offerJSON                       `json:"offers"`
	Recent          []recentJSON                      `json:"recent"`
	Group           int                               `json:"group"`
	Locale          string                            `json:"locale"`
}

// MarshalJSON renders the view as the customer API's JSON: every feature,
// names instead of enums, RFC 3339 times, zero counters left out, slices
// in a stable order — canonical, so two equal states render byte-equal.
func (v *View) MarshalJSON() ([]byte, error) {
	out := viewJSON{
		Customer: v.Customer, Known: v.Known, Linked: v.Linked, Version: v.Version,
		NewestTS: FormatTS(v.NewestTS), FirstTS: FormatTS(v.FirstTS), EvaluatedAt: FormatTS(v.Now),
		Counts: map[string]map[string]windowsJSON{}, Sums: map[string]map[string]windowsJSON{},
		LastSeen: map[string]string{}, Categories: []keyJSON{}, ViewedNotBought: []interestJSON{},
		ViewedSKUs: []interestJSON{}, Cart: []cartJSON{}, CartValue: v.CartValue,
		LastStore: v.LastStore, HomeStore: v.HomeStore,
		SpendOnline: v.SpendOnline, SpendOffline: v.SpendOffline, Orders: v.Orders, AOV: v.AOV,
		Points: v.Points, Member: v.Member, MemberSince: FormatTS(v.MemberSince),
		RFM:     rfmJSON{RecencyDays: v.RecencyDays, R: v.RScore, F: v.FScore, M: v.MScore},
		Consent: map[string][]string{}, Offers: []offerJSON{}, Recent: []recentJSON{}, Group: v.Group, Locale: v.Locale,
	}
	if out.Linked == nil {
		out.Linked = []Key{}
	}
	for cls := Online; cls < NumClasses; cls++ {
		for t := TypeUnknown + 1; t < NumTypes; t++ {
			if v.Counts[cls][t][WLifetime] != 0 {
				if out.Counts[cls.String()] == nil {
					out.Counts[cls.String()] = map[string]windowsJSON{}
				}
				out.Counts[cls.String()][t.String()] = windows(v.Counts[cls][t])
			}
			if v.Sums[cls][t][WLifetime] != 0 {
				if out.Sums[cls.String()] == nil {
					out.Sums[cls.String()] = map[string]windowsJSON{}
				}
				out.Sums[cls.String()][t.String()] = windows(v.Sums[cls][t])
			}
		}
	}
	for t, ts := range v.LastSeen {
		if ts != 0 {
			out.LastSeen[EventType(t).String()] = FormatTS(ts)
		}
	}
	for _, k := range v.Keys {
		out.Categories = append(out.Categories, keyJSON{Category: k.Category, Class: k.Class.String(), Type: k.Type.String(), Counts: windows(k.Count), Sums: windows(k.Sum), Last: FormatTS(k.Last)})
	}
	for _, it := range v.ViewedNotBought {
		out.ViewedNotBought = append(out.ViewedNotBought, interestJSON{Name: it.Name, Last: FormatTS(it.Last), Count: it.Count})
	}
	for _, it := range v.ViewedNotBoughtSKU {
		out.ViewedSKUs = append(out.ViewedSKUs, interestJSON{Name: it.Name, Last: FormatTS(it.Last), Count: it.Count})
	}
	for _, it := range v.Cart {
		out.Cart = append(out.Cart, cartJSON{SKU: it.SKU, Category: it.Category, Quantity: it.Quantity, Amount: it.Amount, TS: FormatTS(it.TS)})
	}
	if v.LastVisit.Store != "" {
		lv := v.LastVisit
		out.LastVisit = &visitJSON{Store: lv.Store, Start: FormatTS(lv.Start), End: FormatTS(lv.End), DwellS: lv.DwellS, Purchased: lv.Purchased, Categories: append([]string{}, lv.Categories...)}
	}
	for p := Purpose(0); p < NumPurposes; p++ {
		chans := []string{}
		for ch := ChannelWeb; ch < NumChannels; ch++ {
			if v.Consent[p].Has(ch) {
				chans = append(chans, ch.String())
			}
		}
		out.Consent[p.String()] = chans
	}
	for _, o := range v.Offers {
		out.Offers = append(out.Offers, offerJSON{Offer: o.Offer, Impressions: o.Impressions, Clicks: o.Clicks, Dismissals: o.Dismissals, DismissStreak: o.DismissStreak, Redemptions: o.Redemptions, LastShown: FormatTS(o.LastShown), LastRedeemed: FormatTS(o.LastRedeemed)})
	}
	for _, e := range v.Recent {
		out.Recent = append(out.Recent, recentJSON{TS: FormatTS(e.TS), Type: e.Type.String(), Channel: e.Channel.String(), Category: e.Category, SKU: e.SKU, Store: e.Store, Amount: e.Amount})
	}
	return json.Marshal(out)
}
