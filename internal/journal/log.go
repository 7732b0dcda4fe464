package journal

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/flows"
)

// The journal's log, files named LogFilePrefix and a generation next to
// the bbolt file, takes the write-behind: each tick appends the changed
// calls' records to it, one frame each, and syncs it once. A bbolt
// transaction per tick wrote again every page a changed call touched
// (7.4 KB and 39 µs per changed call in BenchmarkFlushChanged); the log
// writes the change once, in sequence. A checkpoint starts the log of
// the next generation, which the appends go on to; writes the current
// records of the calls the logs before it hold into the bbolt file, some
// at a time (PutCurrent), each with the place in the logs where it was
// read; then records their generation as folded in and deletes them
// (FoldIn). Open folds in the logs a botd that stopped without a
// checkpoint (kill -9, a crash) left, skipping each call's frames from
// before the place its record in the file was read at, and deletes them.
//
// Layout: a 16-byte header, logMagic and the generation (8 bytes,
// big-endian), then frames: the body's length (4 bytes, little-endian),
// its CRC-32C (4 bytes, little-endian), and the body: a kind byte
// (kindCall, kindRun), the id's length (uvarint), the id, the number of
// the call's oldest transition (Record.FirstTransition, uvarint; 0 for a
// run), the number of transitions the record left out (Record.Skipped,
// uvarint; 0 for a run), the number of transitions it holds (uvarint; 0 for a run), each as its
// length (uvarint) and JSON, and the record as JSON without them: a call's
// record and transitions are encoded as the file holds them. A frame
// that does not read (short, or its CRC wrong) is a write cut short: the
// log ends before it.

// LogFilePrefix and a generation number name each log in the journal's
// directory.
const LogFilePrefix = FileName + ".log."

var logMagic = []byte("botdlog1")

const (
	logHeaderLen   = 16
	frameHeaderLen = 8
	// maxFrame bounds a frame's body: a length over it is not a frame,
	// and a record that would need one is not written.
	maxFrame = 64 << 20
)

// The kinds of frame.
const (
	kindCall byte = 'c'
	kindRun  byte = 'r'
)

// keyLogGen, in the meta bucket, is the generation of the last log folded
// into the file (decimal): a log of that generation or older is already
// in it.
var keyLogGen = []byte("logGeneration")

// bucketLogPos maps a call id to where in the logs (logPos: generation
// and offset, 8 bytes each, big-endian) the last checkpoint that wrote
// the call's record read it: the call's frames before that place are
// older than the record, those after newer.
var bucketLogPos = []byte("logPositions")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame is one decoded frame; its id, transitions and data are views of
// the reader's buffer, valid until the next frame.
type frame struct {
	gen         uint64 // its log's generation
	off         int64  // where the frame starts in its log
	kind        byte
	id          []byte
	first       uint64
	skipped     uint64
	transitions [][]byte
	data        []byte
}

// startFrame appends the start of a frame of kind, id, first and
// skipped, with n transitions, to dst; the transitions and the record's
// JSON follow, and endFrame, given the frame's start, ends it.
func startFrame(dst []byte, kind byte, id string, first, skipped uint64, n int) []byte {
	dst = append(dst, make([]byte, frameHeaderLen)...)
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(id)))
	dst = append(dst, id...)
	dst = binary.AppendUvarint(dst, first)
	dst = binary.AppendUvarint(dst, skipped)
	return binary.AppendUvarint(dst, uint64(n))
}

func endFrame(dst []byte, at int) []byte {
	body := dst[at+frameHeaderLen:]
	binary.LittleEndian.PutUint32(dst[at:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[at+4:], crc32.Checksum(body, castagnoli))
	return dst
}

// appendFrame appends a whole frame to dst.
func appendFrame(dst []byte, fr frame) []byte {
	at := len(dst)
	dst = startFrame(dst, fr.kind, string(fr.id), fr.first, fr.skipped, len(fr.transitions))
	for _, t := range fr.transitions {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	return endFrame(append(dst, fr.data...), at)
}

func logHeader(gen uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clone(logMagic), gen)
}

// errNotALog is readLog's error for a file whose header is not a log's.
var errNotALog = errors.New("not a botd journal log")

// readLog reads a log from r: its generation, and each frame, in order,
// to fn, until the end or the first frame that does not read. good is the
// length of what reads, header included; 0 with gen 0 for a log shorter
// than its header (its creation cut short).
// A frame whose CRC holds but whose body does not parse is an error, as
// is fn's.
func readLog(r io.Reader, fn func(frame) error) (gen uint64, good int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	hdr := make([]byte, logHeaderLen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	if string(hdr[:len(logMagic)]) != string(logMagic) {
		return 0, 0, errNotALog
	}
	gen, good = binary.BigEndian.Uint64(hdr[len(logMagic):]), logHeaderLen
	var fh [frameHeaderLen]byte
	var body []byte
	for {
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return gen, good, nil
			}
			return gen, good, err
		}
		n := binary.LittleEndian.Uint32(fh[:])
		if n == 0 || n > maxFrame {
			return gen, good, nil
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return gen, good, nil
			}
			return gen, good, err
		}
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(fh[4:]) {
			return gen, good, nil
		}
		fr, err := parseFrame(body)
		if err != nil {
			return gen, good, fmt.Errorf("frame at byte %d: %w", good, err)
		}
		fr.gen, fr.off = gen, good
		if err := fn(fr); err != nil {
			return gen, good, err
		}
		good += frameHeaderLen + int64(n)
	}
}

// parseFrame reads a frame's body.
func parseFrame(b []byte) (frame, error) {
	fr := frame{kind: b[0]}
	if fr.kind != kindCall && fr.kind != kindRun {
		return fr, fmt.Errorf("kind %q", fr.kind)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return fr, errors.New("id length")
	}
	fr.id, b = b[k:k+int(n)], b[k+int(n):]
	if fr.first, k = binary.Uvarint(b); k <= 0 {
		return fr, errors.New("first transition")
	}
	b = b[k:]
	if fr.skipped, k = binary.Uvarint(b); k <= 0 {
		return fr, errors.New("skipped count")
	}
	b = b[k:]
	n, k = binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return fr, errors.New("transition count")
	}
	b = b[k:]
	if n > 0 {
		fr.transitions = make([][]byte, n)
	}
	for i := range fr.transitions {
		m, k := binary.Uvarint(b)
		if k <= 0 || m > uint64(len(b)-k) {
			return fr, fmt.Errorf("transition %d length", i)
		}
		fr.transitions[i], b = b[k:k+int(m)], b[k+int(m):]
	}
	fr.data = b
	return fr, nil
}

// logFile is the open log: its file, generation, and the length of its
// good part, where the next frame goes.
type logFile struct {
	f    *os.File
	path string
	gen  uint64
	size int64
	// torn is set when a write failed part way: the file is cut back to
	// size before the next one.
	torn bool
	buf  []byte
}

// append writes recs and runs as frames, in one write, and syncs the
// file. On failure the log stays as it was: what was written of it is cut
// off before the next append.
func (l *logFile) append(recs []callstate.Record, runs []flows.RunRecord) error {
	if l.torn {
		if err := l.f.Truncate(l.size); err != nil {
			return fmt.Errorf("journal log: cut back a failed write: %w", err)
		}
		l.torn = false
	}
	buf := l.buf[:0]
	for i := range recs {
		at := len(buf)
		var err error
		if buf, err = appendCallFrame(buf, &recs[i]); err != nil {
			return err
		}
		if n := len(buf) - at - frameHeaderLen; n > maxFrame {
			return fmt.Errorf("journal: call %s: its record is %d bytes, over the log's %d", recs[i].Call.ID, n, maxFrame)
		}
	}
	for i := range runs {
		data, err := json.Marshal(&runs[i])
		if err != nil {
			return fmt.Errorf("journal: encode run %s: %w", runs[i].View.ID, err)
		}
		buf = appendFrame(buf, frame{kind: kindRun, id: []byte(runs[i].View.ID), data: data})
	}
	if cap(buf) <= 1<<20 {
		l.buf = buf
	}
	if len(buf) == 0 {
		return nil
	}
	if _, err := l.f.WriteAt(buf, l.size); err != nil {
		l.torn = true
		return fmt.Errorf("journal log: %w", err)
	}
	if err := syncData(l.f); err != nil {
		l.torn = true
		return fmt.Errorf("journal log: sync: %w", err)
	}
	l.size += int64(len(buf))
	return nil
}

// appendCallFrame appends r's frame to dst: its transitions each as the
// file holds one (Transition.AppendJSON), and the rest of it as the file
// holds a record (encodeRecord).
func appendCallFrame(dst []byte, r *callstate.Record) ([]byte, error) {
	at := len(dst)
	dst = startFrame(dst, kindCall, r.Call.ID, r.FirstTransition, r.Skipped, len(r.Transitions))
	for i := range r.Transitions {
		// The length goes before the JSON: one byte for the length of
		// most, moved along in the rare case it needs more.
		lat := len(dst)
		dst = append(dst, 0)
		var err error
		if dst, err = r.Transitions[i].AppendJSON(dst); err != nil {
			return dst[:at], fmt.Errorf("journal: encode call %s: %w", r.Call.ID, err)
		}
		if n := len(dst) - lat - 1; n < 0x80 {
			dst[lat] = byte(n)
		} else {
			js := slices.Clone(dst[lat+1:])
			dst = append(binary.AppendUvarint(dst[:lat], uint64(n)), js...)
		}
	}
	dst, err := encodeRecord(dst, r)
	if err != nil {
		return dst[:at], err
	}
	return endFrame(dst, at), nil
}

// createLog creates the log of generation gen in dir, with its header,
// synced with its directory entry: a frame synced into it later is
// found after a crash.
func createLog(dir string, gen uint64) (*logFile, error) {
	path := logPath(dir, gen)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal log: %w", err)
	}
	if _, err = f.Write(logHeader(gen)); err == nil {
		err = syncData(f)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal log %s: %w", path, err)
	}
	return &logFile{f: f, path: path, gen: gen, size: logHeaderLen}, nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// logPath is the file of the log of generation gen.
func logPath(dir string, gen uint64) string {
	return filepath.Join(dir, LogFilePrefix+strconv.FormatUint(gen, 10))
}

// logRef is a log file that is no longer appended to: its generation,
// path, and the length of its good part (-1 when not known: read to its
// first bad frame).
type logRef struct {
	gen  uint64
	path string
	size int64
}

// logFiles lists the logs in dir, oldest generation first.
func logFiles(dir string) ([]logRef, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal log: %w", err)
	}
	var out []logRef
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), LogFilePrefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		gen, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || strconv.FormatUint(gen, 10) != rest {
			continue // not a name botd gives
		}
		out = append(out, logRef{gen: gen, path: filepath.Join(dir, e.Name()), size: -1})
	}
	slices.SortFunc(out, func(a, b logRef) int { return cmp.Compare(a.gen, b.gen) })
	return out, nil
}

// read folds the frames of the log file ref into fl, only the calls keep
// says (all when nil), and returns the length of its good part and of
// the file.
func (ref logRef) read(fl *foldedLog, keep map[string]bool) (good, size int64, err error) {
	f, err := os.Open(ref.path)
	if err != nil {
		return 0, 0, fmt.Errorf("journal log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("journal log: %w", err)
	}
	var r io.Reader = f
	if ref.size >= 0 {
		r = io.NewSectionReader(f, 0, ref.size)
	}
	gen, good, err := fl.read(r, keep)
	if err == nil && good > 0 && gen != ref.gen {
		err = fmt.Errorf("its header says generation %d", gen)
	}
	if err != nil {
		return 0, 0, logCorrupt(ref.path, err)
	}
	return good, st.Size(), nil
}

// foldedLog is what a log holds of each call and flow run, its frames
// applied in order.
type foldedLog struct {
	calls   map[string]*callstate.Record
	runs    map[string]flows.RunRecord
	entries int
	// since is where in the logs each call's record in the file was
	// read by a checkpoint: a call's frames before it are older.
	since map[string]logPos
}

// logPos is a place in the logs: a generation, and an offset in its file.
type logPos struct {
	gen uint64
	off int64
}

func (p logPos) before(q logPos) bool {
	return p.gen < q.gen || p.gen == q.gen && p.off < q.off
}

func (p logPos) append(dst []byte) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(dst, p.gen), uint64(p.off))
}

// parseLogPos reads a stored place; false for one that is not 16 bytes.
func parseLogPos(b []byte) (logPos, bool) {
	if len(b) != 16 {
		return logPos{}, false
	}
	return logPos{binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:]))}, true
}

func newFoldedLog() *foldedLog {
	return &foldedLog{calls: map[string]*callstate.Record{}, runs: map[string]flows.RunRecord{}}
}

// read applies the log in r to fl; only the calls keep says, all when
// keep is nil (runs always). It returns the log's generation and the
// length of its good part.
func (fl *foldedLog) read(r io.Reader, keep map[string]bool) (uint64, int64, error) {
	return readLog(r, func(fr frame) error {
		switch fr.kind {
		case kindRun:
			var rr flows.RunRecord
			if err := json.Unmarshal(fr.data, &rr); err != nil || rr.View.ID != string(fr.id) {
				return fmt.Errorf("flow run %q: record does not decode: %v", fr.id, err)
			}
			fl.runs[rr.View.ID] = rr
		case kindCall:
			if keep != nil && !keep[string(fr.id)] {
				return nil
			}
			if p, ok := fl.since[string(fr.id)]; ok && (logPos{fr.gen, fr.off}).before(p) {
				return nil // the file holds a newer record
			}
			rec, err := decodeRecord(fr.data)
			if err == nil && rec.Call.ID != string(fr.id) {
				err = fmt.Errorf("record of call %q in its frame", rec.Call.ID)
			}
			if err == nil && len(rec.Transitions) > 0 {
				err = errors.New("record holds its transitions")
			}
			held, c1 := bits.Add64(fr.first, fr.skipped, 0)
			if _, c2 := bits.Add64(held, uint64(len(fr.transitions)), 0); err == nil && c1|c2 != 0 {
				err = errors.New("transition numbers overflow")
			}
			for i := 0; err == nil && i < len(fr.transitions); i++ {
				var t callstate.Transition
				if err = json.Unmarshal(fr.transitions[i], &t); err == nil {
					rec.Transitions = append(rec.Transitions, t)
				}
			}
			if err != nil {
				return fmt.Errorf("call %q: %w", fr.id, err)
			}
			rec.FirstTransition, rec.Skipped = fr.first, fr.skipped
			fl.addCall(rec)
		}
		fl.entries++
		return nil
	})
}

// addCall applies a call's newer record to what the log held of it: the
// newer record, with the transitions of both, those the newer one
// dropped aside. A record of another life of the id, or one that follows
// transitions the log does not hold (not written by this journal's
// writer), replaces the older.
func (fl *foldedLog) addCall(r callstate.Record) {
	old, ok := fl.calls[r.Call.ID]
	held := r.FirstTransition + r.Skipped
	if ok && old.Life() == r.Life() {
		oldHeld := old.FirstTransition + old.Skipped
		oldNext := oldHeld + uint64(len(old.Transitions))
		if oldHeld <= held && held <= oldNext {
			ts := append(slices.Clip(old.Transitions[:held-oldHeld]), r.Transitions...)
			start := oldHeld
			if drop := r.FirstTransition; drop > start {
				cut := min(drop-start, uint64(len(ts)))
				ts, start = ts[cut:], start+cut
			}
			r.Transitions = ts
			r.Skipped = start - r.FirstTransition
		}
	}
	fl.calls[r.Call.ID] = &r
}

// records is the folded calls, for putRecords.
func (fl *foldedLog) records() []callstate.Record {
	out := make([]callstate.Record, 0, len(fl.calls))
	for _, r := range fl.calls {
		out = append(out, *r)
	}
	return out
}

func (fl *foldedLog) runRecords() []flows.RunRecord {
	out := make([]flows.RunRecord, 0, len(fl.runs))
	for _, r := range fl.runs {
		out = append(out, r)
	}
	return out
}

// openLog folds into the file what the logs in its directory hold that
// it does not (a botd that stopped without a checkpoint left them), in
// generation order, deletes them, and starts the log of the next
// generation.
func (j *Journal) openLog() error {
	refs, err := logFiles(j.dir)
	if err != nil {
		return err
	}
	folded, err := j.loggedGeneration()
	if err != nil {
		return err
	}
	// The logs of generations folded in already are in the file.
	unfolded := slices.DeleteFunc(slices.Clone(refs), func(ref logRef) bool { return ref.gen <= folded })
	fl, cut, err := j.fold(unfolded, nil)
	if err != nil {
		return err
	}
	last := folded
	if len(unfolded) > 0 {
		last = unfolded[len(unfolded)-1].gen
	}
	j.cutTail = cut
	if last > folded {
		if err := j.db.Update(func(tx *bolt.Tx) error {
			return foldIn(tx, fl.records(), fl.runRecords(), last)
		}); err != nil {
			return logCorrupt(refs[len(refs)-1].path, err)
		}
		j.replayed = fl.entries
	}
	for _, ref := range refs {
		if err := os.Remove(ref.path); err != nil {
			return fmt.Errorf("journal log: %w", err)
		}
	}
	j.cur, err = createLog(j.dir, last+1)
	return err
}

// fold reads the logs refs, in order, into one foldedLog: only the calls
// keep says (all when nil), and of each only the frames after the place
// its record in the file was read at (positions). cut is the bytes after
// the last good frame of each log, a header cut short included.
func (j *Journal) fold(refs []logRef, keep map[string]bool) (fl *foldedLog, cut int64, err error) {
	fl = newFoldedLog()
	if fl.since, err = j.positions(); err != nil {
		return nil, 0, err
	}
	for _, ref := range refs {
		good, size, err := ref.read(fl, keep)
		if err != nil {
			return nil, 0, err
		}
		cut += size - good
	}
	return fl, cut, nil
}

func logCorrupt(path string, err error) error {
	return fmt.Errorf("journal log %s cannot be read (%v): move it aside (mv %s %s.broken) to start from the journal file without the changes it holds, or set BOTD_STATE=memory", path, err, path, path)
}

// loggedGeneration is the generation of the last log folded into the file.
func (j *Journal) loggedGeneration() (uint64, error) {
	var gen uint64
	err := j.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyLogGen)
		if v == nil {
			return nil
		}
		var err error
		if gen, err = strconv.ParseUint(string(v), 10, 64); err != nil {
			return corrupt(j.path, fmt.Errorf("log generation %q", v))
		}
		return nil
	})
	return gen, err
}

// foldIn writes, in tx, what the logs up to generation gen hold: recs,
// each fitted to the transitions the file holds (fit), and runs; and
// records gen as folded in.
func foldIn(tx *bolt.Tx, recs []callstate.Record, runs []flows.RunRecord, gen uint64) error {
	heads := tx.Bucket(bucketTransitionHeads)
	for i := range recs {
		have, ok := parseHead(heads.Get([]byte(recs[i].Call.ID)))
		fit(&recs[i], have, ok)
	}
	if err := putRuns(tx.Bucket(bucketRuns), runs); err != nil {
		return err
	}
	if err := putRecords(tx, recs); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyLogGen, []byte(strconv.FormatUint(gen, 10)))
}

// positions is where a checkpoint read each call's record in the file,
// by call id (bucketLogPos).
func (j *Journal) positions() (map[string]logPos, error) {
	out := map[string]logPos{}
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLogPos).ForEach(func(k, v []byte) error {
			if p, ok := parseLogPos(v); ok {
				out[string(k)] = p
			}
			return nil
		})
	})
	return out, err
}

// fit makes r, a record that leaves out the transitions it says the file
// holds, one that leaves out only those the file does hold: where it does
// not (a file older than the log, which this journal's writer does not
// make), the transitions r leaves out are lost, and r starts at the first
// it has.
func fit(r *callstate.Record, have head, ok bool) {
	if r.Skipped == 0 {
		return
	}
	held := r.FirstTransition + r.Skipped
	if ok && have.life == r.Life() && have.first <= r.FirstTransition && held <= have.next {
		return
	}
	r.FirstTransition, r.Skipped = held, 0
}

// Append writes recs and runs to the log, synced, and returns the log's
// size after and its generation: the write-behind's write. A failed
// append leaves the log as it was.
func (j *Journal) Append(recs []callstate.Record, runs []flows.RunRecord) (size int64, gen uint64, err error) {
	j.logMu.Lock()
	defer j.logMu.Unlock()
	if j.cur == nil {
		return 0, 0, errClosed
	}
	err = j.cur.append(recs, runs)
	return j.cur.size, j.cur.gen, err
}

var errClosed = errors.New("journal: closed")

// Rotate starts the log of the next generation, which the appends go to
// from then on, and returns the generation of the one before: a
// checkpoint up to it (PutCurrent, FoldIn) folds it into the file. While
// a log retired before is not folded in yet (a checkpoint failed), or
// the log appended to holds nothing, no new one starts: a checkpoint
// tried again and again makes no new files.
func (j *Journal) Rotate() (uint64, error) {
	j.logMu.Lock()
	defer j.logMu.Unlock()
	if j.cur == nil {
		return 0, errClosed
	}
	if len(j.retired) > 0 || j.cur.size <= logHeaderLen && !j.cur.torn {
		return j.cur.gen - 1, nil
	}
	next, err := createLog(j.dir, j.cur.gen+1)
	if err != nil {
		return 0, err
	}
	old := j.cur
	if old.torn && old.f.Truncate(old.size) == nil {
		old.torn = false
	}
	_ = old.f.Close()
	j.retired = append(j.retired, logRef{gen: old.gen, path: old.path, size: old.size})
	j.cur = next
	return old.gen, nil
}

// PutCurrent writes recs, current records of calls the logs hold (each
// less the transitions the file has), read when the logs ended at at
// (Position), into the file, in one transaction: a part of a checkpoint,
// which FoldIn ends. The file then holds, for each, a record newer than
// the frames before at, and older than those after: Open, and FoldIn,
// fold in only those after. A record that leaves out transitions the
// file does not have is errPartial, and nothing is written.
func (j *Journal) PutCurrent(recs []callstate.Record, at logPos) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		if err := putRecords(tx, recs); err != nil {
			return err
		}
		b := tx.Bucket(bucketLogPos)
		for i := range recs {
			if err := b.Put([]byte(recs[i].Call.ID), at.append(make([]byte, 0, 16))); err != nil {
				return err
			}
		}
		return nil
	})
}

// Position is where the log appended to ends: what is appended from then
// on comes after it. Callers order it with the appends.
func (j *Journal) Position() logPos {
	j.logMu.Lock()
	defer j.logMu.Unlock()
	if j.cur == nil {
		return logPos{}
	}
	return logPos{j.cur.gen, j.cur.size}
}

// FoldIn ends a checkpoint: it writes into the file, in one transaction,
// the logs' own last records of the calls in gone (those the store no
// longer holds, from the logs up to generation upTo), and runs; records
// upTo as folded in; and deletes those logs. Appends go on meanwhile, to
// the log after them (Rotate).
func (j *Journal) FoldIn(runs []flows.RunRecord, gone []string, upTo uint64) error {
	j.logMu.Lock()
	var refs []logRef
	for _, ref := range j.retired {
		if ref.gen <= upTo {
			refs = append(refs, ref)
		}
	}
	j.logMu.Unlock()
	var last []callstate.Record
	if len(gone) > 0 {
		keep := make(map[string]bool, len(gone))
		for _, id := range gone {
			keep[id] = true
		}
		fl, _, err := j.fold(refs, keep)
		if err != nil {
			return err
		}
		last = fl.records()
	}
	if err := j.db.Update(func(tx *bolt.Tx) error { return foldIn(tx, last, runs, upTo) }); err != nil {
		return err
	}
	j.logMu.Lock()
	defer j.logMu.Unlock()
	j.retired = slices.DeleteFunc(j.retired, func(ref logRef) bool { return ref.gen <= upTo })
	var err error
	for _, ref := range refs {
		// A log left behind is of a folded generation: Open deletes it.
		if rerr := os.Remove(ref.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// LogSize is the length in bytes of the log appends go to.
func (j *Journal) LogSize() int64 {
	j.logMu.Lock()
	defer j.logMu.Unlock()
	if j.cur == nil {
		return 0
	}
	return j.cur.size
}

// Replayed is what Open folded in from the logs a botd left without a
// checkpoint: the frames, and the bytes cut off after the last good one
// (a write cut short); 0, 0 when there was nothing to fold.
func (j *Journal) Replayed() (frames int, cut int64) { return j.replayed, j.cutTail }
