package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"nbo/features"
	"nbo/scenarios"
)

// Replaying the decision log after a restart.
//
// Offer requests change state that is not in nbo.events: the budget
// reservations a decision takes (Budgets), the contacts it claims (the
// Policy ledger) and the records attribution keeps (Stats). A snapshot
// holds them as they were when it was written; what decisions did after
// that is in nbo.decisions, and a Replayer rebuilds it from there:
//
//   - a reservation is re-created unless the ledger still holds it (the
//     snapshot already had it: Budgets are keyed by offer and decision ID)
//     or its time is up at the replay's now (it would have returned to
//     the budget by now). It is re-created even where the budget is now
//     exhausted: the offer was issued and the customer holds the coupon.
//     It goes under the store the decision reserved it under (logged per
//     offer), not the customer's store at the snapshot, which may have
//     changed before the decision; records from before that was logged
//     fall back to the latter (Replayer.store).
//   - contacts are counted per customer, channel and millisecond: the
//     replay adds only as many as the ledger is missing for that instant
//     across the whole run, so a contact the snapshot already had, or one
//     a previous replay added, is not counted twice.
//   - attribution records go through the decision and offer ID key of
//     Stats, which ignores repeats; the holdout's empty decisions are
//     recorded as the engine records them.
//   - the customer a record names is resolved through the feature store
//     as restored (Replayer.customer): a customer merged into another
//     since the decision is replayed as the survivor, whose ledger and
//     records the snapshot already moved theirs to (OnApplied), and an
//     erased one as no one: the reservations of their offers come back
//     (the coupons were issued and may be redeemed), their attribution
//     records come back anonymous, as Stats.Forget leaves them, and no
//     contact is counted. A customer the store does not know and that
//     was not erased is one the events after the snapshot create: the
//     record's key is theirs.
//
// Nothing is published, no scenario is evaluated and nothing is explored
// or sampled: the log says what was decided. The bandit's trial counts
// and the engine's counters are not rebuilt (learning and metrics, not
// limits). Push triggers are not in nbo.decisions: they are raised again
// by the events replayed after the snapshot, as before.
//
// Replay the decisions before the ingest loop applies the events that
// follow the snapshot, so a redemption finds the reservation it spends.

// ReplayPoint says where a restart resumes reading nbo.decisions: the
// snapshot section "engine.decisions" holds it.
//
// Ordering: when a snapshot is taken, the decision publisher is flushed
// first (TopicPublisher.Flush), then the topic's end offsets are read,
// then the engine's records are moved into Stats (FlushRecords) and only
// then are the sections encoded. A decision takes its reservation and its
// contacts, and queues its attribution record, before it is published, so
// every record below Offsets was made by a decision whose state is in the
// snapshot. Records at or above Offsets may be partly in it too (decisions
// made while the sections were encoded, or still in the publisher's
// buffer when it was flushed): the replay is idempotent for those.
type ReplayPoint struct {
	// At is when the point was taken (Unix ms).
	At int64
	// Offsets are, per partition of nbo.decisions, the end offset when
	// the snapshot was taken: the first record to replay.
	Offsets map[int]int64
}

const replayPointVersion = 1

// MarshalBinary encodes the point for the snapshot.
func (p *ReplayPoint) MarshalBinary() ([]byte, error) {
	w := snapWriter{buf: []byte{replayPointVersion}}
	w.varint(p.At)
	parts := make([]int, 0, len(p.Offsets))
	for part := range p.Offsets {
		parts = append(parts, part)
	}
	sort.Ints(parts)
	w.uvarint(uint64(len(parts)))
	for _, part := range parts {
		w.uvarint(uint64(part))
		w.varint(p.Offsets[part])
	}
	return w.buf, nil
}

// UnmarshalBinary decodes a point written by MarshalBinary.
func (p *ReplayPoint) UnmarshalBinary(data []byte) error {
	r := snapReader{buf: data}
	if v := r.byte(); v != replayPointVersion {
		return fmt.Errorf("restoring the decision log position: version %d: %w", v, ErrCorruptState)
	}
	at := r.varint()
	n := r.count()
	offsets := make(map[int]int64, n)
	for i := 0; i < n && r.err == nil; i++ {
		part := r.uvarint()
		off := r.varint()
		if part > 1<<20 || off < 0 {
			r.fail()
			break
		}
		offsets[int(part)] = off
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("restoring the decision log position: %w", err)
	}
	p.At, p.Offsets = at, offsets
	return nil
}

// FlushRecords moves the attribution records of decisions already made
// into Stats (they are otherwise moved every millisecond or so). The
// snapshot calls it after reading the decision log's end offsets, so the
// records of every decision below them are in the Stats it encodes.
func (e *Engine) FlushRecords() {
	if e.records != nil {
		e.records.flush()
	}
}

// ReplayStats count what a replay did.
type ReplayStats struct {
	Decisions int // records replayed
	Skipped   int // records older than Since
	Malformed int // records that could not be read (left alone)

	Reserved int // reservations re-created
	Held     int // reservations the ledger already held
	Expired  int // reservations not re-created: their time was up

	Contacts int // contacts added to the ledger
	Recorded int // attribution records added (repeats are not counted)

	Merged int // decisions replayed for the customer their customer merged into
	Erased int // decisions of erased customers, replayed naming no one
}

// Replayer rebuilds the state logged decisions made; see the comment at
// the top of this file. Use one per replay (contacts are counted across
// it), from one goroutine, before the ingest loop runs.
type Replayer struct {
	e   *Engine
	now int64
	// Since, when set, skips records of decisions made before it (Unix
	// ms).
	Since int64
	Stats ReplayStats

	need map[contactKey]int
	view features.View
}

type contactKey struct {
	customer features.Key
	ch       features.Channel
	ts       int64
}

// NewReplayer returns a replayer; now decides which reservations have
// expired.
//
// The replay tells an erased customer from one not yet in the store by
// the feature store's erase tombstones (Store.Erased). They are kept for
// the allowed lateness past the erase; an erase older than that is
// forgotten again when its event, after the snapshot, is applied.
func (e *Engine) NewReplayer(now time.Time) *Replayer {
	return &Replayer{e: e, now: now.UnixMilli(), need: map[contactKey]int{}}
}

// Replay rebuilds the state one nbo.decisions record made. A record that
// cannot be read is counted in Stats.Malformed and reported.
func (r *Replayer) Replay(record []byte) error {
	var l decisionLog
	if err := json.Unmarshal(record, &l); err != nil {
		r.Stats.Malformed++
		return fmt.Errorf("replaying a decision: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, l.TS)
	ch, okCh := features.ParseChannel(l.Channel)
	if l.DecisionID == "" || err != nil || !okCh {
		r.Stats.Malformed++
		return fmt.Errorf("replaying decision %q: bad decision_id, ts %q or channel %q", l.DecisionID, l.TS, l.Channel)
	}
	ts := t.UnixMilli()
	if ts < r.Since {
		r.Stats.Skipped++
		return nil
	}
	r.Stats.Decisions++
	e := r.e
	customer := r.customer(features.Key(l.Customer))
	if len(l.Offers) == 0 {
		if l.Group == GroupHoldout {
			// The control group is recorded even when it gets nothing.
			r.record(DecisionRecord{DecisionID: l.DecisionID, Customer: customer, Channel: ch, Group: l.Group, TS: ts})
		}
		return nil
	}
	var set *scenarios.Set
	if e.opts.Scenarios != nil {
		set = e.opts.Scenarios()
	}
	// legacy is the store worked out for records without
	// served[].reserved_store, looked up once per decision.
	legacy, looked := "", false
	offers := make([]string, 0, len(l.Offers))
	for i, lo := range l.Offers {
		var o *scenarios.Offer
		if set != nil {
			o = set.Offer(lo.OfferID)
		}
		var served servedLog
		if i < len(l.Served) && l.Served[i].OfferID == lo.OfferID {
			served = l.Served[i]
		} else if o != nil { // a record from before Served was logged
			served.Value = o.Value
		}
		store := ""
		if served.ReservedStore != nil {
			store = *served.ReservedStore
		} else {
			if !looked {
				legacy, looked = r.store(&l, customer, ts), true
			}
			store = legacy
		}
		if o != nil && budgeted(o) {
			expires := served.Expires
			if expires == 0 {
				expires = ts + e.reservationTTL(o, ts).Milliseconds()
			}
			switch e.opts.Budgets.replayReservation(lo.OfferID, store, l.DecisionID, expires, r.now) {
			case reservationAdded:
				r.Stats.Reserved++
			case reservationHeld:
				r.Stats.Held++
			case reservationExpired:
				r.Stats.Expired++
			}
		}
		offers = append(offers, lo.OfferID)
		rec := DecisionRecord{DecisionID: l.DecisionID, Customer: customer, Scenario: lo.Scenario, OfferID: lo.OfferID,
			Channel: ch, Store: store, Group: l.Group, TS: ts, Value: served.Value, Segment: segmentName(l.Segment)}
		if o != nil {
			rec.Cost = o.Cost
		}
		r.record(rec)
	}
	if customer != "" { // the engine claims contacts for known customers only
		k := contactKey{customer, ch, ts}
		r.need[k] += len(offers)
		r.Stats.Contacts += e.opts.Policy.replayContacts(customer, ch, offers, ts, r.need[k])
	}
	return nil
}

// customer is the key the state of a decision logged for the customer
// logged goes under: the canonical key of the customer that owns it now
// (the survivor of a merge since), "" for an erased customer (nothing is
// linked to them again), and logged itself for a customer the store does
// not know yet.
func (r *Replayer) customer(logged features.Key) features.Key {
	if logged == "" {
		return ""
	}
	if k, ok := r.e.opts.Store.ResolveKey(logged); ok {
		if k != logged {
			r.Stats.Merged++
		}
		return k
	}
	if r.e.opts.Store.Erased(logged) {
		r.Stats.Erased++
		return ""
	}
	return logged
}

// store works out the store a decision's candidates were served for
// (scenarios.FulfilmentStore at decision time) from a record that does
// not say (no served[].reserved_store: written before it existed): the
// request's, else an in-store offer's fulfilment store, else the
// customer's home or last store as the feature store has it now — at the
// snapshot, which is not the decision's store if it changed in between.
func (r *Replayer) store(l *decisionLog, customer features.Key, ts int64) string {
	if l.Store != "" {
		return l.Store
	}
	for _, s := range l.Served {
		if s.Store != "" {
			return s.Store
		}
	}
	if customer == "" || !r.e.opts.Store.ViewKey(customer, ts, &r.view) {
		return ""
	}
	return scenarios.FulfilmentStore(&r.view, &scenarios.Request{})
}

func (r *Replayer) record(d DecisionRecord) {
	if s := r.e.opts.Stats; s != nil && s.RecordDecision(d) {
		r.Stats.Recorded++
	}
}

type reservationReplay int

const (
	reservationAdded reservationReplay = iota
	reservationHeld
	reservationExpired
)

// replayReservation re-creates a logged decision's reservation: not when
// the ledger holds it already, nor when it expired at or before now, and
// regardless of the limits (the offer was issued).
func (b *Budgets) replayReservation(offerID, store, decisionID string, expires, now int64) reservationReplay {
	ob := b.getOrCreate(offerID)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if _, ok := ob.live[decisionID]; ok {
		return reservationHeld
	}
	if expires <= now {
		return reservationExpired
	}
	ob.holdLocked(&heldUnit{r: Reservation{OfferID: offerID, Store: store, DecisionID: decisionID, Expires: expires, Value: ob.unitValue}})
	return reservationAdded
}

// replayContacts makes the customer's ledger hold need contacts on ch at
// instant ts (the served offers of every replayed decision at that instant
// so far) and notes each offer's contact, as Claim would have; it reports
// how many contacts it added. Contacts the ledger already holds at ts are
// counted first, so replaying what the snapshot has, or replaying twice,
// adds nothing.
func (p *Policy) replayContacts(customer features.Key, ch features.Channel, offers []string, ts int64, need int) int {
	s := p.shard(customer)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[customer]
	if l == nil {
		l = &contactLog{}
		s.logs[customer] = l
	}
	added := 0
	if ch < features.NumChannels && p.need[ch] > 0 {
		have := 0
		for _, t := range l.ch[ch] {
			if t == ts {
				have++
			}
		}
		for ; have < need; have++ {
			l.ch[ch] = insertNewest(l.ch[ch], ts, p.need[ch])
			added++
		}
	}
	for _, id := range offers {
		if id != "" {
			l.offers = noteOffer(l.offers, offerContact{id, ts}, p.opts.MaxOffers)
		}
	}
	return added
}
