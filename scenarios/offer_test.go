package scenarios

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"nbo/features"
)

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func TestOfferEligibility(t *testing.T) {
	offer := func() *Offer {
		return &Offer{
			ID: "o", Channels: 1<<features.ChannelApp | 1<<features.ChannelTablet,
			Valid:           Span{From: ms("2026-11-01T00:00:00+08:00"), To: ms("2026-12-01T00:00:00+08:00")},
			RequiresConsent: true, ConsentPurpose: features.PurposeMarketing, Fulfilment: InStore,
		}
	}
	consented := features.View{HomeStore: "S1"}
	consented.Consent[features.PurposeMarketing] = 1 << features.ChannelApp
	req := func(ch features.Channel, at, store string) *Request {
		return &Request{Channel: ch, Now: ms(at), Store: store}
	}
	cases := []struct {
		name  string
		edit  func(o *Offer)
		view  features.View
		req   *Request
		want  Ineligible
		phase Phase
	}{
		{name: "an offer inside its window on its channel with consent is eligible", view: consented, req: req(features.ChannelApp, "2026-11-15T10:00:00+08:00", ""), want: Eligible},
		{name: "before valid_from it is outside validity", view: consented, req: req(features.ChannelApp, "2026-10-31T23:59:59+08:00", ""), want: OutsideValidity},
		{name: "valid_to is exclusive", view: consented, req: req(features.ChannelApp, "2026-12-01T00:00:00+08:00", ""), want: OutsideValidity},
		{name: "a channel the offer is not shown on is refused", view: consented, req: req(features.ChannelWeb, "2026-11-15T10:00:00+08:00", ""), want: WrongChannel},
		{name: "consent on another channel does not count", view: consented, req: req(features.ChannelTablet, "2026-11-15T10:00:00+08:00", ""), want: NoConsent},
		{name: "no consent at all is refused", req: req(features.ChannelApp, "2026-11-15T10:00:00+08:00", ""), want: NoConsent},
		{name: "an offer without a consent purpose needs none", edit: func(o *Offer) { o.RequiresConsent = false }, req: req(features.ChannelApp, "2026-11-15T10:00:00+08:00", ""), want: Eligible},
		{name: "an in-store offer is refused when the home store is not in its list", edit: func(o *Offer) { o.Stores = []string{"S2", "S3"} }, view: consented, req: req(features.ChannelApp, "2026-11-15T10:00:00+08:00", ""), want: WrongStore},
		{name: "the request's store wins over the home store", edit: func(o *Offer) { o.Stores = []string{"S2", "S3"} }, view: consented, req: req(features.ChannelApp, "2026-11-15T10:00:00+08:00", "S3"), want: Eligible},
		{name: "an in-store offer with a store list needs some store", edit: func(o *Offer) { o.Stores = []string{"S2"} }, req: req(features.ChannelApp, "2026-11-15T10:00:00+08:00", ""), want: WrongStore},
		{name: "an online offer with a store list ignores the home store online", edit: func(o *Offer) { o.Stores, o.Fulfilment = []string{"S2"}, Online }, view: consented, req: req(features.ChannelApp, "2026-11-15T10:00:00+08:00", ""), want: Eligible},
		{
			name: "declared phases restrict the offer to them", view: consented, req: req(features.ChannelApp, "2026-11-15T10:00:00+08:00", ""), want: OutsidePhases,
			edit: func(o *Offer) {
				o.Phases[Preheat] = Span{From: ms("2026-11-01T00:00:00+08:00"), To: ms("2026-11-11T00:00:00+08:00")}
				o.Phases[Burst] = Span{From: ms("2026-11-20T00:00:00+08:00"), To: ms("2026-11-25T00:00:00+08:00")}
			},
		},
		{
			name: "inside a phase the offer is eligible and reports the phase", view: consented, req: req(features.ChannelApp, "2026-11-21T10:00:00+08:00", ""), want: Eligible, phase: Burst,
			edit: func(o *Offer) {
				o.Phases[Preheat] = Span{From: ms("2026-11-01T00:00:00+08:00"), To: ms("2026-11-11T00:00:00+08:00")}
				o.Phases[Burst] = Span{From: ms("2026-11-20T00:00:00+08:00"), To: ms("2026-11-25T00:00:00+08:00")}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := offer()
			if tc.edit != nil {
				tc.edit(o)
			}
			require.Equal(t, tc.want, o.EligibleFor(&tc.view, tc.req))
			require.Equal(t, tc.phase, o.PhaseAt(tc.req.Now))
		})
	}
}

func TestTemplates(t *testing.T) {
	cases := []struct {
		name, src, want, err string
	}{
		{name: "placeholders quote features", src: "看了 {category} {views} 次", want: "看了 phones 3 次"},
		{name: "double braces are literal braces", src: "{{not a placeholder}} {orders}", want: "{not a placeholder} 2"},
		{name: "the offer placeholder is the offer's title", src: "{offer} at {pickup_store}", want: "Free trial at S9"},
		{name: "booleans and negatives render plainly", src: "{member} {recency_days}", want: "true -1"},
		{name: "an unknown placeholder is an error with a suggestion", src: "{categry}", err: `unknown placeholder {categry} (did you mean "category"?)`},
		{name: "functions are not placeholders", src: "{count}", err: "unknown placeholder {count}"},
		{name: "an unclosed placeholder is an error", src: "a {views", err: "unclosed placeholder"},
		{name: "a stray closing brace is an error", src: "a } b", err: "stray }"},
	}
	env := Env{Category: "phones", Views: 3, Orders: 2, PickupStore: "S9", Member: true, RecencyDays: -1}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := compileTemplate(tc.src)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			var b strings.Builder
			tpl.render(&b, &env, "Free trial")
			require.Equal(t, tc.want, b.String())
		})
	}
}

const oneOffer = `offers:
  - id: coupon_a
    type: coupon
    title: {zh-CN: 优惠券, en: Coupon}
    text: {zh-CN: 立减 10 元, en: 10 off}
    channels: [app]
`

func TestLoadAcrossFiles(t *testing.T) {
	scenario := func(id string) string {
		return "scenarios:\n  - id: " + id + "\n    offers: [coupon_a]\n    channels: [app]\n    trigger: both\n    reason: {zh-CN: 原因, en: reason}\n"
	}
	t.Run("offers and scenarios may live in different files", func(t *testing.T) {
		set, err := Load(fstest.MapFS{"a.yaml": {Data: []byte(oneOffer)}, "b.yml": {Data: []byte(scenario("s1"))}, "notes.txt": {Data: []byte("ignored")}}, time.Unix(0, 0))
		require.NoError(t, err)
		require.Equal(t, "coupon_a", set.Scenario("s1").Offers[0].ID)
		require.Equal(t, "", set.Scenario("s1").When(), "no when: always fires")
	})
	t.Run("duplicate ids across files name both places", func(t *testing.T) {
		_, err := Load(fstest.MapFS{"a.yaml": {Data: []byte(oneOffer + scenario("s1")[len("scenarios:\n"):])}, "b.yaml": {Data: []byte(oneOffer)}}, time.Unix(0, 0))
		require.ErrorContains(t, err, `b.yaml:2: duplicate offer id "coupon_a" (first defined at a.yaml:2)`)
	})
	t.Run("an empty directory is an error that says what to do", func(t *testing.T) {
		_, err := Load(fstest.MapFS{"readme.md": {Data: []byte("x")}}, time.Unix(0, 0))
		require.ErrorContains(t, err, "nbo rules export DIR")
	})
	t.Run("errors of several files are all reported", func(t *testing.T) {
		_, err := Load(fstest.MapFS{"a.yaml": {Data: []byte(oneOffer + "    colour: red\n")}, "b.yaml": {Data: []byte("offers: 3\n")}}, time.Unix(0, 0))
		require.ErrorContains(t, err, `a.yaml:7: unknown key "colour"`)
		require.ErrorContains(t, err, "b.yaml:1: offers must be a list")
	})
}

// TestRunTimeMemoryBudget: an expression that passes the static limits
// but builds too much at run time stops at the VM's memory budget and
// counts as false instead of stalling the request.
func TestRunTimeMemoryBudget(t *testing.T) {
	src := oneOffer + `scenarios:
  - id: heavy
    when: "len(map(1..1000, map(1..10, # + orders))) > 0"
    offers: [coupon_a]
    channels: [app]
    trigger: both
    reason: {zh-CN: 原因, en: reason}
  - id: light
    when: "len(map(1..10, # + orders)) > 0"
    offers: [coupon_a]
    channels: [app]
    trigger: both
    reason: {zh-CN: 原因, en: reason}
`
	set, err := Load(fstest.MapFS{"a.yaml": {Data: []byte(src)}}, time.Unix(0, 0))
	require.NoError(t, err)
	v := features.View{}
	out := set.Evaluate(&v, &Request{Channel: features.ChannelApp, Now: 1, Trigger: OnRequest}, nil)
	require.Len(t, out, 1)
	require.Equal(t, "light", out[0].Scenario.ID)
}

func TestEvaluateListensToTriggerAndChannel(t *testing.T) {
	src := oneOffer + `scenarios:
  - id: on_event_only
    offers: [coupon_a]
    channels: [app]
    trigger: on_event
    reason: {zh-CN: 原因, en: reason}
  - id: on_request_only
    offers: [coupon_a]
    channels: [app, web]
    trigger: on_request
    reason: {zh-CN: 原因, en: "r {offer}"}
`
	set, err := Load(fstest.MapFS{"a.yaml": {Data: []byte(src)}}, time.Unix(0, 0))
	require.NoError(t, err)
	var v features.View
	ids := func(out []Proposal) []string {
		var s []string
		for _, p := range out {
			s = append(s, p.Scenario.ID)
		}
		return s
	}
	require.Equal(t, []string{"on_event_only"}, ids(set.Evaluate(&v, &Request{Channel: features.ChannelApp, Trigger: OnEvent, Now: 1}, nil)))
	req := &Request{Channel: features.ChannelApp, Trigger: OnRequest, Now: 1}
	out := set.Evaluate(&v, req, nil)
	require.Equal(t, []string{"on_request_only"}, ids(out))
	require.Equal(t, "r Coupon", set.Reason(&out[0], &v, req, En))
	require.Empty(t, set.Evaluate(&v, &Request{Channel: features.ChannelWeb, Trigger: OnRequest, Now: 1}, nil), "the offer is not shown on the web")
	require.Len(t, set.Explain(&v, &Request{Channel: features.ChannelWeb, Trigger: OnRequest, Now: 1}), 1)
}
