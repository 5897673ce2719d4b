package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrDivergent is matched (errors.Is) by the *DivergentError writers get
// on a store whose history does not hold what the edges run.
var ErrDivergent = errors.New("fleet: the store is divergent")

// ErrInvalid marks a version whose content fails Store.Validate.
var ErrInvalid = errors.New("fleet: version fails validation")

// DivergentError says why a store is divergent: it lost versions (it was
// restarted empty, or restored from an older dump, so numbers are reused
// with other content), or holds a corrupt copy of what an edge runs.
// Writers refuse to write on it until it is reseeded.
type DivergentError struct {
	// Reasons are one line per live node that diverges, with its name.
	Reasons []string
}

func (e *DivergentError) Error() string {
	return "fleet: the store is divergent: " + strings.Join(e.Reasons, "; ") +
		"; nothing written: reseed it from the newest list an edge applied with `edgeblock fleet reseed`"
}

// Is makes errors.Is(err, ErrDivergent) true.
func (e *DivergentError) Is(target error) bool { return target == ErrDivergent }

// LiveAfter is how recent a node's heartbeat must be for the node to count
// in a writer's check (edges beat every few seconds).
const LiveAfter = 30 * time.Second

// Health is the store's history judged against the nodes' heartbeats.
type Health struct {
	// Number is the newest version number (0: nothing published).
	Number int64
	// Head is the newest good version, with its content: intact and
	// passing Validate. Number 0 if there is none. Writers build on it.
	Head Version
	// Bad are the versions above Head that are not good, newest first,
	// each with Problem set (ErrCorrupt or ErrInvalid).
	Bad []Version
	// Nodes are every node's last heartbeat, each judged (Behind against
	// Number; Divergent against the store).
	Nodes []NodeStatus
	// Divergence lists why the store is divergent, one line per live
	// node that diverges; empty when it is not.
	Divergence []string
}

// Writable returns a *DivergentError when the store is divergent, else nil.
func (h *Health) Writable() error {
	if len(h.Divergence) == 0 {
		return nil
	}
	return &DivergentError{Reasons: h.Divergence}
}

// Check reads the store's history and heartbeats and judges them: the
// head (newest good version), the bad versions above it, and whether any
// node whose heartbeat is at most liveAfter old runs a list the store
// does not hold at that number (the store is then divergent).
func (s *Store) Check(ctx context.Context, liveAfter time.Duration) (Health, error) {
	var h Health
	// The heartbeats first: the number read with them, and the one read
	// after, are at least every version a heartbeat names, unless the
	// store lost versions.
	nodes, floor, err := s.nodes(ctx, liveAfter)
	if err != nil {
		return h, err
	}
	h.Nodes = nodes
	n, err := s.CurrentNumber(ctx)
	if err != nil {
		return h, err
	}
	h.Number = n
	if h.Head, h.Bad, err = s.head(ctx, n); err != nil {
		return h, err
	}
	if sum := s.runsCorrupt(&h); sum != "" {
		// A live node runs a version whose stored content is corrupt:
		// ask the edges for a copy of it, and wait a little for one.
		if err := s.rdb.Set(ctx, s.k.want, sum, time.Minute).Err(); err != nil {
			return h, fmt.Errorf("fleet: ask for a copy of %s: %w", sum, err)
		}
		deadline := time.Now().Add(copyWait)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			if _, err := s.ReadCopy(ctx, sum); err == nil {
				if h.Head, h.Bad, err = s.head(ctx, n); err != nil {
					return h, err
				}
				break
			}
		}
	}
	metas := map[int64]*Version{} // one read per version number, not per node
	for i := range h.Nodes {
		ns := &h.Nodes[i]
		if ns.Divergent, err = s.diverges(ctx, ns.Heartbeat, floor, &h, metas); err != nil {
			return h, err
		}
		if ns.Divergent != "" && !ns.Silent {
			h.Divergence = append(h.Divergence, ns.Node+": "+ns.Divergent)
		}
	}
	return h, nil
}

// Head returns the newest good version (intact, passing Validate), with
// its content, and the bad versions above it, newest first, each with
// Problem set. Head is ErrNoVersion when no good version is kept.
func (s *Store) Head(ctx context.Context) (Version, []Version, error) {
	n, err := s.CurrentNumber(ctx)
	if err != nil {
		return Version{}, nil, err
	}
	head, bad, err := s.head(ctx, n)
	if err == nil && head.Number == 0 {
		err = ErrNoVersion
	}
	return head, bad, err
}

// head is Head below version number n.
func (s *Store) head(ctx context.Context, n int64) (Version, []Version, error) {
	var bad []Version
	nums, err := s.rdb.ZRevRange(ctx, s.k.versions, 0, -1).Result()
	if err != nil {
		return Version{}, nil, fmt.Errorf("fleet: read history: %w", err)
	}
	for _, num := range nums {
		k, err := strconv.ParseInt(num, 10, 64)
		if err != nil || k > n {
			continue
		}
		v, err := s.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // trimmed meanwhile
		}
		if errors.Is(err, ErrCorrupt) {
			m, _, _ := s.getMeta(ctx, k)
			c, cerr := s.ReadCopy(ctx, m.SHA256)
			if cerr != nil {
				m.Problem = err
				bad = append(bad, m)
				continue
			}
			// An edge that ran it saved a copy: the version is whole.
			v, err = m, nil
			v.Content, v.Repaired = c, true
		}
		if err != nil {
			return Version{}, nil, err
		}
		if s.Validate != nil && !v.Validated {
			if verr := s.Validate(v.Content); verr != nil {
				v.Problem = fmt.Errorf("%w: %v", ErrInvalid, verr)
				bad = append(bad, v)
				continue
			}
		}
		return v, bad, nil
	}
	return Version{}, bad, nil
}

// copyWait bounds how long Check waits for an edge to save a copy of a
// list whose stored content is corrupt (edges look every 250ms).
const copyWait = 3 * time.Second

// runsCorrupt returns the recorded SHA-256 of a bad, corrupt version that
// a live node runs ("" if none).
func (s *Store) runsCorrupt(h *Health) string {
	for _, b := range h.Bad {
		if !errors.Is(b.Problem, ErrCorrupt) {
			continue
		}
		for _, n := range h.Nodes {
			if !n.Silent && n.Version == b.Number && n.SHA256 == b.SHA256 {
				return b.SHA256
			}
		}
	}
	return ""
}

// CopyWanted returns the SHA-256 of the list a writer asked edges for a
// copy of ("" if none): one whose stored content is corrupt.
func (s *Store) CopyWanted(ctx context.Context) (string, error) {
	sum, err := s.rdb.Get(ctx, s.k.want).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("fleet: read the copy wanted: %w", err)
	}
	return sum, nil
}

// diverges says why the list node hb runs is not what the store holds at
// its number ("" when it is, or cannot be told: the version is not kept).
// number is the version number read with the heartbeats.
// metas caches the versions read (nil: not kept).
func (s *Store) diverges(ctx context.Context, hb Heartbeat, number int64, h *Health, metas map[int64]*Version) (string, error) {
	if hb.Divergence != "" {
		return "the node reports: " + hb.Divergence, nil
	}
	if hb.Version <= 0 || hb.SHA256 == "" {
		return "", nil
	}
	if hb.Version > number {
		if number == 0 {
			return fmt.Sprintf("runs version %d (sha256 %.12s), but the store holds no version: it lost its data (restarted empty?)", hb.Version, hb.SHA256), nil
		}
		return fmt.Sprintf("runs version %d (sha256 %.12s), newer than the store's newest, %d: the store lost versions (restored from an older dump?)", hb.Version, hb.SHA256, number), nil
	}
	m, read := metas[hb.Version]
	if !read {
		v, ok, err := s.getMeta(ctx, hb.Version)
		if err != nil {
			return "", err
		}
		if ok {
			m = &v
		}
		metas[hb.Version] = m
	}
	if m == nil {
		return "", nil
	}
	if m.SHA256 != hb.SHA256 {
		return fmt.Sprintf("runs version %d with sha256 %.12s, but the store's version %d holds %.12s: the number was reused (restored from an older dump?)", hb.Version, hb.SHA256, hb.Version, m.SHA256), nil
	}
	for _, b := range h.Bad {
		if b.Number == hb.Version && errors.Is(b.Problem, ErrCorrupt) {
			return fmt.Sprintf("runs version %d, whose content in the store is corrupt, and no edge saved a copy of it", hb.Version), nil
		}
	}
	return "", nil
}

// StoredSHA256 returns the SHA-256 recorded for version n, "" when the
// version is not kept.
func (s *Store) StoredSHA256(ctx context.Context, n int64) (string, error) {
	sum, err := s.rdb.HGet(ctx, s.k.vprefix+strconv.FormatInt(n, 10), "sha256").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("fleet: read version %d: %w", n, err)
	}
	return sum, nil
}

// maxChain bounds how many versions Descends walks back.
const maxChain = 10000

// Descends reports whether version v descends from the list an edge runs,
// version base with SHA-256 baseSHA: following parents back from v reaches
// base with that hash (a fast-forward). A version of an explicit kind (a
// forced publish, a rollback, a reseed) or a legacy version without a
// parent on the way counts as descending: it was recorded as such, or
// written before parents were. When the history between is no longer
// kept, v is taken as descending (why says so). When not, why says
// where the chain leaves the edge's history.
func (s *Store) Descends(ctx context.Context, v Version, base int64, baseSHA string) (ok bool, why string, err error) {
	if base <= 0 {
		return true, "", nil
	}
	cur := v
	for range maxChain {
		switch {
		case cur.Number == base:
			if cur.SHA256 == baseSHA {
				return true, "", nil
			}
			return false, fmt.Sprintf("the store's version %d holds sha256 %.12s, not the %.12s in effect: the number was reused", base, cur.SHA256, baseSHA), nil
		case cur.Kind.Explicit():
			return true, fmt.Sprintf("version %d is a %s", cur.Number, cur.Kind), nil
		case cur.Legacy:
			return true, fmt.Sprintf("version %d has no recorded parent (written before parents were)", cur.Number), nil
		case cur.Number < base:
			return false, fmt.Sprintf("version %d is older than version %d in effect", cur.Number, base), nil
		case cur.ParentNumber == base:
			if cur.Parent == baseSHA {
				return true, "", nil
			}
			return false, fmt.Sprintf("version %d's parent is version %d with sha256 %.12s, not the %.12s in effect: the number was reused", cur.Number, base, cur.Parent, baseSHA), nil
		case cur.ParentNumber == 0 || cur.Parent == "":
			return false, fmt.Sprintf("version %d starts a new history (no parent) while version %d is in effect: the store lost its data", cur.Number, base), nil
		case cur.ParentNumber < base:
			return false, fmt.Sprintf("version %d builds on version %d, older than version %d in effect: it does not contain it", cur.Number, cur.ParentNumber, base), nil
		}
		p, kept, err := s.getMeta(ctx, cur.ParentNumber)
		if err != nil {
			return false, "", err
		}
		if !kept {
			return true, fmt.Sprintf("the history between versions %d and %d is no longer kept", base, cur.ParentNumber), nil
		}
		if p.SHA256 != cur.Parent {
			return false, fmt.Sprintf("version %d's parent %d holds sha256 %.12s, not the recorded %.12s", cur.Number, p.Number, p.SHA256, cur.Parent), nil
		}
		cur = p
	}
	return false, "", fmt.Errorf("fleet: descends: more than %d versions between %d and %d", maxChain, v.Number, base)
}

// SaveCopy stores content under a key named by its SHA-256, for `fleet
// reseed` to read: a divergent edge's list, which the store may no longer
// hold. It returns the key; an existing copy is kept.
func (s *Store) SaveCopy(ctx context.Context, content []byte) (string, error) {
	sum := sha256.Sum256(content)
	key := s.k.copies + hex.EncodeToString(sum[:])
	if err := s.rdb.SetNX(ctx, key, content, 0).Err(); err != nil {
		return "", fmt.Errorf("fleet: save a copy of the list: %w", err)
	}
	return key, nil
}

// ReadCopy returns the copy SaveCopy stored for the list with SHA-256 sum,
// checked against it.
func (s *Store) ReadCopy(ctx context.Context, sum string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.k.copies+sum).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("fleet: no copy of the list with sha256 %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: read the copy of %s: %w", sum, err)
	}
	got := sha256.Sum256(b)
	if hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("fleet: the copy of %s: %w", sum, ErrCorrupt)
	}
	return b, nil
}

// DropCopies removes the copies of the lists with these SHA-256s.
func (s *Store) DropCopies(ctx context.Context, sums ...string) error {
	for _, sum := range sums {
		if err := s.rdb.Del(ctx, s.k.copies+sum).Err(); err != nil {
			return fmt.Errorf("fleet: drop the copy of %s: %w", sum, err)
		}
	}
	return nil
}
