package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
)

// A writer reads and checks the current version (one SHA-256 of the
// list) and publishes an edit of it, whose SHA-256 it records. The two
// contents share everything before the first changed byte, and SHA-256
// reads its input front to back: so the check keeps the hash's state
// after every sumStride bytes (prefixSums), and the new version's hash
// starts from the last state within the shared prefix instead of from
// the first byte. A one-rule edit at the end of a 1,000,000-rule list
// then hashes at most sumStride bytes and the edit, not the list again.
// The result is the SHA-256 of the whole new content (TestSumOfMatches
// against crypto/sha256 on every kind of edit); edges check it as they
// check any version.

// sumStride is how many bytes apart prefixSums keeps the hash's state.
const sumStride = 1 << 20

// prefixSums are the SHA-256 states of content after each whole
// sumStride bytes of it. content must not change afterwards.
type prefixSums struct {
	content []byte
	states  [][]byte // MarshalBinary of the hash after (i+1)*sumStride bytes
}

// hashKeeping returns the SHA-256 of b and the states of its hash for
// sumOf; the states are a few hundred bytes per MiB of b.
func hashKeeping(b []byte) ([sha256.Size]byte, *prefixSums) {
	return hashFrom(&prefixSums{content: b}, sha256.New(), 0)
}

// hashFrom hashes ps.content from byte off, where h holds the state after
// ps.content[:off] (off a multiple of sumStride, ps.states holding the
// states up to it), appending the states at the strides after off.
func hashFrom(ps *prefixSums, h interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
}, off int) ([sha256.Size]byte, *prefixSums) {
	b := ps.content
	for ; off+sumStride <= len(b); off += sumStride {
		h.Write(b[off : off+sumStride])
		if m, ok := h.(encoding.BinaryMarshaler); ok {
			if st, err := m.MarshalBinary(); err == nil {
				ps.states = append(ps.states, st)
				continue
			}
		}
		ps.states = nil // not resumable: keep none
		h.Write(b[off+sumStride:])
		return finish(h), ps
	}
	h.Write(b[off:])
	return finish(h), ps
}

func finish(h interface{ Sum([]byte) []byte }) (s [sha256.Size]byte) {
	h.Sum(s[:0])
	return s
}

// sumOf returns the SHA-256 of next, and its states for the next edit:
// from the last state of ps within the prefix next shares with
// ps.content, or from the first byte when there is none (ps nil too).
func (ps *prefixSums) sumOf(next []byte) ([sha256.Size]byte, *prefixSums) {
	if ps == nil {
		return hashKeeping(next)
	}
	k := min(commonPrefixLen(ps.content, next)/sumStride, len(ps.states))
	h := sha256.New()
	if k > 0 {
		u, ok := h.(encoding.BinaryUnmarshaler)
		if !ok || u.UnmarshalBinary(ps.states[k-1]) != nil {
			return hashKeeping(next)
		}
	}
	return hashFrom(&prefixSums{content: next, states: ps.states[:k:k]}, h, k*sumStride)
}

// commonPrefixLen returns the length of the longest common prefix of a
// and b, comparing 64 KiB at a time first.
func commonPrefixLen(a, b []byte) int {
	const block = 64 << 10
	n := min(len(a), len(b))
	i := 0
	for i+block <= n && bytes.Equal(a[i:i+block], b[i:i+block]) {
		i += block
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// checkSum returns an error matching ErrCorrupt when v's content does not
// hash to its recorded SHA-256; when it does, v keeps the hash's states
// (v.sums) for the hash of an edit of it.
func checkSum(v *Version) error { return checkSumFrom(v, nil) }

// checkSumFrom is checkSum resuming from the hash states of from (the
// version v was rebuilt from; nil: none) within the prefix the two
// contents share: an edge following the fleet hashes a one-rule
// addition at the end of the list, not the list again.
func checkSumFrom(v *Version, from *prefixSums) error {
	s, ps := from.sumOf(v.Content)
	if got := hex.EncodeToString(s[:]); got != v.SHA256 {
		return fmt.Errorf("fleet: version %d: content hashes to %s, recorded %q: %w", v.Number, got, v.SHA256, ErrCorrupt)
	}
	v.sums = ps
	return nil
}
