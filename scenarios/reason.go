package scenarios

import (
	"reflect"
	"strings"

	"nbo/features"
)

func reflectName(i int) string { return reflect.TypeFor[Env]().Field(i).Tag.Get("expr") }

// Reason renders the plain-language reason of a proposal in a locale, with
// the features quoted as they are in v for req. It is lazy: call it only
// for the offers finally chosen. v and req must be those the proposal was
// evaluated with (the for_each item is found again by position).
func (s *Set) Reason(p *Proposal, v *features.View, req *Request, loc Locale) string {
	sc := p.Scenario
	if loc >= NumLocales || sc == nil || sc.reason[loc] == nil {
		return ""
	}
	st := s.state()
	defer s.release(st)
	st.fill(v, req)
	st.full = true
	if sc.ForEach != NoForEach && p.itemIndex < items(sc.ForEach, v) {
		st.setItem(sc.ForEach, p.itemIndex)
	}
	var b strings.Builder
	title := ""
	if p.Offer != nil {
		title = p.Offer.Title[loc]
	}
	sc.reason[loc].render(&b, &st.env, title)
	return b.String()
}
