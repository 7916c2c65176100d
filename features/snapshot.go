package features

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Snapshots.
//
// A snapshot file is a stream of records, each a kind byte, a uvarint
// length and a payload, closed by an end record holding the CRC-32C of
// everything before it:
//
//	"NBOSNAP1"                  magic
//	'M' meta (JSON)             offsets per partition, counts, creation time
//	'N' name                    one interned string, in index order
//	'C' customer                one customer's state (binary)
//	'T' tombstones              the erased identifiers' hashes (format 3 on)
//	'X' extra                   a named section of another component
//	'E' crc32c                  end
//
// Files are written to a temporary name, fsynced, renamed over the old
// snapshot and the directory fsynced, so a crash leaves either the old or
// the new snapshot, never a torn one; a torn or corrupted file fails its
// CRC and is refused.

const snapMagic = "NBOSNAP1"

// The meta record's format number names the layout of the records after
// it, the customer record above all. Any change to that layout takes the
// next number, and the reader keeps reading every older one it lists, so
// that a snapshot taken before an upgrade restores after it.
//
//	1  the first
//	2  a customer's kept cart adds (cartAdds) after its cart lines
//	3  a tombstones record after the customers
//	4  a customer's visit log (visitLog) at the end of its record
const (
	snapFormat       = 4 // the format this build writes
	snapOldestFormat = 1 // the oldest format this build reads
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// SnapshotMeta is the header of a snapshot.
type SnapshotMeta struct {
	Format    int             `json:"format"`
	CreatedAt string          `json:"created_at"`
	Offsets   map[int32]int64 `json:"offsets"` // next offset to read, per partition of the events topic
	Customers int64           `json:"customers"`
	Applied   int64           `json:"applied"`
}

// ErrCorruptSnapshot is returned for a snapshot that fails its checks.
var ErrCorruptSnapshot = errors.New("features: corrupt snapshot")

// ErrSnapshotFormat is returned for an intact snapshot (its checksum
// holds) that this build cannot read: a format it does not know, or
// customer records that do not have the layout their format names (a file
// written by a build that changed the layout without a new format).
var ErrSnapshotFormat = errors.New("features: unsupported snapshot format")

type crcWriter struct {
	w   *bufio.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	c.crc = crc32.Update(c.crc, crcTable, p)
	return c.w.Write(p)
}

func (c *crcWriter) record(kind byte, payload []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := binary.PutUvarint(hdr[1:], uint64(len(payload)))
	if _, err := c.Write(hdr[:1+n]); err != nil {
		return err
	}
	_, err := c.Write(payload)
	return err
}

// WriteSnapshot writes the store's state, meta and the extra sections to w.
// It blocks Apply for its duration, so the state matches meta's offsets.
func (s *Store) WriteSnapshot(w io.Writer, meta SnapshotMeta, extras map[string][]byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cw := &crcWriter{w: bufio.NewWriterSize(w, 1<<20)}
	if _, err := cw.Write([]byte(snapMagic)); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	meta.Format = snapFormat
	meta.Customers = s.customers.Load()
	meta.Applied = s.applied.Load()
	mb, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("writing snapshot meta: %w", err)
	}
	if err := cw.record('M', mb); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	for _, n := range s.in.all()[1:] {
		if err := cw.record('N', []byte(n)); err != nil {
			return fmt.Errorf("writing snapshot: %w", err)
		}
	}
	buf := make([]byte, 0, 4096)
	for i := range s.shards {
		sh := &s.shards[i]
		// The writer lock keeps state still; readers may hold read locks.
		for _, c := range sh.customers {
			buf = encodeCustomer(buf[:0], c)
			if err := cw.record('C', buf); err != nil {
				return fmt.Errorf("writing snapshot: %w", err)
			}
		}
	}
	if err := cw.record('T', s.encodeTombstones(buf[:0])); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	names := make([]string, 0, len(extras))
	for n := range extras {
		names = append(names, n)
	}
	sortStrings(names)
	for _, n := range names {
		buf = binary.AppendUvarint(buf[:0], uint64(len(n)))
		buf = append(buf, n...)
		buf = append(buf, extras[n]...)
		if err := cw.record('X', buf); err != nil {
			return fmt.Errorf("writing snapshot section %s: %w", n, err)
		}
	}
	var end [4]byte
	binary.LittleEndian.PutUint32(end[:], cw.crc)
	if err := cw.record('E', end[:]); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	if err := cw.w.Flush(); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return nil
}

// WriteSnapshotFile writes a snapshot to path atomically and durably:
// temporary file, fsync, rename, fsync of the directory. Apply is blocked
// for the whole write; EncodeSnapshot with WriteFileDurably blocks it only
// while encoding.
func (s *Store) WriteSnapshotFile(path string, meta SnapshotMeta, extras map[string][]byte) error {
	return writeDurably(path, func(w io.Writer) error { return s.WriteSnapshot(w, meta, extras) })
}

// EncodeSnapshot renders a snapshot into memory. It blocks Apply only
// while it encodes, so the file can be written while ingest goes on.
func (s *Store) EncodeSnapshot(meta SnapshotMeta, extras map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := s.WriteSnapshot(&buf, meta, extras); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFileDurably writes data to path atomically and durably (an encoded
// snapshot, for one): a crash leaves the old file or the new one.
func WriteFileDurably(path string, data []byte) error {
	return writeDurably(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func writeDurably(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating snapshot dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating snapshot temp file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("installing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing dir %s: %w", dir, err)
	}
	return nil
}

// ReadSnapshotFile restores the store from the snapshot at path. It
// returns the snapshot's meta and extra sections. A missing file returns
// an error satisfying errors.Is(err, os.ErrNotExist) and leaves the store
// empty. The store must be empty.
func (s *Store) ReadSnapshotFile(path string) (SnapshotMeta, map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return SnapshotMeta{}, nil, err
	}
	defer f.Close()
	return s.ReadSnapshot(f)
}

// ReadSnapshot restores the store from r; see ReadSnapshotFile. On error
// the store is left empty.
func (s *Store) ReadSnapshot(r io.Reader) (SnapshotMeta, map[string][]byte, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	meta, extras, err := s.readSnapshot(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		s.clear()
		return SnapshotMeta{}, nil, err
	}
	return meta, extras, nil
}

func (s *Store) clear() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.customers = make(map[Key]*customer)
		sh.ids = idIndex{}
		sh.mu.Unlock()
	}
	s.customers.Store(0)
	s.applied.Store(0)
	s.in.reset(nil)
	s.newestTS, s.tombs, s.tombsNewest = 0, nil, 0
}

func (s *Store) readSnapshot(br *bufio.Reader) (SnapshotMeta, map[string][]byte, error) {
	var meta SnapshotMeta
	crc := uint32(0)
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapMagic {
		return meta, nil, fmt.Errorf("%w: bad magic", ErrCorruptSnapshot)
	}
	crc = crc32.Update(crc, crcTable, magic)
	names := []string{""}
	extras := map[string][]byte{}
	var customers []*customer
	var payload []byte
	// The format is judged, and the customer records decoded, as they
	// come; an error is reported only once the checksum holds, so that a
	// damaged file is called corrupt and an intact one names its format.
	sawMeta := false
	var formatErr error
	var tombs map[uint64]int64
	var tombsNewestTS int64
	for {
		kind, err := br.ReadByte()
		if err != nil {
			return meta, nil, fmt.Errorf("%w: truncated (no end record)", ErrCorruptSnapshot)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil || n > 1<<30 {
			return meta, nil, fmt.Errorf("%w: bad record length", ErrCorruptSnapshot)
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return meta, nil, fmt.Errorf("%w: truncated record", ErrCorruptSnapshot)
		}
		if kind == 'E' {
			if n != 4 || binary.LittleEndian.Uint32(payload) != crc {
				return meta, nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptSnapshot)
			}
			break
		}
		var hdr [1 + binary.MaxVarintLen64]byte
		hdr[0] = kind
		hn := binary.PutUvarint(hdr[1:], n)
		crc = crc32.Update(crc, crcTable, hdr[:1+hn])
		crc = crc32.Update(crc, crcTable, payload)
		switch kind {
		case 'M':
			if sawMeta {
				return meta, nil, fmt.Errorf("%w: two meta records", ErrCorruptSnapshot)
			}
			sawMeta = true
			if err := json.Unmarshal(payload, &meta); err != nil {
				return meta, nil, fmt.Errorf("%w: meta: %v", ErrCorruptSnapshot, err)
			}
			if meta.Format < snapOldestFormat || meta.Format > snapFormat {
				formatErr = fmt.Errorf("%w: the snapshot is format %d and this build reads formats %d to %d; restore it with the build that wrote it, or rebuild the state from the log",
					ErrSnapshotFormat, meta.Format, snapOldestFormat, snapFormat)
			}
		case 'N':
			names = append(names, string(payload))
		case 'C':
			if !sawMeta {
				return meta, nil, fmt.Errorf("%w: a customer record before the meta record", ErrCorruptSnapshot)
			}
			if formatErr != nil {
				continue // not decoded: the file is refused anyway
			}
			c, err := decodeCustomer(payload, meta.Format)
			if err != nil {
				formatErr = fmt.Errorf("%w: the snapshot says format %d but customer record %d does not have that format's layout (%v): it was written by a build whose layout differs; restore it with that build, or rebuild the state from the log",
					ErrSnapshotFormat, meta.Format, len(customers)+1, err)
				continue
			}
			customers = append(customers, c)
		case 'T':
			if !sawMeta || meta.Format < 3 || tombs != nil {
				return meta, nil, fmt.Errorf("%w: unexpected tombstones record", ErrCorruptSnapshot)
			}
			if tombs, tombsNewestTS, err = decodeTombstones(payload); err != nil {
				return meta, nil, err
			}
		case 'X':
			l, k := binary.Uvarint(payload)
			if k <= 0 || uint64(len(payload)-k) < l {
				return meta, nil, fmt.Errorf("%w: bad section", ErrCorruptSnapshot)
			}
			extras[string(payload[k:k+int(l)])] = append([]byte(nil), payload[k+int(l):]...)
		default:
			return meta, nil, fmt.Errorf("%w: unknown record kind %q", ErrCorruptSnapshot, kind)
		}
	}
	if !sawMeta {
		return meta, nil, fmt.Errorf("%w: no meta record", ErrCorruptSnapshot)
	}
	if formatErr != nil {
		return meta, nil, formatErr
	}
	seen := make(map[Key]struct{}, len(customers))
	for _, c := range customers {
		if _, dup := seen[c.id]; dup {
			return meta, nil, fmt.Errorf("%w: customer %q recorded twice", ErrCorruptSnapshot, c.id)
		}
		seen[c.id] = struct{}{}
	}
	s.clear()
	s.in.reset(names)
	for _, c := range customers {
		s.shardOf(c.id).customers[c.id] = c
		for _, k := range c.ids {
			s.index(k, c)
		}
	}
	s.customers.Store(int64(len(customers)))
	s.applied.Store(meta.Applied)
	// A snapshot before format 3 has no tombstones: the store's newest
	// event time is then its customers' newest.
	s.newestTS = tombsNewestTS
	for _, c := range customers {
		s.newestTS = max(s.newestTS, c.newest)
	}
	s.tombs = tombs
	for _, at := range tombs {
		s.tombsNewest = max(s.tombsNewest, at)
	}
	return meta, extras, nil
}

// encodeTombstones appends the tombstones record: the store's newest
// event time, then each erased identifier's hash and erase time.
func (s *Store) encodeTombstones(b []byte) []byte {
	e := &enc{b: b}
	e.i(s.newestTS)
	e.u(uint64(len(s.tombs)))
	hs := make([]uint64, 0, len(s.tombs))
	for h := range s.tombs {
		hs = append(hs, h)
	}
	slices.Sort(hs) // the same state writes the same bytes
	for _, h := range hs {
		e.b = binary.LittleEndian.AppendUint64(e.b, h)
		e.i(s.tombs[h])
	}
	return e.b
}

func decodeTombstones(b []byte) (map[uint64]int64, int64, error) {
	d := &dec{b: b}
	newest := d.i()
	n := d.n(len(d.b) / 9) // a hash and a varint each: at least 9 bytes
	tombs := make(map[uint64]int64, n)
	for range n {
		if d.err != nil || len(d.b) < 8 {
			return nil, 0, fmt.Errorf("%w: bad tombstones record", ErrCorruptSnapshot)
		}
		h := binary.LittleEndian.Uint64(d.b)
		d.b = d.b[8:]
		tombs[h] = d.i()
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, 0, fmt.Errorf("%w: bad tombstones record", ErrCorruptSnapshot)
	}
	return tombs, newest, nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Customer encoding: every field as varints in a fixed order. The format
// number in the meta record covers it: decodeCustomer reads each format
// from snapOldestFormat on.

type enc struct{ b []byte }

func (e *enc) u(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) s(v string) { e.u(uint64(len(v))); e.b = append(e.b, v...) }

type dec struct {
	b   []byte
	err error
}

func (d *dec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad customer record", ErrCorruptSnapshot)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad customer record", ErrCorruptSnapshot)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) s() string {
	n := d.u()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: bad customer record", ErrCorruptSnapshot)
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

// n reads a slice length, refusing one longer than limit.
func (d *dec) n(limit int) int {
	v := d.u()
	if v > uint64(limit) {
		d.err = fmt.Errorf("%w: bad customer record", ErrCorruptSnapshot)
		return 0
	}
	return int(v)
}

func encodeCustomer(b []byte, c *customer) []byte {
	e := &enc{b: b}
	e.s(string(c.id))
	e.u(uint64(len(c.ids)))
	for _, k := range c.ids {
		e.s(string(k))
	}
	e.u(c.version)
	e.i(c.first)
	e.i(c.newest)
	e.u(uint64(c.compactedMin))
	e.u(uint64(len(c.keys)))
	for _, k := range c.keys {
		e.u(uint64(k.last))
		e.i(k.lifeSum)
		e.u(uint64(k.cat))
		e.u(uint64(k.lifeCount))
		e.u(uint64(k.cls))
		e.u(uint64(k.typ))
	}
	e.u(uint64(len(c.buckets)))
	for _, b := range c.buckets {
		e.i(b.sum)
		e.u(uint64(b.start))
		e.u(uint64(b.count))
		e.u(uint64(b.kr))
	}
	e.u(uint64(len(c.recent)))
	for _, r := range c.recent {
		e.i(r.ts)
		e.i(r.amount)
		e.u(uint64(r.sku))
		e.u(uint64(r.cat))
		e.u(uint64(r.store))
		e.u(uint64(r.typ))
		e.u(uint64(r.ch))
	}
	e.u(uint64(len(c.cart)))
	for _, it := range c.cart {
		e.i(it.added)
		e.i(it.removed)
		e.i(it.amount)
		e.u(uint64(it.sku))
		e.u(uint64(it.cat))
		e.i(int64(it.qty))
	}
	e.u(uint64(len(c.cartAdds)))
	for _, a := range c.cartAdds {
		e.i(a.ts)
		e.i(a.amount)
		e.u(uint64(a.sku))
		e.i(int64(a.qty))
	}
	e.u(uint64(len(c.skus)))
	for _, si := range c.skus {
		e.i(si.last)
		e.i(si.bought)
		e.u(uint64(si.sku))
		e.u(uint64(si.count))
	}
	e.stores(c.stores)
	e.visit(&c.visit)
	e.u(uint64(len(c.offers)))
	for _, o := range c.offers {
		e.u(uint64(o.lastPositive))
		e.u(uint64(o.lastShown))
		e.u(uint64(o.lastRedeemed))
		e.u(uint64(o.lastActive))
		e.u(uint64(o.offer))
		e.u(uint64(o.impressions))
		e.u(uint64(o.clicks))
		e.u(uint64(o.dismissals))
		e.u(uint64(o.dismissStreak))
		e.u(uint64(o.redemptions))
	}
	e.u(uint64(len(c.seen)))
	for _, sn := range c.seen {
		e.i(sn.ts)
		e.u(sn.h)
		e.u(uint64(sn.typ))
	}
	e.i(c.cartCleared)
	e.u(uint64(c.lastStore))
	e.i(c.lastStoreTS)
	e.i(c.spendOnline)
	e.i(c.spendOffline)
	e.i(c.gross)
	e.i(c.orders)
	e.i(c.points)
	e.i(c.memberSince)
	if c.localeEn {
		e.u(1)
	} else {
		e.u(0)
	}
	e.i(c.localeTS)
	for p := range c.consent {
		e.u(uint64(c.consent[p]))
		e.i(c.consentTS[p])
	}
	if l := c.vlog; l == nil {
		e.u(0)
	} else {
		e.u(1)
		e.visit(&l.visit)
		e.stores(l.stores)
		e.u(uint64(len(l.evs)))
		for _, ev := range l.evs {
			e.i(ev.ts)
			e.i(int64(ev.dwell))
			e.u(uint64(ev.cat))
			e.u(uint64(ev.store))
			e.u(uint64(ev.typ))
		}
	}
	return e.b
}

func (e *enc) stores(list []storeVisits) {
	e.u(uint64(len(list)))
	for _, st := range list {
		e.i(st.last)
		e.u(uint64(st.store))
		e.u(uint64(st.visits))
	}
}

func (e *enc) visit(v *visit) {
	e.i(v.start)
	e.i(v.end)
	e.i(v.dwellSum)
	e.i(v.exitDwell)
	e.u(uint64(v.store))
	for _, cat := range v.cats {
		e.u(uint64(cat))
	}
	if v.purchased {
		e.u(1)
	} else {
		e.u(0)
	}
}

func (d *dec) stores() []storeVisits {
	list := make([]storeVisits, d.n(maxStores))
	for i := range list {
		st := &list[i]
		st.last = d.i()
		st.store, st.visits = uint32(d.u()), uint32(d.u())
	}
	return list
}

func (d *dec) visit(v *visit) {
	v.start, v.end, v.dwellSum, v.exitDwell = d.i(), d.i(), d.i(), d.i()
	v.store = uint32(d.u())
	for i := range v.cats {
		v.cats[i] = uint32(d.u())
	}
	v.purchased = d.u() == 1
}

func decodeCustomer(b []byte, format int) (*customer, error) {
	d := &dec{b: b}
	c := &customer{}
	c.id = Key(d.s())
	c.ids = make([]Key, d.n(1<<10))
	for i := range c.ids {
		c.ids[i] = Key(d.s())
		if c.ids[i] == "" && d.err == nil {
			d.err = fmt.Errorf("%w: customer %q has an empty identifier", ErrCorruptSnapshot, c.id)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if c.id == "" {
		return nil, fmt.Errorf("%w: a customer without an ID", ErrCorruptSnapshot)
	}
	packIDs(c.ids)
	for _, k := range c.ids {
		if k == c.id {
			c.id = k // share the packed bytes
		}
	}
	c.version = d.u()
	c.first = d.i()
	c.newest = d.i()
	c.compactedMin = uint32(d.u())
	c.keys = make([]keyState, d.n(maxKeys))
	for i := range c.keys {
		k := &c.keys[i]
		k.last, k.lifeSum = secs(d.u()), d.i()
		k.cat, k.lifeCount = uint32(d.u()), uint32(d.u())
		k.cls, k.typ = Class(d.u()), EventType(d.u())
	}
	c.buckets = make([]bucket, d.n(maxKeys*128))
	for i := range c.buckets {
		b := &c.buckets[i]
		b.sum = d.i()
		b.start, b.count, b.kr = uint32(d.u()), uint16(d.u()), uint16(d.u())
		if b.key() >= len(c.keys) {
			d.err = fmt.Errorf("%w: bucket key out of range", ErrCorruptSnapshot)
		}
	}
	c.recent = make([]recentEv, d.n(256))
	for i := range c.recent {
		r := &c.recent[i]
		r.ts, r.amount = d.i(), d.i()
		r.sku, r.cat, r.store = uint32(d.u()), uint32(d.u()), uint32(d.u())
		r.typ, r.ch = EventType(d.u()), Channel(d.u())
	}
	c.cart = make([]cartItem, d.n(maxCart))
	for i := range c.cart {
		it := &c.cart[i]
		it.added, it.removed, it.amount = d.i(), d.i(), d.i()
		it.sku, it.cat, it.qty = uint32(d.u()), uint32(d.u()), int32(d.i())
	}
	if format >= 2 {
		c.cartAdds = make([]cartAdd, d.n(len(d.b)/4)) // four varints each
		for i := range c.cartAdds {
			a := &c.cartAdds[i]
			a.ts, a.amount = d.i(), d.i()
			a.sku, a.qty = uint32(d.u()), int32(d.i())
		}
	}
	c.skus = make([]skuInterest, d.n(maxSKUs))
	for i := range c.skus {
		si := &c.skus[i]
		si.last, si.bought = d.i(), d.i()
		si.sku, si.count = uint32(d.u()), uint32(d.u())
	}
	c.stores = d.stores()
	d.visit(&c.visit)
	c.offers = make([]offerStat, d.n(maxOffers))
	for i := range c.offers {
		o := &c.offers[i]
		o.lastPositive, o.lastShown, o.lastRedeemed, o.lastActive = secs(d.u()), secs(d.u()), secs(d.u()), secs(d.u())
		o.offer, o.impressions, o.clicks = uint32(d.u()), uint32(d.u()), uint32(d.u())
		o.dismissals, o.dismissStreak, o.redemptions = uint32(d.u()), uint32(d.u()), uint32(d.u())
	}
	c.seen = make([]seenEvent, d.n(1<<20))
	for i := range c.seen {
		sn := &c.seen[i]
		sn.ts, sn.h, sn.typ = d.i(), d.u(), EventType(d.u())
	}
	c.cartCleared = d.i()
	c.lastStore = uint32(d.u())
	c.lastStoreTS = d.i()
	c.spendOnline, c.spendOffline, c.gross, c.orders, c.points, c.memberSince = d.i(), d.i(), d.i(), d.i(), d.i(), d.i()
	c.localeEn, c.localeTS = d.u() == 1, d.i()
	for p := range c.consent {
		c.consent[p] = ChannelMask(d.u())
		c.consentTS[p] = d.i()
	}
	if format >= 4 && d.u() == 1 {
		l := &visitLog{}
		d.visit(&l.visit)
		l.stores = d.stores()
		l.evs = make([]offlineEv, d.n(len(d.b)/5)) // five varints each
		for i := range l.evs {
			ev := &l.evs[i]
			ev.ts, ev.dwell = d.i(), int32(d.i())
			ev.cat, ev.store, ev.typ = uint32(d.u()), uint32(d.u()), EventType(d.u())
		}
		c.vlog = l
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: trailing bytes in customer record", ErrCorruptSnapshot)
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}
