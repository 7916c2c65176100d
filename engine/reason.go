package engine

import (
	"strings"

	"nbo/scenarios"
)

// ReasonSimilar is the reason code of an offer no scenario proposed that
// the engine chose for this customer from what customers like them did
// with it (the bandit's segment); ReasonFallback that of one chosen
// without knowing the customer (an unknown customer, the holdout).
const (
	ReasonSimilar  = "similar_customers"
	ReasonFallback = "fallback"
)

// segmentCodes maps each segment name (with its channel) back to its
// code, for similarReason.
var segmentCodes = func() map[string]int {
	m := make(map[string]int, numSegmentCodes*8)
	for code, byChannel := range segmentNames {
		for _, n := range byChannel {
			if n != "" {
				m[n] = code
			}
		}
	}
	return m
}()

// segmentReasons are the plain-language reasons of ReasonSimilar, by
// segment code and locale: who the similar customers are, in the facets
// the bandit learns by (see segmentNames). "" where the segment says too
// little to be worth telling (habit unknown, a guest, no interest, price
// or distance facet). Like the scenarios' reasons, they end without a
// full stop (a client may join them).
var segmentReasons = func() [numSegmentCodes][scenarios.NumLocales]string {
	var out [numSegmentCodes][scenarios.NumLocales]string
	for code := range out {
		if segmentNames[code][0] == "" {
			continue // not a segment (two values of one facet)
		}
		out[code][scenarios.En] = segmentReasonEn(code)
		out[code][scenarios.ZhCN] = segmentReasonZh(code)
	}
	return out
}()

func segmentReasonEn(code int) string {
	if code == 0 { // a guest who has done nothing that tells
		return ""
	}
	who := "customers"
	if code&segMember != 0 {
		who = "members"
	}
	switch code & (segOnline | segOffline) {
	case segOnline:
		who += " who shop online"
	case segOffline:
		who += " who shop in store"
	case segOnline | segOffline:
		who += " who shop online and in store"
	}
	parts := []string{who}
	if likes := interestNames(code, scenarios.En); len(likes) > 0 {
		parts = append(parts, "interested in "+andList(likes, ", ", " and "))
	}
	switch {
	case code&segThrifty != 0:
		parts = append(parts, "price-conscious")
	case code&segSpender != 0:
		parts = append(parts, "who usually complete their orders")
	}
	switch {
	case code&segNear != 0:
		parts = append(parts, "living near a store")
	case code&segFar != 0:
		parts = append(parts, "living far from a store")
	}
	return "Chosen from how similar customers responded to it: " + strings.Join(parts, ", ")
}

func segmentReasonZh(code int) string {
	if code == 0 { // a guest who has done nothing that tells
		return ""
	}
	var b strings.Builder
	b.WriteString("根据相似顾客对此优惠的反应推荐：")
	switch code & (segOnline | segOffline) {
	case segOnline:
		b.WriteString("线上购物的")
	case segOffline:
		b.WriteString("到店购物的")
	case segOnline | segOffline:
		b.WriteString("线上线下都购物的")
	}
	if code&segMember != 0 {
		b.WriteString("会员")
	} else {
		b.WriteString("顾客")
	}
	if likes := interestNames(code, scenarios.ZhCN); len(likes) > 0 {
		b.WriteString("，关注" + andList(likes, "、", "和"))
	}
	switch {
	case code&segThrifty != 0:
		b.WriteString("，对价格敏感")
	case code&segSpender != 0:
		b.WriteString("，下单果断")
	}
	switch {
	case code&segNear != 0:
		b.WriteString("，住在门店附近")
	case code&segFar != 0:
		b.WriteString("，离门店较远")
	}
	return b.String()
}

// interestNames are the names of the segment's interest facets in loc.
func interestNames(code int, loc scenarios.Locale) []string {
	var names []string
	for _, f := range [...]struct {
		bit  int
		name [scenarios.NumLocales]string
	}{
		{segParent, [scenarios.NumLocales]string{scenarios.ZhCN: "母婴", scenarios.En: "baby products"}},
		{segBeauty, [scenarios.NumLocales]string{scenarios.ZhCN: "美妆", scenarios.En: "beauty"}},
		{segTech, [scenarios.NumLocales]string{scenarios.ZhCN: "数码", scenarios.En: "tech"}},
	} {
		if code&f.bit != 0 {
			names = append(names, f.name[loc])
		}
	}
	return names
}

// andList joins items with sep and the last two with last: "a, b and c".
func andList(items []string, sep, last string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], sep) + last + items[len(items)-1]
}

// similarReason is the ReasonSimilar reason of a customer in segment (a
// segmentNames name), in loc; false when the segment is not one the
// engine makes or says too little.
func similarReason(segment string, loc scenarios.Locale) (string, bool) {
	code, ok := segmentCodes[segment]
	if !ok || loc >= scenarios.NumLocales {
		return "", false
	}
	r := segmentReasons[code][loc]
	return r, r != ""
}

// untargetedReason is the reason code and reason of an offer no scenario
// proposed: ReasonSimilar when the engine chose it for this customer
// (personal: a known customer in the treatment group) from a segment
// worth telling, else ReasonFallback.
func untargetedReason(st *decideState, personal bool, loc scenarios.Locale) (code, reason string) {
	if personal {
		if reason, ok := similarReason(st.seg(), loc); ok {
			return ReasonSimilar, reason
		}
	}
	if loc == scenarios.En {
		return ReasonFallback, "A popular offer for this placement"
	}
	return ReasonFallback, "当前位置的热门优惠"
}
