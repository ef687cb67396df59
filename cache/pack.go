package cache

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// A pack is a file under <root>/packs that holds many small entries, one
// record after another. Creating a file costs far more than appending to
// one on some file systems (over a millisecond on ext4 after many
// deletions), and a container start writes thousands of small chunks, so
// a Dir packs every entry of at most packedEntryMax bytes.
//
// A record is
//
//	offset  length  content
//	0       4       magic "LLpk"
//	4       1       flags: bit 0 set once the record is removed; other bits 0
//	5       1       key length k, 1 to 255
//	6       2       zero
//	8       8       data length n, big endian, at most packedEntryMax
//	16      k       the key, "algorithm:hex", a valid digest
//	16+k    n       the data, whose digest is the key
//
// and the next record starts right after it. Records are only appended
// and, once removed, have their data punched out of the file (on Linux),
// so a removed record keeps its header and key but frees its blocks.
const (
	packDirName     = "packs"
	packSuffix      = ".pack"
	packMagic       = "LLpk"
	recordHeaderLen = 16
	flagsOffset     = 4
	flagRemoved     = 1
	maxKeyLen       = 255
	// packedEntryMax is the length up to which entries are packed, and
	// the bound on the data length of any record a scan accepts.
	packedEntryMax = 1 << 20
	// defaultPackSize is the length past which a writer starts a new pack.
	defaultPackSize = 64 << 20
	// packTouchInterval spaces the modification-time updates that carry a
	// pack's recency across restarts, so hits cost no system call.
	packTouchInterval = time.Second
	// scanWindow is how much of a pack one read of a scan covers: a
	// page, which holds several headers of small records, and reads
	// little of the data of large ones.
	scanWindow = 4 << 10
)

// pack is a pack file a Dir knows of. Its fields are guarded by Dir.idx.
type pack struct {
	name    string
	f       *os.File  // opened read-write on first need; nil when closed
	live    int       // records of this pack in the index
	writer  bool      // this Dir appends to it and holds a shared lock on f
	own     bool      // this Dir created it, so knows all its records
	size    int64     // where the next record goes, if writer
	touched time.Time // when this Dir last set its modification time
}

// record is an entry stored in a pack. Its used field is guarded by
// Dir.idx; the others never change.
type record struct {
	pack   *pack
	off    int64 // offset of the header
	keyLen int
	n      int64 // data length
	used   time.Time
}

func (r *record) dataOff() int64 { return r.off + recordHeaderLen + int64(r.keyLen) }

// appendRecord appends the record of key and data to buf.
func appendRecord(buf []byte, key digest.Digest, data []byte) []byte {
	buf = append(buf, packMagic...)
	buf = append(buf, 0, byte(len(key)), 0, 0)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(data)))
	buf = append(buf, key...)
	return append(buf, data...)
}

// recordHeader is a decoded record header and key.
type recordHeader struct {
	off   int64
	flags byte
	key   digest.Digest
	n     int64
}

// readRecords calls fn for each record of the pack r, which is size bytes
// long, in order. Pack content is untrusted: it stops at the first header
// that is not well formed (bad magic or flags, a key that is no valid
// digest, a length over packedEntryMax or past the end of the file), so
// damage or a record torn by a crash costs the records from there on,
// never a wrong one. Data is skipped, not read.
func readRecords(r io.ReaderAt, size int64, fn func(recordHeader)) {
	buf := make([]byte, scanWindow)
	var start int64
	avail := 0 // buf[:avail] holds the pack from start
	at := func(off int64, n int) []byte {
		if off < start || off+int64(n) > start+int64(avail) {
			m, _ := r.ReadAt(buf, off)
			start, avail = off, m
			if m < n {
				return nil
			}
		}
		return buf[off-start:][:n]
	}
	for off := int64(0); size-off >= recordHeaderLen; {
		h := at(off, recordHeaderLen)
		if h == nil || string(h[:4]) != packMagic || h[flagsOffset]&^flagRemoved != 0 || h[5] == 0 || h[6] != 0 || h[7] != 0 {
			return
		}
		flags, keyLen, n := h[flagsOffset], int(h[5]), binary.BigEndian.Uint64(h[8:])
		if n > packedEntryMax {
			return
		}
		end := off + recordHeaderLen + int64(keyLen) + int64(n)
		if end > size {
			return
		}
		k := at(off+recordHeaderLen, keyLen)
		if k == nil {
			return
		}
		key := digest.Digest(k)
		if validateKey(key) != nil {
			return
		}
		fn(recordHeader{off: off, flags: flags, key: key, n: int64(n)})
		off = end
	}
}

// isPackName reports whether name is the name of a pack: sixteen lower
// case hex digits and packSuffix.
func isPackName(name string) bool {
	id, ok := strings.CutSuffix(name, packSuffix)
	if !ok || len(id) != 16 || strings.ToLower(id) != id {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (d *Dir) packPath(name string) string {
	return filepath.Join(d.root, packDirName, name)
}

// packFile returns p's file, opening it if needed. The caller holds d.idx.
func (d *Dir) packFile(p *pack) (*os.File, error) {
	if p.f != nil {
		return p.f, nil
	}
	f, err := os.OpenFile(d.packPath(p.name), os.O_RDWR|openFlags, 0)
	if err != nil {
		return nil, err
	}
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("pack %s is not a regular file", p.name)
	}
	p.f = f
	return f, nil
}

// closePack closes p's file, if open. The caller holds d.idx.
func closePack(p *pack) {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}

// dropRecord takes the record r of key out of the index and the
// estimates, marks it removed in its pack, frees its data's blocks, and
// deletes the pack if that was its last live record. The caller holds
// d.idx and has checked that r is key's record.
func (d *Dir) dropRecord(key digest.Digest, r *record) {
	d.take(key, r).write()
	d.release(r)
}

// A removal is a record taken out of the index whose removal on disk,
// setting its flag and punching its data out, is still to be written.
// Remove and eviction write it without holding d.idx, so that loads do
// not wait for the disk, and only then release the record from its pack.
type removal struct {
	f *os.File // its pack, nil if it could not be opened
	r *record
}

// take takes the record r of key out of the index and the estimates (a
// duplicate, which the index does not hold, has key "") and returns its
// removal. The caller holds d.idx.
func (d *Dir) take(key digest.Digest, r *record) removal {
	if key != "" {
		delete(d.index, key)
		d.uncountEntry(r.n)
	}
	f, _ := d.packFile(r.pack)
	return removal{f, r}
}

// write marks the record removed and frees the blocks of its data.
// Failures leave a live record on disk that no index of this Dir holds;
// the next scan finds it again.
func (rm removal) write() {
	if rm.f == nil {
		return
	}
	if _, err := rm.f.WriteAt([]byte{flagRemoved}, rm.r.off+flagsOffset); err == nil {
		_ = punchHole(rm.f, rm.r.dataOff(), rm.r.n)
	}
}

// finish writes removals, then releases their records, deleting the
// packs they emptied. The caller does not hold d.idx.
func (d *Dir) finish(removals []removal) {
	for _, rm := range removals {
		rm.write()
	}
	d.idx.Lock()
	defer d.idx.Unlock()
	for _, rm := range removals {
		d.release(rm.r)
	}
}

// unindex takes the record r of key out of the index and the estimates,
// deleting its pack if it was the last live record there. The caller
// holds d.idx.
func (d *Dir) unindex(key digest.Digest, r *record) {
	delete(d.index, key)
	d.uncountEntry(r.n)
	d.release(r)
}

// release takes r, removed, out of its pack's live records, deleting the
// pack if r was the last. The caller holds d.idx.
func (d *Dir) release(r *record) {
	r.pack.live--
	d.deleteIfEmpty(r.pack)
}

// deleteIfEmpty deletes the pack p if it has no live record and no
// writer: none in this Dir, and none elsewhere, which an exclusive lock
// proves. A pack it cannot delete has its file closed, as this Dir no
// longer reads it. The caller holds d.idx.
func (d *Dir) deleteIfEmpty(p *pack) {
	if p.live > 0 || p.writer {
		return
	}
	if f, err := d.packFile(p); err == nil && tryLockExclusive(f) {
		if os.Remove(d.packPath(p.name)) == nil && d.packs[p.name] == p {
			delete(d.packs, p.name)
		}
	}
	closePack(p)
}

// appendEntry stores data under key in this Dir's pack, unless key is in
// the index already, in which case it only marks it used. The caller
// holds d.mu for reading and has checked key and data.
func (d *Dir) appendEntry(key digest.Digest, data []byte) error {
	d.appendMu.Lock()
	defer d.appendMu.Unlock()
	if d.used(key) {
		return nil
	}
	length := int64(recordHeaderLen + len(key) + len(data))
	p, err := d.writablePack(length)
	if err != nil {
		return err
	}
	d.appendBuf = appendRecord(d.appendBuf[:0], key, data)
	if _, err := p.f.WriteAt(d.appendBuf, p.size); err != nil {
		// Cut off what was written, so the next record follows the
		// last whole one; should that fail too, a scan stops at the
		// torn record and loses the records after it.
		_ = p.f.Truncate(p.size)
		return err
	}
	r := &record{pack: p, off: p.size, keyLen: len(key), n: int64(len(data)), used: d.now()}
	p.size += length
	if cap(d.appendBuf) > 2*scanWindow {
		d.appendBuf = nil // keep no large entry alive
	}
	d.idx.Lock()
	d.index[key] = r
	p.live++
	d.idx.Unlock()
	d.entries.Add(1)
	d.bytes.Add(r.n)
	return nil
}

// used marks key's record used, if there is one, and reports whether
// there is.
func (d *Dir) used(key digest.Digest) bool {
	d.idx.Lock()
	r := d.index[key]
	var touch bool
	now := d.now()
	if r != nil {
		r.used = now
		p := r.pack
		if touch = now.Sub(p.touched).Abs() >= packTouchInterval; touch {
			p.touched = now
		}
	}
	d.idx.Unlock()
	if touch {
		// Only a scan after a restart reads the time; failing to set it
		// only makes that scan's LRU order less exact.
		_ = os.Chtimes(d.packPath(r.pack.name), now, now)
	}
	return r != nil
}

// writablePack returns this Dir's pack with room for a record of length
// bytes, starting a new one if there is none or the current one is full.
// The caller holds d.appendMu and d.mu for reading.
func (d *Dir) writablePack(length int64) (*pack, error) {
	if p := d.active; p != nil {
		if p.size == 0 || p.size+length <= d.packSize {
			return p, nil
		}
		d.active = nil
		d.idx.Lock()
		p.writer = false
		unlock(p.f)
		d.deleteIfEmpty(p)
		d.idx.Unlock()
	}
	p, err := d.newPack()
	if err != nil {
		return nil, err
	}
	d.idx.Lock()
	d.packs[p.name] = p
	d.idx.Unlock()
	d.active = p
	return p, nil
}

// newPack creates an empty pack and takes the shared lock that keeps
// other Dirs from deleting it. The pack is created under a temporary name
// and renamed once locked, so that no scan can find it unlocked.
func (d *Dir) newPack() (*pack, error) {
	dir := filepath.Join(d.root, packDirName)
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if errors.Is(err, os.ErrNotExist) {
		// Removed since NewDir created it.
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, tempPrefix+"*")
		}
	}
	if err != nil {
		return nil, err
	}
	p := &pack{name: fmt.Sprintf("%016x%s", rand.Uint64(), packSuffix), f: f, writer: true, own: true, touched: d.now()}
	if err = lockShared(f); err == nil {
		err = os.Rename(f.Name(), d.packPath(p.name))
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return p, nil
}

// loadPacked returns the data of key's record; ok is false if key has
// none. The caller has validated key.
func (d *Dir) loadPacked(key digest.Digest) (data []byte, ok bool, err error) {
	d.idx.Lock()
	r := d.index[key]
	var f *os.File
	if r != nil && r.n <= d.maxEntry {
		f, err = d.packFile(r.pack)
	}
	d.idx.Unlock()
	switch {
	case r == nil:
		return nil, false, nil
	case r.n > d.maxEntry:
		// Written by a Dir with a larger entry bound; left to it.
		return nil, true, fmt.Errorf("packed entry has %d bytes, more than %d: %w", r.n, d.maxEntry, ErrTooLarge)
	case err != nil:
		return nil, true, err
	}
	data = make([]byte, r.n)
	_, err = f.ReadAt(data, r.dataOff())
	if errors.Is(err, os.ErrClosed) {
		return nil, true, ErrNotFound // its pack was deleted meanwhile
	}
	if err == nil && key.Algorithm().FromBytes(data) != key {
		err = errors.New("content does not match key")
	} else if err != nil && !errors.Is(err, io.EOF) {
		return nil, true, err
	}
	if err != nil {
		// A record is never rewritten, so a short read is damage too.
		return nil, true, d.damagedRecord(key, r, f, err)
	}
	d.used(key)
	return data, true, nil
}

// damagedRecord handles key's record r, whose data in f did not match
// key because of cause, and returns the error Load reports. A record that
// another Dir removed (and punched) is only forgotten, as a miss;
// anything else is damage, marked removed and counted.
func (d *Dir) damagedRecord(key digest.Digest, r *record, f *os.File, cause error) error {
	h := make([]byte, recordHeaderLen)
	_, err := f.ReadAt(h, r.off)
	d.idx.Lock()
	defer d.idx.Unlock()
	if d.index[key] != r {
		return ErrNotFound // removed meanwhile by this Dir
	}
	if err == nil && string(h[:4]) == packMagic && h[flagsOffset]&flagRemoved != 0 {
		d.unindex(key, r)
		return ErrNotFound
	}
	d.verifyFailures.Add(1)
	if err != nil || string(h[:4]) != packMagic {
		// The file was cut or overwritten: no header to mark.
		d.unindex(key, r)
	} else {
		d.dropRecord(key, r)
	}
	return fmt.Errorf("pack %s at %d: %v: %w", r.pack.name, r.off, cause, ErrCorrupt)
}

// scanPacks rebuilds the index from the records of the packs on disk.
// Records this Dir already knew keep their last use; the others take
// their pack's modification time. The packs this Dir created are not
// read: it knows their records, but for those another Dir removed, which
// a Load notices; reading them would make every scan cost time in
// proportion to all the records this Dir ever appended. Of several records of one key, as when
// two processes stored it, the index holds the one this Dir knew, else
// the first; scanPacks returns the others, which the caller should count
// and evict before need be, as another process may be reading them.
// Packs without live records are deleted when no writer holds them. The
// caller holds d.mu.
func (d *Dir) scanPacks() (duplicates []*record) {
	dir := filepath.Join(d.root, packDirName)
	names, _ := os.ReadDir(dir) // none: no packs
	staleBefore := d.now().Add(-d.staleTempAge)
	d.idx.Lock()
	defer d.idx.Unlock()
	old, oldPacks := d.index, d.packs
	d.index = make(map[digest.Digest]*record, len(old))
	d.packs = make(map[string]*pack, len(oldPacks))
	add := func(key digest.Digest, r *record) {
		if prev := d.index[key]; prev != nil {
			if prev == old[key] {
				prev, r = r, prev
			}
			duplicates = append(duplicates, prev)
		}
		d.index[key] = r
		r.pack.live++
	}
	for _, de := range names {
		name := de.Name()
		if strings.HasPrefix(name, tempPrefix) {
			removeIfStale(filepath.Join(dir, name), de, staleBefore)
			continue
		}
		if !isPackName(name) || !de.Type().IsRegular() {
			continue
		}
		p := oldPacks[name]
		if p == nil {
			p = &pack{name: name}
		}
		f, err := d.packFile(p)
		if err != nil {
			continue
		}
		info, err := f.Stat()
		if err != nil {
			closePack(p)
			continue
		}
		d.packs[name] = p
		p.live = 0
		if p.own {
			continue // its records are in old, added below
		}
		readRecords(f, info.Size(), func(h recordHeader) {
			if h.flags&flagRemoved != 0 {
				return
			}
			r := old[h.key]
			if r == nil || r.pack != p || r.off != h.off {
				r = &record{pack: p, off: h.off, keyLen: len(h.key), n: h.n, used: info.ModTime()}
			}
			add(h.key, r)
		})
	}
	for key, r := range old {
		if r.pack.own && d.packs[r.pack.name] == r.pack {
			add(key, r)
		}
	}
	for _, p := range oldPacks {
		if d.packs[p.name] != p {
			closePack(p) // gone from disk
			if p == d.active {
				d.active = nil
			}
		}
	}
	for _, p := range d.packs {
		d.deleteIfEmpty(p)
	}
	return duplicates
}

// closePacks closes every pack file and forgets the packed entries.
// The caller holds d.mu.
func (d *Dir) closePacks() {
	d.idx.Lock()
	defer d.idx.Unlock()
	for _, p := range d.packs {
		closePack(p)
	}
	d.active = nil
	d.index = map[digest.Digest]*record{}
	d.packs = map[string]*pack{}
}
