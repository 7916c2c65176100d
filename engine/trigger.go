package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"nbo/features"
)

// TriggerID is the deterministic ID of the trigger a scenario raises for
// an offer because of one event: the same customer, scenario, offer and
// event always give the same ID, so replaying the events (after a crash,
// or on another replica) yields the same ID and the push service can drop
// the repeat. Fields are length-prefixed before hashing, so no two
// different inputs collide by concatenation. The ID is "tr_" and 32 hex
// digits (128 bits of SHA-256).
func TriggerID(customer features.Key, scenario, offerID, eventID string) string {
	return hashID("tr_", "trigger", string(customer), scenario, offerID, eventID)
}

// TriggerDecisionID is the decision ID of a trigger: derived from the
// trigger ID, so it is as stable across replays as the trigger itself, and
// the outcomes that carry it (push_open, coupon_redeem) find the decision.
// It is "dt_" and 32 hex digits.
func TriggerDecisionID(triggerID string) string {
	return hashID("dt_", "decision", triggerID)
}

func hashID(prefix, domain string, fields ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, f := range append([]string{domain}, fields...) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
		h.Write([]byte(f))
	}
	var sum [sha256.Size]byte
	out := make([]byte, len(prefix), len(prefix)+32)
	copy(out, prefix)
	return string(hex.AppendEncode(out, h.Sum(sum[:0])[:16]))
}

// TriggerVersion is the schema version nbo writes in every trigger's "v"
// field. docs/triggers.md is the contract; a change to a field's meaning,
// or a new field, is a new version (DecodeTrigger, like a strict consumer,
// refuses fields it does not know).
//
// The version is a field rather than a Kafka header so that it travels
// with the JSON wherever a trigger is copied (a dead-letter topic, a log
// line, a replay tool that keeps only values), and so that Publisher stays
// key and value. The decision log on nbo.decisions has no version of its
// own (a record from before a field existed is told by the field's
// absence, servedLog.ReservedStore); triggers leave the consumer, another
// team's service, so they say what they are.
const TriggerVersion = 1

// Trigger is the message published to the push service on nbo.triggers,
// keyed by the canonical customer ID (Key). Every field is a function of
// the events, the scenario set and the catalog, the engine's options and
// the contact policy, so a replay of the same events (same trigger ID)
// encodes the same bytes.
type Trigger struct {
	// Version is the schema version: TriggerVersion for what nbo
	// publishes, 0 for a message from before the field existed (it has no
	// Value, Expiry or NotAfter).
	Version    int
	TriggerID  string
	Customer   features.Key
	Scenario   string
	OfferID    string
	Channel    features.Channel
	Locale     string // zh-CN or en
	Title      string // in Locale
	Text       string // in Locale
	DecisionID string
	CouponCode string // what a store till scans to redeem the offer
	EventID    string // the event that made the scenario fire, or "wake@<Unix ms>"
	TS         int64  // Unix ms: the event time of that event (a wake-up's instant)
	// Value is the offer's value in minor currency units, as /v1/decide
	// gives it.
	Value int64
	// Expiry is when the offer (and its coupon code) stops being
	// redeemable, Unix ms, as /v1/decide gives it for an offer served at
	// TS: its budget reservation's end.
	Expiry int64
	// FulfilmentStore is the store an in-store offer is fulfilled at; ""
	// for an online offer.
	FulfilmentStore string
	// NotAfter is the last instant (Unix ms) at which the push may be
	// sent: the earliest of TS + Options.TriggerMaxAge (after it nbo would
	// not have raised the trigger at all), the start of the next push
	// quiet hours in the store's time zone (nbo checked quiet hours at TS,
	// not at delivery) and Expiry.
	NotAfter int64
}

// NewTrigger returns the push trigger for a scenario firing on one event,
// with its version, deterministic TriggerID, DecisionID and coupon code
// filled in; the caller adds the locale, title, text and the offer's
// terms.
func NewTrigger(customer features.Key, scenario, offerID, eventID string, ts int64) Trigger {
	id := TriggerID(customer, scenario, offerID, eventID)
	return Trigger{
		Version:   TriggerVersion,
		TriggerID: id, Customer: customer, Scenario: scenario, OfferID: offerID,
		Channel: features.ChannelPush, DecisionID: TriggerDecisionID(id), EventID: eventID, TS: ts,
		CouponCode: CouponCode(TriggerDecisionID(id), offerID),
	}
}

// triggerWire is the JSON form of a Trigger. Times are RFC 3339 with
// milliseconds in UTC, like events. The pointers tell an absent field from
// a zero one, so that DecodeTrigger can require the version-1 fields of a
// version-1 message and refuse them in an unversioned one.
type triggerWire struct {
	V               *int    `json:"v,omitempty"`
	TriggerID       string  `json:"trigger_id"`
	Customer        string  `json:"customer"`
	Scenario        string  `json:"scenario"`
	OfferID         string  `json:"offer_id"`
	Channel         string  `json:"channel"`
	Locale          string  `json:"locale"`
	Title           string  `json:"title"`
	Text            string  `json:"text"`
	DecisionID      string  `json:"decision_id"`
	CouponCode      string  `json:"coupon_code,omitempty"`
	Value           *int64  `json:"value,omitempty"`
	Expiry          *string `json:"expiry,omitempty"`
	FulfilmentStore string  `json:"fulfilment_store,omitempty"`
	EventID         string  `json:"event_id"`
	TS              string  `json:"ts"`
	NotAfter        *string `json:"not_after,omitempty"`
}

// Key is the Kafka message key: the canonical customer ID, so all triggers
// of one customer stay in order on one partition.
func (t *Trigger) Key() []byte { return []byte(t.Customer) }

func formatTriggerTS(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// Encode returns the trigger's JSON message. A version-0 trigger (decoded
// from an old message) is written as it was, without the version-1
// fields.
func (t *Trigger) Encode() ([]byte, error) {
	w := triggerWire{
		TriggerID: t.TriggerID, Customer: string(t.Customer), Scenario: t.Scenario, OfferID: t.OfferID,
		Channel: t.Channel.String(), Locale: t.Locale, Title: t.Title, Text: t.Text,
		DecisionID: t.DecisionID, CouponCode: t.CouponCode, FulfilmentStore: t.FulfilmentStore, EventID: t.EventID,
		TS: formatTriggerTS(t.TS),
	}
	if t.Version != 0 {
		v, value := t.Version, t.Value
		expiry, notAfter := formatTriggerTS(t.Expiry), formatTriggerTS(t.NotAfter)
		w.V, w.Value, w.Expiry, w.NotAfter = &v, &value, &expiry, &notAfter
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encoding trigger %s: %w", t.TriggerID, err)
	}
	return b, nil
}

// ErrBadTrigger is returned by DecodeTrigger for a message that is not a
// valid trigger.
var ErrBadTrigger = errors.New("engine: bad trigger message")

// DecodeTrigger parses a trigger message strictly: unknown fields, a
// missing trigger_id, customer or decision_id, an unknown channel, a bad
// timestamp or an unknown version are errors. A version-1 message must
// carry value, expiry and not_after; a message without "v" (published
// before the version existed) must not, and decodes with Version 0 and
// those fields zero, so old messages can still be replayed.
func DecodeTrigger(data []byte) (Trigger, error) {
	var w triggerWire
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Trigger{}, fmt.Errorf("decoding trigger: %w: %w", ErrBadTrigger, err)
	}
	if dec.More() {
		return Trigger{}, fmt.Errorf("decoding trigger: %w: trailing data", ErrBadTrigger)
	}
	if w.TriggerID == "" || w.Customer == "" || w.DecisionID == "" {
		return Trigger{}, fmt.Errorf("decoding trigger: %w: trigger_id, customer and decision_id are required", ErrBadTrigger)
	}
	ch, ok := features.ParseChannel(w.Channel)
	if !ok {
		return Trigger{}, fmt.Errorf("decoding trigger %s: %w: unknown channel %.20q", w.TriggerID, ErrBadTrigger, w.Channel)
	}
	ts, err := parseTriggerTS(w.TS)
	if err != nil {
		return Trigger{}, fmt.Errorf("decoding trigger %s: %w: ts is not RFC 3339", w.TriggerID, ErrBadTrigger)
	}
	t := Trigger{
		TriggerID: w.TriggerID, Customer: features.Key(w.Customer), Scenario: w.Scenario, OfferID: w.OfferID,
		Channel: ch, Locale: w.Locale, Title: w.Title, Text: w.Text,
		DecisionID: w.DecisionID, CouponCode: w.CouponCode, FulfilmentStore: w.FulfilmentStore, EventID: w.EventID, TS: ts,
	}
	switch {
	case w.V == nil:
		if w.Value != nil || w.Expiry != nil || w.NotAfter != nil {
			return Trigger{}, fmt.Errorf("decoding trigger %s: %w: value, expiry and not_after come with \"v\": %d", w.TriggerID, ErrBadTrigger, TriggerVersion)
		}
		return t, nil
	case *w.V != TriggerVersion:
		return Trigger{}, fmt.Errorf("decoding trigger %s: %w: version %d, this decoder reads %d", w.TriggerID, ErrBadTrigger, *w.V, TriggerVersion)
	case w.Value == nil || w.Expiry == nil || w.NotAfter == nil:
		return Trigger{}, fmt.Errorf("decoding trigger %s: %w: value, expiry and not_after are required in version %d", w.TriggerID, ErrBadTrigger, TriggerVersion)
	}
	t.Version, t.Value = *w.V, *w.Value
	if t.Expiry, err = parseTriggerTS(*w.Expiry); err != nil {
		return Trigger{}, fmt.Errorf("decoding trigger %s: %w: expiry is not RFC 3339", w.TriggerID, ErrBadTrigger)
	}
	if t.NotAfter, err = parseTriggerTS(*w.NotAfter); err != nil {
		return Trigger{}, fmt.Errorf("decoding trigger %s: %w: not_after is not RFC 3339", w.TriggerID, ErrBadTrigger)
	}
	return t, nil
}

func parseTriggerTS(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

// TriggerDedup remembers the trigger IDs emitted recently so that a replay
// (after a restart from a snapshot, or a re-delivered event) does not emit
// the same trigger twice. It is bounded by time (Retention) and by size
// (MaxEntries, oldest forgotten first) and is saved with the state
// snapshot. Safe for concurrent use.
//
// It is a local guard only: triggers emitted after the last snapshot and
// before a crash are emitted again on replay — with the same trigger_id,
// which is what the push service deduplicates on.
//
// Besides trigger IDs (hashes, which name no customer in clear) it holds
// the engine's firing marks, "fired|<customer>|<scenario>|<offer>" (one
// push per firing, evaluateTriggers), which do name the customer: Rekey
// moves them onto the survivor of an identity merge and ForgetCustomer
// drops them for an erase, like the rest of the engine's per-customer
// state.
type TriggerDedup struct {
	retention int64
	max       int

	mu    sync.Mutex
	seen  map[string]dedupLive // ID → its live queue entry
	queue []dedupEntry         // in insertion order
	head  int
	seq   uint64
	// fired indexes the live firing marks by customer (firingCustomers),
	// so that a merge or an erase finds a customer's marks without a
	// walk over every entry.
	fired map[features.Key][]string
}

type dedupEntry struct {
	id  string
	ts  int64
	seq uint64
}

// dedupLive is what seen holds for an ID: the sequence number of its live
// queue entry, and the time it was added.
type dedupLive struct {
	seq uint64
	ts  int64
}

// NewTriggerDedup returns an empty set that forgets an ID retention after
// the time it was added, and holds at most maxEntries IDs. Defaults for
// zero arguments: 7 days and 1,000,000.
func NewTriggerDedup(retention time.Duration, maxEntries int) *TriggerDedup {
	if retention <= 0 {
		retention = 7 * 24 * time.Hour
	}
	if maxEntries <= 0 {
		maxEntries = 1_000_000
	}
	return &TriggerDedup{retention: retention.Milliseconds(), max: maxEntries, seen: make(map[string]dedupLive), fired: make(map[features.Key][]string)}
}

// Seen reports whether triggerID was added within the retention before
// now; if not, it adds it (at now) and reports false. Emit a trigger only
// when Seen returns false.
func (d *TriggerDedup) Seen(triggerID string, now int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.liveLocked(triggerID, now) {
		return true
	}
	d.addLocked(triggerID, now)
	return false
}

// Contains reports whether triggerID is in the set, without adding it.
func (d *TriggerDedup) Contains(triggerID string, now int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.liveLocked(triggerID, now)
}

// liveLocked expires what the queue says is due and reports whether id
// is held and was added within the retention before now. The second
// check matters for an entry queued out of time order (a firing mark
// moved by Rekey keeps the time it was added): it expires on time even
// while entries queued before it hold it in the queue.
func (d *TriggerDedup) liveLocked(id string, now int64) bool {
	d.expireLocked(now)
	l, ok := d.seen[id]
	if !ok {
		return false
	}
	if l.ts <= now-d.retention {
		d.dropLocked(id) // its queue entry is skipped when it comes up
		return false
	}
	return true
}

// Forget removes triggerID, for a trigger that could not be published and
// must be retried.
func (d *TriggerDedup) Forget(triggerID string) {
	d.mu.Lock()
	d.dropLocked(triggerID) // its queue entry is skipped when it comes up
	d.mu.Unlock()
}

// firingPrefix starts the engine's firing marks:
// "fired|<customer>|<scenario>|<offer>" (evaluateTriggers).
const firingPrefix = "fired|"

// Rekey moves the firing marks of customer from onto customer to, for an
// identity merge that folded from into to: a push the absorbed identity
// received still stops the same firing from pushing the merged customer
// again, for the rest of its retention (each mark keeps the time it was
// added; where both customers hold one, the later stays). Trigger IDs are
// not moved: they are per event, not per customer.
func (d *TriggerDedup) Rekey(from, to features.Key) {
	if from == to || from == "" || to == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	prefix := firingPrefix + string(from) + "|"
	for _, id := range slices.Clone(d.fired[from]) {
		l, held := d.seen[id]
		rest, ok := strings.CutPrefix(id, prefix)
		if !held || !ok {
			continue
		}
		d.dropLocked(id)
		moved := firingPrefix + string(to) + "|" + rest
		if cur, ok := d.seen[moved]; ok {
			if cur.ts >= l.ts {
				continue
			}
			d.dropLocked(moved)
		}
		d.addLocked(moved, l.ts)
	}
}

// ForgetCustomer drops the firing marks of customer, for an erase: the
// dedup (and the snapshot it is saved in) no longer names them, and a
// member who returns as a new customer may be pushed the same offer.
func (d *TriggerDedup) ForgetCustomer(customer features.Key) {
	if customer == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range slices.Clone(d.fired[customer]) {
		d.dropLocked(id)
	}
}

// Len reports how many IDs the set holds.
func (d *TriggerDedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

func (d *TriggerDedup) addLocked(id string, now int64) {
	d.seq++
	d.seen[id] = dedupLive{d.seq, now}
	d.queue = append(d.queue, dedupEntry{id, now, d.seq})
	for _, c := range firingCustomers(id) {
		d.fired[c] = append(d.fired[c], id)
	}
	for len(d.seen) > d.max {
		d.popLocked()
	}
}

// dropLocked forgets id, if held; its queue entry is skipped when it
// comes up.
func (d *TriggerDedup) dropLocked(id string) {
	if _, ok := d.seen[id]; !ok {
		return
	}
	delete(d.seen, id)
	for _, c := range firingCustomers(id) {
		ids := d.fired[c]
		if i := slices.Index(ids, id); i >= 0 {
			ids = slices.Delete(ids, i, i+1)
		}
		if len(ids) == 0 {
			delete(d.fired, c)
		} else {
			d.fired[c] = ids
		}
	}
}

// firingCustomers returns the customers a firing mark may belong to:
// none for a trigger ID; one for a mark whose customer, scenario and
// offer hold no "|" — every mark in practice. The mark's format does not
// escape "|", so a mark with more fields is listed under each customer it
// may name: a Rekey or an erase of any of them takes it along, which at
// worst lets one push be repeated, and never leaves the erased
// customer's mark behind.
func firingCustomers(id string) []features.Key {
	rest, ok := strings.CutPrefix(id, firingPrefix)
	if !ok {
		return nil
	}
	// The customer ends at a "|" that leaves at least a scenario and an
	// offer after it: any but the last.
	var out []features.Key
	last := strings.LastIndexByte(rest, '|')
	for i := 1; i < last; i++ {
		if rest[i] == '|' {
			out = append(out, features.Key(rest[:i]))
		}
	}
	return out
}

// popLocked forgets the oldest queued entry.
func (d *TriggerDedup) popLocked() {
	e := d.queue[d.head]
	d.queue[d.head] = dedupEntry{}
	d.head++
	if l, ok := d.seen[e.id]; ok && l.seq == e.seq {
		d.dropLocked(e.id)
	}
	if d.head > len(d.queue)/2 && d.head > 1024 {
		d.queue = append(d.queue[:0], d.queue[d.head:]...)
		d.head = 0
	}
}

// expireLocked forgets entries added at or before now - retention. Entries
// are queued in insertion order; event times may be slightly out of order,
// so an entry can stay queued past its retention by that much, never
// less (liveLocked does not report it held then).
func (d *TriggerDedup) expireLocked(now int64) {
	cut := now - d.retention
	for d.head < len(d.queue) && d.queue[d.head].ts <= cut {
		d.popLocked()
	}
}

const dedupSnapshotVersion = 1

// MarshalBinary encodes the set (oldest first) for the state snapshot.
func (d *TriggerDedup) MarshalBinary() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := snapWriter{buf: []byte{dedupSnapshotVersion}}
	w.uvarint(uint64(len(d.seen)))
	for _, e := range d.queue[d.head:] {
		if l, ok := d.seen[e.id]; ok && l.seq == e.seq {
			w.str(e.id)
			w.varint(e.ts)
		}
	}
	return w.buf, nil
}

// UnmarshalBinary replaces the set with a snapshot written by
// MarshalBinary.
func (d *TriggerDedup) UnmarshalBinary(data []byte) error {
	r := snapReader{buf: data}
	if v := r.byte(); v != dedupSnapshotVersion {
		return fmt.Errorf("restoring trigger dedup: version %d: %w", v, ErrCorruptState)
	}
	n := r.count()
	seen := make(map[string]dedupLive, n)
	queue := make([]dedupEntry, 0, n)
	fired := make(map[features.Key][]string)
	for i := 0; i < n && r.err == nil; i++ {
		e := dedupEntry{id: r.str(), ts: r.varint(), seq: uint64(i + 1)}
		if _, dup := seen[e.id]; dup {
			r.fail()
			break
		}
		seen[e.id] = dedupLive{e.seq, e.ts}
		queue = append(queue, e)
		for _, c := range firingCustomers(e.id) {
			fired[c] = append(fired[c], e.id)
		}
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("restoring trigger dedup: %w", err)
	}
	d.mu.Lock()
	d.seen, d.queue, d.head, d.seq, d.fired = seen, queue, 0, uint64(len(queue)), fired
	for len(d.seen) > d.max {
		d.popLocked()
	}
	d.mu.Unlock()
	return nil
}
