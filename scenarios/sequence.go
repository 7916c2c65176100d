package scenarios

import (
	"slices"
	"time"

	"nbo/features"
)

// Sequence is the condition "an event A, then no event B within d": it
// holds once the absence window after the newest A has closed without a B
// on any channel. Written in a scenario as
//
//	after:  {types: [product_view], class: online, category: each, within: 7d}
//	absent: {types: [order, pos_purchase], within: 48h}
//
// Because it becomes true when the window closes rather than when an
// event arrives, the engine asks NextWake for the instant to re-evaluate
// push scenarios (a timer), not only on events and requests.
type Sequence struct {
	After         []features.EventType
	AfterClass    features.Class // classAny for both
	AfterCategory string         // "" for any category
	EachCategory  bool           // the for_each item's category
	// AfterWithin bounds how old the A event may be when the scenario
	// fires; 0 is unbounded.
	AfterWithin time.Duration
	Absent      []features.EventType
	// AbsentWithin is the window after A in which no B may happen.
	AbsentWithin time.Duration
	// SameCategory restricts B to A's category; otherwise B in any
	// category counts (a purchase of anything).
	SameCategory bool
}

// lastMatch returns the newest time of an event of one of types in class
// (classAny for both) and category ("" for any).
func lastMatch(v *features.View, types []features.EventType, class features.Class, category string) int64 {
	var last int64
	if category == "" {
		if class == classAny {
			for _, t := range types {
				last = max(last, v.LastSeen[t])
			}
			return last
		}
		for i := range v.Keys {
			k := &v.Keys[i]
			if k.Class == class && slices.Contains(types, k.Type) {
				last = max(last, k.Last)
			}
		}
		// Events without a category are only in the recent list.
		for i := range v.Recent {
			r := &v.Recent[i]
			if r.Channel.Class() == class && slices.Contains(types, r.Type) {
				last = max(last, r.TS)
				break
			}
		}
		return last
	}
	lo, hi := categoryRange(v.Keys, category)
	return lastMatchKeys(v.Keys[lo:hi], types, class)
}

// lastMatchKeys is lastMatch over the keys of one category.
func lastMatchKeys(keys []features.KeyStats, types []features.EventType, class features.Class) int64 {
	var last int64
	for i := range keys {
		k := &keys[i]
		if (class == classAny || k.Class == class) && slices.Contains(types, k.Type) {
			last = max(last, k.Last)
		}
	}
	return last
}

// state returns the newest A (0 when none qualifies) and whether a B
// happened at or after it.
//
// itemKeys, when not nil, are the View.Keys of item (found once per item
// by the evaluator).
func (q *Sequence) state(v *features.View, item string, itemKeys []features.KeyStats) (a int64, broken bool) {
	cat := q.AfterCategory
	if q.EachCategory {
		cat = item
		if cat == "" {
			return 0, false
		}
	}
	if q.EachCategory && itemKeys != nil {
		a = lastMatchKeys(itemKeys, q.After, q.AfterClass)
	} else {
		a = lastMatch(v, q.After, q.AfterClass, cat)
	}
	if a == 0 {
		return 0, false
	}
	bcat := ""
	if q.SameCategory {
		bcat = cat
	}
	var b int64
	if q.SameCategory && q.EachCategory && itemKeys != nil {
		b = lastMatchKeys(itemKeys, q.Absent, classAny)
	} else {
		b = lastMatch(v, q.Absent, classAny, bcat)
	}
	return a, b >= a
}

// holds reports whether the sequence is satisfied at now.
func (q *Sequence) holds(v *features.View, now int64, item string, itemKeys []features.KeyStats) bool {
	a, broken := q.state(v, item, itemKeys)
	if a == 0 || broken {
		return false
	}
	if q.AfterWithin > 0 && a < now-q.AfterWithin.Milliseconds() {
		return false
	}
	return now >= a+q.AbsentWithin.Milliseconds()
}

// Closes returns the instant the absence window after the newest A closes
// if it is still open at now and nothing has broken it yet: the earliest
// time the sequence can newly hold. It returns 0 when there is nothing to
// wait for (no A, a B already happened, the window already closed, or A
// would be too old by then).
func (q *Sequence) Closes(v *features.View, now int64, item string) int64 {
	a, broken := q.state(v, item, nil)
	if a == 0 || broken {
		return 0
	}
	at := a + q.AbsentWithin.Milliseconds()
	if at <= now {
		return 0
	}
	if q.AfterWithin > 0 && a < at-q.AfterWithin.Milliseconds() {
		return 0
	}
	return at
}

// Wake is a timer the engine should set: at instant At, re-evaluate the
// customer with an on_event request because Scenario's absence window
// (for the for_each Item) closes then.
type Wake struct {
	At       int64
	Scenario *Scenario
	Item     string
}

// NextWake returns the earliest instant after now at which an on_event
// scenario with a sequence could newly fire for the customer, or a Wake
// with At == 0 when none is pending. Call it after every applied event
// and after every wake-up; a later event that breaks the sequence simply
// makes the wake-up evaluate to nothing.
func (s *Set) NextWake(v *features.View, now int64) Wake {
	var w Wake
	for _, sc := range s.Scenarios {
		if sc.Sequence == nil || sc.Trigger&OnEvent == 0 {
			continue
		}
		n := 1
		if sc.Sequence.EachCategory {
			n = items(sc.ForEach, v)
		}
		for i := 0; i < n; i++ {
			item := ""
			if sc.Sequence.EachCategory {
				item = itemCategory(sc.ForEach, v, i)
			}
			if at := sc.Sequence.Closes(v, now, item); at != 0 && (w.At == 0 || at < w.At) {
				w = Wake{At: at, Scenario: sc, Item: item}
			}
		}
	}
	return w
}

// itemCategory is the category of item i of a for_each source.
func itemCategory(src ForEach, v *features.View, i int) string {
	switch src {
	case EachViewedNotBought:
		return v.ViewedNotBought[i].Name
	case EachCart:
		return v.Cart[i].Category
	case EachVisitCategory:
		return v.LastVisit.Categories[i]
	}
	return ""
}
