package blocklist

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestScanPatternLinesSplit: the scan in two halves at once finds the
// lines, offsets and line numbers the scan of the whole finds, wherever
// the pattern's lines are (both halves, the split line, the last line
// without a line break, spellings that normalize to the pattern).
func TestScanPatternLinesSplit(t *testing.T) {
	defer func(m int) { splitScanMin = m }(splitScanMin)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	rng := rand.New(rand.NewPCG(5, 6))
	extra := []string{"site7.example status=451\n", "SITE7.Example.\n", "  site7.example # spaced\n", "*.site7.example\n", "site7.example"}
	split := 0
	for i := range 300 {
		data := genList(rng.IntN(80))
		for range rng.IntN(4) {
			data = randomEdit(rng, data, i)
		}
		for range rng.IntN(4) {
			at := rng.IntN(len(data) + 1)
			if j := bytes.LastIndexByte(data[:at], '\n'); j >= 0 {
				at = j + 1
			} else {
				at = 0
			}
			data = slices.Concat(data[:at], []byte(extra[rng.IntN(len(extra)-1)]), data[at:])
		}
		if rng.IntN(4) == 0 {
			data = append(data, extra[len(extra)-1]...) // no line break at the end
		}
		for _, pat := range []string{"site7.example", "*.site7.example", fmt.Sprintf("site%d.example", rng.IntN(80))} {
			want, _ := patternLines(nil, data, pat, 0, len(data), 1)
			splitScanMin = 1 << 30
			whole := scanPatternLines(data, pat)
			splitScanMin = 0
			got := scanPatternLines(data, pat)
			if !slices.Equal(whole, want) || !slices.Equal(got, want) {
				t.Fatalf("%s in\n%s\nwhole %v\nsplit %v\nwant  %v", pat, data, whole, got, want)
			}
			if len(want) > 0 && want[len(want)-1].off > len(data)/2 {
				split++
			}
		}
	}
	if split < 50 {
		t.Errorf("only %d scans found a line in the second half", split)
	}
}

// TestApplyEditInPlace: with Edit.InPlace, a block that adds a rule
// writes into data's room instead of a copy when it fits, and every edit
// answers as without it; data up to its length is never changed.
func TestApplyEditInPlace(t *testing.T) {
	defer func(m int) { scanEditMin = m }(scanEditMin)
	rng := rand.New(rand.NewPCG(9, 10))
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	note := NewNote(now, "alice", "T-1")
	argSets := [][]string{nil, {"status=451"}, {"mode=report"}, {"reason=x y"}, {"countries=FR"}}
	inPlace := 0
	for i := range 300 {
		data := genList(20 + rng.IntN(30))
		for range rng.IntN(4) {
			data = randomEdit(rng, data, i)
		}
		if _, err := Parse("f.txt", data); err != nil {
			continue
		}
		e := Edit{Pattern: fmt.Sprintf("site%d.example", rng.IntN(90)), Args: argSets[rng.IntN(len(argSets))]}
		if rng.IntN(4) == 0 {
			e = Edit{Unblock: true, Pattern: e.Pattern}
		}
		if rng.IntN(2) == 0 {
			e.Note = &note
		}
		scanEditMin = []int{0, 1 << 30}[rng.IntN(2)]
		out, res, err := ApplyEdit("f.txt", data, e, 0.5, now)

		room := []int{0, 8, 4096}[rng.IntN(3)]
		own := append(make([]byte, 0, len(data)+room), data...)
		for k := len(own); k < cap(own); k++ {
			own[:cap(own)][k] = 'X' // junk in the room must not leak into out
		}
		e.InPlace = true
		iout, ires, ierr := ApplyEdit("f.txt", own, e, 0.5, now)
		if fmt.Sprint(err) != fmt.Sprint(ierr) || !bytes.Equal(out, iout) || fmt.Sprint(res) != fmt.Sprint(ires) {
			t.Fatalf("edit %+v, room %d:\nwithout: %+v %v\n%s\nin place: %+v %v\n%s", e, room, res, err, out, ires, ierr, iout)
		}
		if !bytes.Equal(own, data) {
			t.Fatalf("edit %+v in place changed the list it was given", e)
		}
		shares := len(iout) > 0 && len(own) > 0 && &iout[0] == &own[0]
		if shares {
			inPlace++
		}
		if want := ires.Kind == Added && room == 4096 && !bytes.Contains(data, []byte("unblocked "+ires.Pattern)); shares != want {
			t.Fatalf("edit %+v (%s), room %d: out shares the list's array %v, want %v", e, ires.Kind, room, shares, want)
		}
	}
	if inPlace < 30 {
		t.Errorf("only %d edits written in place", inPlace)
	}
}
