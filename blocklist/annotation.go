package blocklist

import (
	"strings"
	"time"
	"unicode"
)

// NotePrefix starts an annotation line: a comment that records who made an
// edit, when, and why. The parser treats it as a comment (it never changes
// what is blocked), but remembers it:
//
//	#@ 2026-11-26T10:00:00Z by alice: TICKET-42 spam network
//	forum.example status=451
//
// An annotation directly above a rule (no line in between) belongs to that
// rule. An unblock record names the pattern it removed and belongs to no
// rule; edgeblock unblock appends it at the end of the file:
//
//	#@ 2026-11-26T11:00:00Z by bob unblocked forum.example: court order lifted
//
// The time is RFC 3339 in UTC (with milliseconds when not zero), the actor one word without ":", and the
// comment (after ": ") is optional. A "#@" line that does not have this
// form is an ordinary comment.
const NotePrefix = "#@ "

// Note is the record of an edit: when, by whom and why.
type Note struct {
	// At is when the edit was made.
	At time.Time
	// By is who made it: the invoking user (SUDO_USER first).
	By string
	// Comment is the free text given with -comment, often a ticket; it may
	// be empty.
	Comment string
}

// NewNote returns a Note for an edit made now by actor with the given
// comment, cleaned so that it fits on one annotation line: the actor loses
// white space, control characters and a trailing ":" (each becomes "_"),
// and control characters (line breaks included) in the comment become
// spaces.
func NewNote(now time.Time, actor, comment string) Note {
	actor = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, actor)
	if strings.HasSuffix(actor, ":") {
		// "by X:" would read as X and an empty comment; a colon inside
		// ("token:deploy-bot") is kept: no space follows it.
		actor = actor[:len(actor)-1] + "_"
	}
	if actor == "" {
		actor = "unknown"
	}
	comment = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, comment)
	// Milliseconds: two edits of a rule within a second by one actor get
	// two annotations that differ, so the second is still told apart from
	// the first (Changes attributes a changed rule only when its
	// annotation is new).
	return Note{At: now.UTC().Truncate(time.Millisecond), By: actor, Comment: strings.TrimSpace(comment)}
}

// Line returns the annotation line for a rule, without a line break.
func (n Note) Line() string { return n.line("") }

// UnblockLine returns the unblock record of pattern, without a line break.
func (n Note) UnblockLine(pattern string) string { return n.line(" unblocked " + pattern) }

func (n Note) line(action string) string {
	s := NotePrefix + n.At.UTC().Format(time.RFC3339Nano) + " by " + n.By + action
	if n.Comment != "" {
		s += ": " + n.Comment
	}
	return s
}

// parseNote parses an annotation line. unblocked is the pattern of an
// unblock record, "" for a rule annotation; ok is false when line is not an
// annotation.
func parseNote(line string) (n Note, unblocked string, ok bool) {
	s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), NotePrefix)
	if !ok {
		return Note{}, "", false
	}
	at, s, _ := strings.Cut(s, " ")
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return Note{}, "", false
	}
	s, ok = strings.CutPrefix(s, "by ")
	if !ok {
		return Note{}, "", false
	}
	head, comment, _ := strings.Cut(s, ": ")
	head = strings.TrimSuffix(head, ":")
	by, rest, _ := strings.Cut(head, " ")
	if by == "" {
		return Note{}, "", false
	}
	if rest != "" {
		unblocked, ok = strings.CutPrefix(rest, "unblocked ")
		if !ok || unblocked == "" || strings.ContainsAny(unblocked, " \t") {
			return Note{}, "", false
		}
	}
	return Note{At: t.UTC(), By: by, Comment: strings.TrimSpace(comment)}, unblocked, true
}
