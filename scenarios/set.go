package scenarios

import (
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"

	"nbo/features"
)

// Trigger is when a scenario is evaluated: on a request for offers, after
// an applied event (a push trigger), or both.
type Trigger uint8

const (
	OnRequest Trigger = 1 << iota // a request for offers (apps, web, store tablets)
	OnEvent                       // after an event was applied: may publish a push trigger
	Both      = OnRequest | OnEvent
)

func (t Trigger) String() string {
	switch t {
	case OnRequest:
		return "on_request"
	case OnEvent:
		return "on_event"
	case Both:
		return "both"
	}
	return "none"
}

// ForEach names the list a scenario is expanded over: it fires once per
// item, with the item bound to category/sku/views in expressions and
// reasons.
type ForEach uint8

const (
	NoForEach              ForEach = iota
	EachViewedNotBought            // categories viewed within 30 days and not bought since
	EachViewedNotBoughtSKU         // SKUs viewed within 30 days and not bought since
	EachCart                       // lines of the current cart
	EachVisitCategory              // categories of the newest store visit
	numForEach
)

var forEachNames = [numForEach]string{"", "viewed_not_bought", "viewed_not_bought_sku", "cart", "visit_categories"}

func (f ForEach) String() string { return forEachNames[f] }

// Scenario is one compiled rule: when it fires and which offers it
// proposes, for what reason.
type Scenario struct {
	ID          string
	Description string
	Priority    int
	Channels    features.ChannelMask
	Trigger     Trigger
	ForEach     ForEach
	Offers      []*Offer
	// Sequence is the optional "A, then no B within d" condition.
	Sequence *Sequence

	when    *vm.Program // nil: always
	whenSrc string
	reason  [NumLocales]*template
	// Index is the scenario's position in its Set's Scenarios.
	Index int
	File  string
	Line  int
}

// When returns the scenario's condition as written ("" for none).
func (s *Scenario) When() string { return s.whenSrc }

// Request is the context of one evaluation.
type Request struct {
	Channel   features.Channel
	Placement string
	Store     string
	Now       int64   // Unix ms
	Trigger   Trigger // OnRequest or OnEvent; zero means OnRequest
	// Loc is the local time zone of hour, weekday and evening.
	// Default: UTC+8 (China Standard Time).
	Loc *time.Location
	// Score returns a model score by name; nil or false means no model
	// provides it and score() returns -1. Scores arrive as data: this
	// package never imports models.
	Score func(name string) (float64, bool)
	// InStock reports whether store stocks sku; nil means no inventory
	// feed is wired and in_stock() is true.
	InStock func(store, sku string) bool
	// Refused, indexed by Offer.Index, marks the offers that cannot be
	// served to this request: those EligibleFor refuses and those the
	// caller's own rules refuse (the engine's contact policy: caps,
	// cooldowns, suppression). They are not proposed, a scenario whose
	// offers are all refused is not evaluated at all, and eligibility is
	// not checked again. nil: Evaluate checks eligibility itself.
	Refused []bool
}

// Proposal is one offer a firing scenario proposes. It points into the
// Set it came from, which stays valid as long as the proposal is held.
type Proposal struct {
	Scenario *Scenario
	Offer    *Offer
	Item     string // the for_each item (category or SKU); "" without for_each
	Priority int
	// Blocked is why the offer failed the pure eligibility rules; only
	// Explain returns blocked proposals (Evaluate drops them).
	Blocked Ineligible
	// itemIndex lets Reason rebind the item without searching.
	itemIndex int
}

// Set is an immutable compiled library: scenarios in file order, the
// offer catalog and the resolved count slots. Share it freely between
// goroutines.
type Set struct {
	Version   string // hex content hash of the loaded files
	LoadedAt  time.Time
	Scenarios []*Scenario
	Offers    []*Offer
	offerByID map[string]*Offer
	byID      map[string]*Scenario
	slots     []slot
	cmps      []cmpSlot
	// needCompared: an expression reads compared_skus.
	needCompared bool
	pool         sync.Pool
	files        map[string][]byte // the source files, for export
}

// Offer returns the offer with id, or nil.
func (s *Set) Offer(id string) *Offer { return s.offerByID[id] }

// Scenario returns the scenario with id, or nil.
func (s *Set) Scenario(id string) *Scenario { return s.byID[id] }

func (s *Set) state() *evalState {
	if st, ok := s.pool.Get().(*evalState); ok {
		return st
	}
	return newEvalState(s)
}

func (s *Set) release(st *evalState) {
	st.view, st.req = nil, nil
	s.pool.Put(st)
}

// vmPool holds expr VMs; a VM is reusable across programs and keeps its
// stack between runs.
var vmPool = sync.Pool{New: func() any { return &vm.VM{MemoryBudget: runMemoryBudget} }}

// runMemoryBudget bounds what one expression run may allocate in expr's
// accounting (array elements, range sizes, map entries).
const runMemoryBudget = 10_000

// Evaluate appends to out the proposals of every scenario that fires for
// the customer view v and request req: the scenario listens to the
// request's trigger kind and channel, its sequence holds, its when
// condition is true (per for_each item) and the offer passes the pure
// eligibility rules (EligibleFor). Proposals come in scenario file order,
// items in the view's order. It allocates nothing beyond growing out.
//
// An expression that fails at run time (a memory budget overrun) is
// treated as false.
func (s *Set) Evaluate(v *features.View, req *Request, out []Proposal) []Proposal {
	return s.evaluate(v, req, out, false)
}

// Explain is Evaluate that also returns the proposals blocked by the
// eligibility rules, with Blocked saying why: for golden tests, the rules
// CLI and the customer 360 view. It allocates.
func (s *Set) Explain(v *features.View, req *Request) []Proposal {
	return s.evaluate(v, req, nil, true)
}

func (s *Set) evaluate(v *features.View, req *Request, out []Proposal, explain bool) []Proposal {
	refused := req.Refused
	if explain {
		refused = nil // every proposal, with why it is blocked
	}
	st := s.state()
	m := vmPool.Get().(*vm.VM)
	st.fill(v, req)
	trigger := req.Trigger
	if trigger == 0 {
		trigger = OnRequest
	}
	for _, sc := range s.Scenarios {
		if sc.Trigger&trigger == 0 || !sc.Channels.Has(req.Channel) {
			continue
		}
		if refused != nil && !sc.proposesAny(refused) {
			continue
		}
		n := items(sc.ForEach, v)
		for i := 0; i < n; i++ {
			if sc.ForEach != NoForEach {
				st.setItem(sc.ForEach, i)
			}
			if sc.Sequence != nil && !sc.Sequence.holds(v, req.Now, st.env.Category, st.itemKeys) {
				continue
			}
			if !st.run(m, sc.when) {
				continue
			}
			item := st.env.itemName(sc.ForEach)
			for _, o := range sc.Offers {
				why := Eligible
				if refused != nil {
					if refused[o.Index] {
						continue
					}
				} else if why = o.EligibleFor(v, req); why != Eligible && !explain {
					continue
				}
				out = append(out, Proposal{Scenario: sc, Offer: o, Item: item, Priority: sc.Priority, Blocked: why, itemIndex: i})
			}
		}
		if sc.ForEach != NoForEach {
			st.clearItem()
		}
	}
	vmPool.Put(m)
	s.release(st)
	return out
}

// proposesAny reports whether any of the scenario's offers is not
// refused.
func (sc *Scenario) proposesAny(refused []bool) bool {
	for _, o := range sc.Offers {
		if !refused[o.Index] {
			return true
		}
	}
	return false
}

func (st *evalState) run(m *vm.VM, p *vm.Program) bool {
	if p == nil {
		return true
	}
	r, err := m.Run(p, &st.env)
	if err != nil {
		return false
	}
	b, _ := r.(bool)
	return b
}
