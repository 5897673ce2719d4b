package fleet

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Versions are stored as changes. A version is either a snapshot, its
// whole content (field "content"), or a patch (field "patch", see
// makePatch) against its parent's content, recorded with the snapshot its
// chain of patches starts from. Every version keeps the SHA-256 of its
// whole content, and its parent's: the identity an edge reports does not
// depend on how the version is stored.
//
// A writer stores a snapshot when:
//   - there is no parent, or its content is not at hand or not trusted
//     (a repaired or bad base), or the version is a reseed;
//   - the parent's chain already has SnapshotEvery-1 patches;
//   - the patch is more than half the size of the content (a mostly
//     different file);
//   - the chain's patches would add up to more than half the content.
//
// So a reader rebuilds any version from one snapshot and fewer than
// SnapshotEvery patches that together are smaller than the list, and
// Keep versions of one-line edits cost about Keep/SnapshotEvery+1 lists.
// Trimming keeps every version at or above the oldest snapshot a kept
// version needs. Versions written whole by an older edgeblock read as
// snapshots.

// SnapshotEvery bounds a chain: every SnapshotEvery-th version in a row
// of patches is stored whole.
const SnapshotEvery = 32

// storage is how planStorage stores a version: whole when patch is nil.
type storage struct {
	patch      []byte
	snapshot   int64
	chain      int
	chainBytes int64
}

// planStorage decides how content is stored over base (see above).
func planStorage(content []byte, base *Version, kind Kind) storage {
	if base == nil || base.Content == nil || base.Repaired || base.Problem != nil || kind == KindReseed || base.Number <= 0 {
		return storage{}
	}
	if base.Chain+1 >= SnapshotEvery {
		return storage{}
	}
	p := makePatch(base.Content, content)
	if 2*len(p) > len(content) || 2*(base.ChainBytes+int64(len(p))) > int64(len(content)) {
		return storage{}
	}
	snap := base.Snapshot
	if snap <= 0 || base.Chain == 0 {
		snap = base.Number
	}
	return storage{patch: p, snapshot: snap, chain: base.Chain + 1, chainBytes: base.ChainBytes + int64(len(p))}
}

// rebuilt is the content a Store last read or wrote, with its version.
type rebuilt struct {
	v Version // with Content
}

// remember keeps v (with its content, which nobody may modify) as the
// base the next Get rebuilds from.
func (s *Store) remember(v Version) {
	if v.Content == nil {
		return
	}
	s.lastMu.Lock()
	s.last = rebuilt{v: v}
	s.lastMu.Unlock()
}

// lastVersion returns the remembered version if it is version n.
func (s *Store) lastVersion(n int64) (Version, bool) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	if s.last.v.Number != n || s.last.v.Content == nil {
		return Version{}, false
	}
	return s.last.v, true
}

// Remember tells the Store the content of version n, which the caller
// holds (an edge's list in effect, read from its snapshot at start): the
// next Get of a newer version patches it rather than reading a snapshot.
// The content is checked against the SHA-256 the store records for n
// when the patches are applied; it must not be modified afterwards.
func (s *Store) Remember(n int64, content []byte) {
	if n <= 0 || content == nil {
		return
	}
	sum, sums := hashKeeping(content)
	s.remember(Version{Number: n, SHA256: hex.EncodeToString(sum[:]), Content: content, sums: sums})
}

// Get returns version n with its whole content, rebuilt from its snapshot
// and the patches after it, all read from the store (so that a version
// whose stored chain is damaged is reported, even when this Store holds
// its content). It returns ErrNotFound if n was never published
// or has been trimmed, and an error matching ErrCorrupt if the content
// does not hash to the recorded SHA-256 (or a patch on the way cannot be
// applied). The returned Content is shared with the Store and must not be
// modified.
func (s *Store) Get(ctx context.Context, n int64) (Version, error) {
	v, err := s.get(ctx, n, nil)
	if err == nil {
		s.remember(v)
	}
	return v, err
}

// Next returns version n as Get does, but rebuilt from the version this
// Store last read or wrote (or was told of by Remember) when n descends
// from it: the patches after it only, not the snapshot. This is how an
// edge follows the fleet: each new version costs its patch. The result is
// checked against its SHA-256 as Get's is; when the remembered content
// does not lead to it, Next rebuilds from the snapshot.
func (s *Store) Next(ctx context.Context, n int64) (Version, error) {
	s.lastMu.Lock()
	last := s.last.v
	s.lastMu.Unlock()
	var base *Version
	if last.Content != nil {
		base = &last
	}
	v, err := s.get(ctx, n, base)
	if errors.Is(err, errBadBase) {
		v, err = s.get(ctx, n, nil)
	}
	if err == nil {
		s.remember(v)
	}
	return v, err
}

// errBadBase: rebuilding from the remembered content failed.
var errBadBase = errors.New("fleet: the remembered base does not rebuild the version")

// link is one version on the way from a base to the version read.
type link struct {
	v     Version
	patch []byte
}

// get rebuilds version n from its snapshot, or from last (with its
// content) if n descends from it by patches. It reads version n, then in
// one round trip every version between it and its snapshot (or last),
// then the snapshot's content if needed: three round trips whatever the
// chain's length.
func (s *Store) get(ctx context.Context, n int64, last *Version) (Version, error) {
	read := map[int64]stored{}
	first, err := s.readStoredMany(ctx, []int64{n})
	if err != nil {
		return Version{}, err
	}
	if st := first[n]; st.kept && !st.whole {
		lo := st.v.Snapshot
		if last != nil && last.Number >= lo && last.Number < n {
			lo = last.Number
		}
		if n-lo <= 2*SnapshotEvery {
			nums := make([]int64, 0, n-lo)
			for k := lo; k < n; k++ {
				nums = append(nums, k)
			}
			if read, err = s.readStoredMany(ctx, nums); err != nil {
				return Version{}, err
			}
		}
	}
	read[n] = first[n]
	var chain []link // newest first
	var base Version
	fromLast := false
	for cur := n; ; {
		if len(chain) > maxChain {
			return Version{}, fmt.Errorf("fleet: version %d: more than %d patches: %w", n, maxChain, ErrCorrupt)
		}
		st, ok := read[cur]
		if !ok {
			m, err := s.readStoredMany(ctx, []int64{cur})
			if err != nil {
				return Version{}, err
			}
			st = m[cur]
		}
		if !st.kept {
			if cur == n {
				return Version{}, fmt.Errorf("fleet: version %d: %w", n, ErrNotFound)
			}
			if _, stillKept, err := s.getMeta(ctx, n); err == nil && !stillKept {
				return Version{}, fmt.Errorf("fleet: version %d: %w", n, ErrNotFound)
			}
			return Version{}, fmt.Errorf("fleet: version %d: version %d, which it is rebuilt from, is not kept: %w", n, cur, ErrCorrupt)
		}
		v := st.v
		if last != nil && last.Number == cur && last.SHA256 == v.SHA256 {
			base, fromLast = v, true
			base.Content, base.sums = last.Content, last.sums
			break
		}
		if st.whole {
			c, err := s.rdb.HGet(ctx, s.k.vprefix+strconv.FormatInt(cur, 10), "content").Bytes()
			if err != nil {
				return Version{}, fmt.Errorf("fleet: read version %d: %w", cur, err)
			}
			v.Content = c
			if cur == n {
				if err := checkSum(&v); err != nil {
					return Version{}, err
				}
			}
			// Else the snapshot is checked through the result's hash
			// (one SHA-256 of the list, not two), and on its own only
			// when that fails, to name it.
			base = v
			break
		}
		if v.ParentNumber <= 0 || v.ParentNumber >= cur {
			return Version{}, fmt.Errorf("fleet: version %d is stored as a patch without a parent to apply it to: %w", cur, ErrCorrupt)
		}
		chain = append(chain, link{v: v, patch: st.patch})
		cur = v.ParentNumber
	}
	if len(chain) == 0 {
		return base, nil
	}
	v, err := replayPieces(base, chain)
	if err != nil && fromLast {
		return Version{}, errBadBase
	}
	if err != nil {
		if berr := checkSum(&base); berr != nil {
			return Version{}, fmt.Errorf("fleet: version %d is rebuilt from version %d: %w", n, base.Number, berr)
		}
	}
	if errors.Is(err, ErrCorrupt) && len(chain) > 1 {
		// Name the first version on the way that is wrong.
		if _, err2 := replay(base, chain, true); err2 != nil && err2.Error() != err.Error() {
			err = fmt.Errorf("fleet: version %d is rebuilt through a bad version: %w", n, err2)
		}
	}
	return v, err
}

// replayPieces applies chain (newest first) to base as a piece table,
// copying the content once, and checks the SHA-256 of the result.
func replayPieces(base Version, chain []link) (Version, error) {
	ps := pieces{parts: [][]byte{base.Content}, size: len(base.Content)}
	prev := base
	for i := len(chain) - 1; i >= 0; i-- {
		l := chain[i]
		if l.v.Parent != "" && l.v.Parent != prev.SHA256 {
			return Version{}, fmt.Errorf("fleet: version %d's parent is recorded as sha256 %.12s, but version %d holds %.12s: %w",
				l.v.Number, l.v.Parent, prev.Number, prev.SHA256, ErrCorrupt)
		}
		var err error
		if ps, err = ps.patch(l.patch); err != nil {
			return Version{}, fmt.Errorf("fleet: version %d: its patch against version %d: %v: %w", l.v.Number, prev.Number, err, ErrCorrupt)
		}
		prev = l.v
	}
	v := chain[0].v
	v.Content = ps.bytes()
	err := checkSumFrom(&v, base.sums)
	return v, err
}

// replay applies chain (newest first) to base one version at a time,
// checking the SHA-256 of the result, and of every step when each (to
// name the first bad version).
func replay(base Version, chain []link, each bool) (Version, error) {
	cur := base
	for i := len(chain) - 1; i >= 0; i-- {
		l := chain[i]
		if l.v.Parent != "" && l.v.Parent != cur.SHA256 {
			return Version{}, fmt.Errorf("fleet: version %d's parent is recorded as sha256 %.12s, but version %d holds %.12s: %w",
				l.v.Number, l.v.Parent, cur.Number, cur.SHA256, ErrCorrupt)
		}
		c, err := applyPatch(cur.Content, l.patch)
		if err != nil {
			return Version{}, fmt.Errorf("fleet: version %d: its patch against version %d: %v: %w", l.v.Number, cur.Number, err, ErrCorrupt)
		}
		next := l.v
		next.Content = c
		if each || i == 0 {
			if err := checkSum(&next); err != nil {
				return Version{}, err
			}
		}
		cur = next
	}
	return cur, nil
}

// storedFields are read for each version on the way to a base.
var storedFields = append(append([]string(nil), metaFields...), "patch")

// stored is one version as read by readStoredMany: its fields other than
// its content; whole is true when it is stored whole (a non-empty
// "content" field wins over a patch), else patch is its patch. kept is
// false when the version is not kept.
type stored struct {
	v     Version
	patch []byte
	whole bool
	kept  bool
}

// readStoredMany reads versions nums in one round trip (HGETs and
// HSTRLEN in a pipeline: the commands of the fleet's ACL list).
func (s *Store) readStoredMany(ctx context.Context, nums []int64) (map[int64]stored, error) {
	pipe := s.rdb.Pipeline()
	type cmds struct {
		fields []*redis.StringCmd
		clen   *redis.IntCmd
	}
	all := make([]cmds, len(nums))
	for i, n := range nums {
		key := s.k.vprefix + strconv.FormatInt(n, 10)
		all[i].fields = make([]*redis.StringCmd, len(storedFields))
		for j, f := range storedFields {
			all[i].fields[j] = pipe.HGet(ctx, key, f)
		}
		all[i].clen = pipe.HStrLen(ctx, key, "content")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("fleet: read versions %v: %w", nums, err)
	}
	out := make(map[int64]stored, len(nums))
	for i, n := range nums {
		m := make(map[string]string, len(storedFields))
		for j, c := range all[i].fields {
			if c.Err() == nil {
				m[storedFields[j]] = c.Val()
			}
		}
		p, hasPatch := m["patch"]
		hasContent := all[i].clen.Val() > 0
		if _, ok := m["sha256"]; !ok && !hasContent {
			out[n] = stored{}
			continue
		}
		st := stored{v: versionMeta(n, m), whole: hasContent || !hasPatch, kept: true}
		if st.whole {
			st.v.Snapshot, st.v.Chain, st.v.ChainBytes = n, 0, 0
		} else {
			st.patch = []byte(p)
		}
		out[n] = st
	}
	return out, nil
}
