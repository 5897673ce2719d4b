package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/edgeblock/edgeblock/blocklist"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/metrics"
)

// The /v1 admin API: block, unblock, explain and version over JSON, for
// callers holding a credential of admin.tokens_file or admin.client_ca.
// Writes take the same path as the block and unblock commands (the locked
// file edit of blocklist.EditFile, with the credential's name as the actor
// of the annotation), then ask the reloader to apply the file and report
// whether it did.

// MaxBody bounds a /v1 request body, in bytes.
const MaxBody = 64 << 10

// applyWait bounds how long a write waits to see its change in effect
// before answering 202 instead of 200.
const applyWait = 2 * time.Second

// BlockRequest is the body of POST /v1/block.
type BlockRequest struct {
	// Pattern is the rule's name or *.name.
	Pattern string `json:"pattern"`
	// Attrs are merged into an existing rule (or, with Replace, are its
	// only attributes). An empty string removes an attribute.
	Attrs BlockAttrs `json:"attrs"`
	// Replace rewrites an existing rule with only Attrs.
	Replace bool `json:"replace"`
	// Comment is recorded in the rule's annotation with the actor.
	Comment string `json:"comment"`
}

// BlockAttrs are the attributes of a rule in a BlockRequest; nil leaves
// the attribute as it is.
type BlockAttrs struct {
	Policy  *string      `json:"policy"`
	Reason  *string      `json:"reason"`
	Status  *StatusValue `json:"status"`
	Mode    *string      `json:"mode"`
	Expires *string      `json:"expires"`
}

// StatusValue is an HTTP status in a request: a JSON number (451) or string
// ("451"; "" removes the attribute).
type StatusValue string

// UnmarshalJSON accepts a whole number or a string.
func (s *StatusValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = StatusValue(v)
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return &requestError{"attrs.status", fmt.Sprintf("want a status such as 451, got %.20s", b)}
	}
	*s = StatusValue(strconv.FormatUint(n, 10))
	return nil
}

// UnblockRequest is the body of POST /v1/unblock.
type UnblockRequest struct {
	Pattern string `json:"pattern"`
	Comment string `json:"comment"`
}

// WriteResult is the answer to a write.
type WriteResult struct {
	// Applied is true once the running edge matches with the change in
	// effect; false (with status 202) when it was written but the
	// reloader has not applied it within about 2 s (Pending says why).
	Applied bool `json:"applied"`
	// SHA256 is the hash of the list in effect after the write.
	SHA256 string `json:"sha256"`
	// Written is the hash of the file as written; "" when nothing was
	// written because the rule already said that.
	Written string `json:"written_sha256,omitempty"`
	// File is the file written, or in fleet mode the version published
	// ("fleet:v42", "fleet" when nothing was); Version is its number.
	File    string `json:"file"`
	Version int64  `json:"version,omitempty"`
	// Changes lists the rule changed, empty when nothing changed.
	Changes []APIChange `json:"changes"`
	Note    string      `json:"note,omitempty"`
	Pending string      `json:"pending,omitempty"`
}

// APIChange is one changed rule in a WriteResult.
type APIChange struct {
	Kind    string       `json:"kind"`
	Pattern string       `json:"pattern"`
	Line    int          `json:"line"`
	Old     string       `json:"old,omitempty"`
	New     string       `json:"new,omitempty"`
	Attrs   []apiAttrChg `json:"attrs,omitempty"`
}

type apiAttrChg struct {
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Field names the request field at fault, when one is.
	Field string `json:"field,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, field, format string, args ...any) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status,
		Detail: fmt.Sprintf(format, args...), Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// requestError is a bad request body: the field at fault ("" for the body
// as a whole) and why.
type requestError struct {
	field, msg string
}

func (e *requestError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// decodeRequest decodes a JSON body into v: one object, no unknown field,
// no trailing data, at most MaxBody bytes, and no control character in
// any string (they would end a blocklist line). Errors name the field.
func decodeRequest(body io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(body, MaxBody+1))
	if err != nil {
		return &requestError{"", "reading the body: " + err.Error()}
	}
	if len(data) > MaxBody {
		return &requestError{"", fmt.Sprintf("body larger than %d bytes", MaxBody)}
	}
	if f := unknownField(data, reflect.TypeOf(v).Elem(), ""); f != "" {
		return &requestError{f, "unknown field"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		var re *requestError
		switch {
		case errors.As(err, &re):
			return re
		case errors.Is(err, io.EOF):
			return &requestError{"", "empty body: want a JSON object"}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return &requestError{"", "malformed JSON: the body ends inside a value"}
		case errors.As(err, &ute):
			field := ute.Field
			if field == "" {
				return &requestError{"", "want a JSON object, got " + ute.Value}
			}
			return &requestError{field, "want " + jsonType(ute.Type.String()) + ", got " + ute.Value}
		case errors.As(err, &se):
			return &requestError{"", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
			return &requestError{name, "unknown field"}
		}
		// A field's own UnmarshalJSON failed: the decoder names it.
		msg := strings.TrimPrefix(err.Error(), "json: ")
		return &requestError{fieldOf(msg), msg}
	}
	if rest := bytes.TrimSpace(data[dec.InputOffset():]); len(rest) > 0 {
		return &requestError{"", "trailing data after the JSON object"}
	}
	return checkStrings(v)
}

// unknownField returns the dotted path of the first key of the JSON object
// data that struct type t has no field for, descending into the fields
// that are structs; "" if there is none or data is not an object (the
// decoder then says what is wrong). encoding/json names an unknown field
// without its path.
func unknownField(data []byte, t reflect.Type, prefix string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ""
	}
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ft, ok := fields[k]
		if !ok {
			// encoding/json matches keys without regard to case.
			for name, t := range fields {
				if strings.EqualFold(name, k) {
					ft, ok = t, true
				}
			}
		}
		if !ok {
			return prefix + k
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			if f := unknownField(obj[k], ft, prefix+k+"."); f != "" {
				return f
			}
		}
	}
	return ""
}

// fieldOf extracts the Go JSON decoder's "Go struct field X.y" from a
// message, as the JSON field path.
func fieldOf(msg string) string {
	_, rest, ok := strings.Cut(msg, "Go struct field ")
	if !ok {
		return ""
	}
	f, _, _ := strings.Cut(rest, " ")
	if _, path, ok := strings.Cut(f, "."); ok {
		return path
	}
	return f
}

// jsonType names a Go type as the JSON a caller should send.
func jsonType(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.Contains(goType, "Attrs"):
		return "an object"
	}
	return goType
}

// checkStrings rejects control characters in the string fields of the
// request types.
func checkStrings(v any) error {
	check := func(field string, s *string) error {
		if s != nil && strings.ContainsFunc(*s, unicode.IsControl) {
			return &requestError{field, "must not contain control characters (line breaks, tabs, ...)"}
		}
		return nil
	}
	switch v := v.(type) {
	case *BlockRequest:
		st := (*string)(v.Attrs.Status)
		return errors.Join(check("pattern", &v.Pattern), check("comment", &v.Comment),
			check("attrs.policy", v.Attrs.Policy), check("attrs.reason", v.Attrs.Reason), check("attrs.status", st),
			check("attrs.mode", v.Attrs.Mode), check("attrs.expires", v.Attrs.Expires))
	case *UnblockRequest:
		return errors.Join(check("pattern", &v.Pattern), check("comment", &v.Comment))
	}
	return nil
}

// args returns the attributes as Block's "key=value" arguments.
func (a BlockAttrs) args() []string {
	var out []string
	add := func(k string, v *string) {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	add("policy", a.Policy)
	add("reason", a.Reason)
	add("status", (*string)(a.Status))
	add("mode", a.Mode)
	add("expires", a.Expires)
	return out
}

// apiHandler adds the /v1 API and the credential checks of the read
// endpoints to mux. Without credentials configured nothing is added: the
// /v1 paths answer 404 and writes are never open.
func (s *handler) apiRoutes(mux *http.ServeMux, auth *Auth) {
	if !auth.on() {
		return
	}
	mux.Handle("POST /v1/block", s.jsonOnly(s.authed(auth, ScopeWrite, s.apiBlock)))
	mux.Handle("POST /v1/unblock", s.jsonOnly(s.authed(auth, ScopeWrite, s.apiUnblock)))
	mux.Handle("GET /v1/explain", s.authed(auth, ScopeRead, s.apiExplain))
	mux.Handle("GET /v1/version", s.authed(auth, ScopeRead, s.apiVersion))
	methods := map[string]string{"/v1/block": "POST", "/v1/unblock": "POST", "/v1/explain": "GET, HEAD", "/v1/version": "GET, HEAD"}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if allow, ok := methods[r.URL.Path]; ok {
			w.Header().Set("Allow", allow)
			writeProblem(w, http.StatusMethodNotAllowed, "", "%s %s: use %s", r.Method, r.URL.Path, allow)
			return
		}
		writeProblem(w, http.StatusNotFound, "", "no such endpoint %s %s: the API has POST /v1/block, POST /v1/unblock, GET /v1/explain?host=NAME and GET /v1/version", r.Method, r.URL.Path)
	})
}

// jsonOnly refuses, with 415, a request to h whose Content-Type is not
// application/json: a browser sends that type cross-site only after a
// CORS preflight, which the admin listener never grants, so a page on
// another site cannot make the request at all.
func (s *handler) jsonOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := r.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.Metrics.AdminAuthFailures.WithLabelValues("content_type").Inc()
			writeProblem(w, http.StatusUnsupportedMediaType, "", "Content-Type %q: want application/json", ct)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// apiFunc is a /v1 handler, given who called.
type apiFunc func(w http.ResponseWriter, r *http.Request, who principal)

// authed requires a credential of scope for h.
func (s *handler) authed(auth *Auth, scope string, h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := auth.authenticate(r)
		if err != nil {
			s.Metrics.AdminAuthFailures.WithLabelValues("unauthenticated").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgeblock admin"`)
			writeProblem(w, http.StatusUnauthorized, "", "%v", err)
			return
		}
		if !who.may(scope) {
			s.Metrics.AdminAuthFailures.WithLabelValues("forbidden").Inc()
			writeProblem(w, http.StatusForbidden, "", "%s %q has scope %s; %s %s needs %s", credName(who.via), who.name, who.scope, r.Method, r.URL.Path, scope)
			return
		}
		h(w, r, who)
	})
}

func credName(via string) string {
	if via == "cert" {
		return "client certificate"
	}
	return "token"
}

// readGuard wraps the existing read endpoints when admin.auth_reads is
// set: they then need a read credential.
func (s *handler) readGuard(auth *Auth, h http.Handler) http.Handler {
	if !auth.on() || !auth.authReads {
		return h
	}
	return s.authed(auth, ScopeRead, func(w http.ResponseWriter, r *http.Request, _ principal) { h.ServeHTTP(w, r) })
}

func (s *handler) apiExplain(w http.ResponseWriter, r *http.Request, _ principal) {
	host := r.URL.Query().Get("host")
	if host == "" {
		writeProblem(w, http.StatusBadRequest, "host", "want ?host=NAME")
		return
	}
	writeJSON(w, http.StatusOK, s.Edge.Explain(host, r.URL.Query().Get("country"), time.Now()))
}

// VersionInfo is the answer of GET /v1/version: the list in effect on
// this edge and, in fleet mode, the newest published version.
type VersionInfo struct {
	// Source is "file" (the blocklist file) or "fleet".
	Source string `json:"source"`
	// File is the blocklist file, or in fleet mode the version's name
	// ("fleet:v42").
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Rules  int    `json:"rules"`
	// LoadedAt is when the list in effect was applied.
	LoadedAt time.Time `json:"loaded_at"`
	// Version is the fleet version in effect (fleet mode).
	Version int64 `json:"version,omitempty"`
	// Published is the newest version in the fleet's Redis (fleet mode);
	// PublishedError says why it is missing (Redis unreachable).
	Published      *PublishedVersion `json:"published,omitempty"`
	PublishedError string            `json:"published_error,omitempty"`
}

// PublishedVersion describes a version published in the fleet's Redis.
type PublishedVersion struct {
	Version int64     `json:"version"`
	SHA256  string    `json:"sha256"`
	Actor   string    `json:"actor"`
	Comment string    `json:"comment"`
	Time    time.Time `json:"time"`
}

func (s *handler) apiVersion(w http.ResponseWriter, r *http.Request, _ principal) {
	b := s.Edge.Blocklist()
	v := VersionInfo{Source: "file", File: b.List.File(), SHA256: b.List.SHA256(), Rules: b.List.Len(), LoadedAt: b.LoadedAt.UTC()}
	if store := s.Edge.FleetStore(); store != nil {
		v.Source = "fleet"
		v.Version, _ = fleet.VersionOfListName(b.List.File())
		ctx, cancel := context.WithTimeout(r.Context(), fleetAPITimeout)
		defer cancel()
		pub, err := store.Current(ctx)
		if err != nil {
			v.PublishedError = err.Error()
		} else {
			v.Published = &PublishedVersion{Version: pub.Number, SHA256: pub.SHA256, Actor: pub.Actor, Comment: pub.Comment, Time: pub.Time.UTC()}
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// fleetAPITimeout bounds the admin API's calls to the fleet's Redis.
const fleetAPITimeout = 10 * time.Second

func (s *handler) apiBlock(w http.ResponseWriter, r *http.Request, who principal) {
	var req BlockRequest
	if err := decodeRequest(r.Body, &req); err != nil {
		s.badRequest(w, who, "block", req.Pattern, err)
		return
	}
	if req.Pattern == "" {
		s.badRequest(w, who, "block", "", &requestError{"pattern", "required"})
		return
	}
	s.edit(w, r, who, "block", req.Comment, blocklist.Edit{Pattern: req.Pattern, Args: req.Attrs.args(), Replace: req.Replace})
}

func (s *handler) apiUnblock(w http.ResponseWriter, r *http.Request, who principal) {
	var req UnblockRequest
	if err := decodeRequest(r.Body, &req); err != nil {
		s.badRequest(w, who, "unblock", req.Pattern, err)
		return
	}
	if req.Pattern == "" {
		s.badRequest(w, who, "unblock", "", &requestError{"pattern", "required"})
		return
	}
	s.edit(w, r, who, "unblock", req.Comment, blocklist.Edit{Unblock: true, Pattern: req.Pattern})
}

func (s *handler) badRequest(w http.ResponseWriter, who principal, op, pattern string, err error) {
	var re *requestError
	field := ""
	if errors.As(err, &re) {
		field = re.field
	}
	s.logWrite(who, op, pattern, "bad_request", "", false, err)
	writeProblem(w, http.StatusBadRequest, field, "%v", err)
}

// edit makes the guarded edit e (blocklist.ApplyEdit, as the block and
// unblock commands do) of the blocklist file, or in fleet mode of the
// published list, with the caller as the actor of its note; applies it
// and answers with what changed and whether it is in effect.
func (s *handler) edit(w http.ResponseWriter, r *http.Request, who principal, op, comment string, e blocklist.Edit) {
	start := time.Now()
	running := s.Edge.Blocklist()
	file := running.File
	maxDrop := running.MaxDrop
	note := blocklist.NewNote(time.Now(), who.actor(), comment)
	e.Note = &note
	pattern := e.Pattern
	var res blocklist.EditResult
	var written []byte
	var refused error // the edit's own error, as opposed to the store's
	var version int64
	apply := func(name string, data []byte) ([]byte, error) {
		out, r, err := blocklist.ApplyEdit(name, data, e, maxDrop, time.Now())
		res, written, refused = r, out, err
		return out, err
	}
	var err error
	if store := s.Edge.FleetStore(); store != nil {
		// Fleet mode: a new version, compare-and-set, retried from a
		// fresh read when another writer published first, as the block
		// and unblock commands do with -fleet.
		file = "fleet"
		ctx, cancel := context.WithTimeout(r.Context(), fleetAPITimeout)
		defer cancel()
		var v fleet.Version
		v, err = store.Update(ctx, func(cur []byte) ([]byte, error) {
			out, err := apply(file, cur)
			if err == nil && out == nil {
				return cur, nil // as asked already: nothing is published
			}
			return out, err
		}, fleet.Meta{Actor: note.By, Comment: note.Comment})
		if err == nil && written != nil {
			version, file = v.Number, fleet.ListName(v.Number)
		}
	} else {
		err = blocklist.EditFile(file, func(data []byte) ([]byte, error) { return apply(file, data) })
		if err == nil && written != nil {
			// Into the file's edit history too, as the commands' edits.
			if herr := blocklist.RecordEdit(file, op, note, res, blocklist.SHA256Hex(written), time.Now()); herr != nil {
				s.Log.Warn("admin write not recorded in the edit history", "event", "edit_history", "file", file, "error", herr.Error())
			}
		}
	}
	var noRule *blocklist.NoRuleError
	var dropped *blocklist.DropError
	var listBad *blocklist.ListError
	if err == nil || err != refused {
		refused = nil
	}
	switch {
	case errors.As(refused, &noRule):
		s.logWrite(who, op, pattern, "no_rule", "", false, err)
		writeProblem(w, http.StatusNotFound, "pattern", "%v", err)
		return
	case errors.As(refused, &dropped):
		s.logWrite(who, op, pattern, "refused", "", false, err)
		writeProblem(w, http.StatusConflict, "", "not written: %v (the fail-safe guard of blocklist.max_drop; add the line to the list first if this is meant)", err)
		return
	case errors.As(refused, &listBad):
		s.logWrite(who, op, pattern, "error", "", false, err)
		writeProblem(w, http.StatusConflict, "", "the blocklist (%s) does not parse as it is, so no edit is made; fix it first: %v", file, err)
		return
	case refused != nil:
		// The parser refused the pattern, a value or the result: the
		// file is as it was.
		s.logWrite(who, op, pattern, "refused", "", false, err)
		writeProblem(w, http.StatusUnprocessableEntity, refusedField(err, res), "%v", err)
		return
	case errors.Is(err, fleet.ErrDivergent):
		s.logWrite(who, op, pattern, "refused", "", false, err)
		writeProblem(w, http.StatusConflict, "", "nothing published: %v", err)
		return
	case err != nil && file == "fleet":
		s.logWrite(who, op, pattern, "error", "", false, err)
		writeProblem(w, http.StatusServiceUnavailable, "", "nothing published: the fleet's Redis: %v", err)
		return
	case err != nil:
		s.logWrite(who, op, pattern, "error", "", false, err)
		writeProblem(w, http.StatusInternalServerError, "", "editing %s: %v", file, err)
		return
	}
	out := WriteResult{File: file, Version: version, Changes: []APIChange{}}
	if written != nil {
		out.Written = fmt.Sprintf("%x", sha256.Sum256(written))
		out.Note = note.Line()
		if res.Kind == blocklist.Removed {
			out.Note = note.UnblockLine(res.Pattern)
		}
		c := APIChange{Kind: string(res.Kind), Pattern: res.Pattern, Line: res.Line, Old: res.OldLine, New: res.NewLine}
		for _, a := range res.Attrs {
			c.Attrs = append(c.Attrs, apiAttrChg{a.Key, a.Old, a.New})
		}
		out.Changes = append(out.Changes, c)
		if version == 0 {
			// Apply now rather than wait for the watcher's debounce;
			// the watcher and poll still catch it if this loses a
			// race. In fleet mode the Follower hears of the version.
			s.Edge.Reload("admin_api")
		}
	}
	want, _ := ruleOfLine(res.NewLine)
	if res.Kind == blocklist.Removed {
		want = nil
	}
	a := s.waitApplied(r.Context(), res.Pattern, want, start, applyWait)
	out.Applied, out.SHA256, out.Pending = a.Applied, a.SHA256, a.Pending
	result := string(res.Kind)
	if result == "" {
		result = "unchanged"
	}
	s.logWrite(who, op, res.Pattern, result, out.Written, out.Applied, nil)
	status := http.StatusOK
	if !out.Applied {
		status = http.StatusAccepted
	}
	writeJSON(w, status, out)
}

// Applied says whether a change of one rule is in effect on this edge:
// the answer of GET /blocklist/applied, and the applied, sha256 and
// pending fields of a /v1 write.
type Applied struct {
	// Applied is true once the list in effect has the rule as written
	// (or, for a removal, no rule of the pattern).
	Applied bool `json:"applied"`
	// SHA256 is the hash of the list in effect when the answer was made.
	SHA256 string `json:"sha256"`
	// Pending says why Applied is false: the reload's error, or that the
	// change is not in effect yet.
	Pending string `json:"pending,omitempty"`
}

// waitApplied is the one check of whether a written change is in effect,
// used by the /v1 writes and, through GET /blocklist/applied, by the block
// and unblock commands. It waits up to wait for the list in effect to
// have the rule want for pattern (nil: no rule of that pattern), and
// stops early when a reload since since failed (the edge refused what
// was written: Pending is its error). Comparing the rule, not the file's
// hash, keeps the answer right when another edit lands meanwhile.
func (s *handler) waitApplied(ctx context.Context, pattern string, want *blocklist.Rule, since time.Time, wait time.Duration) Applied {
	deadline := time.Now().Add(wait)
	for {
		st := s.Edge.Blocklist()
		cur := st.List
		if hasRule(cur, pattern, want) {
			return Applied{Applied: true, SHA256: cur.SHA256()}
		}
		failed := st.ErrorAt != nil && !st.ErrorAt.Before(since)
		if failed || time.Now().After(deadline) || ctx.Err() != nil {
			a := Applied{SHA256: cur.SHA256(), Pending: "written, not yet in effect"}
			if st.LastError != "" {
				a.Pending += ": " + st.LastError
			}
			return a
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// maxAppliedWait bounds the wait= of GET /blocklist/applied.
const maxAppliedWait = 10 * time.Second

// apiApplied answers GET /blocklist/applied?pattern=P[&rule=LINE][&since=RFC3339][&wait=DURATION][&reload=1]:
// whether the rule LINE (none: no rule of P) is in effect, waiting as
// waitApplied does (default wait 2s, at most 10s; since defaults to now).
// With reload=1, sent by a writer that has renamed the file into place,
// a file-mode edge without the rule applies the file at once.
func (s *handler) apiApplied(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pat, err := blocklist.NormalizePattern(q.Get("pattern"))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "pattern", "%v", err)
		return
	}
	var want *blocklist.Rule
	if line := q.Get("rule"); line != "" {
		if want, err = ruleOfLine(line); err != nil || want.Pattern() != pat {
			writeProblem(w, http.StatusBadRequest, "rule", "want a rule line of %s: %q", pat, line)
			return
		}
	}
	since, wait := time.Now(), applyWait
	if v := q.Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			writeProblem(w, http.StatusBadRequest, "since", "want an RFC 3339 time: %v", err)
			return
		}
	}
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > maxAppliedWait {
			writeProblem(w, http.StatusBadRequest, "wait", "want a duration from 0s to %v", maxAppliedWait)
			return
		}
	}
	if q.Get("reload") == "1" && s.Edge.FleetStore() == nil {
		// The writer says the file is complete (the block and unblock
		// commands rename it into place under the lock): apply it now
		// rather than after the watcher's debounce, as a /v1 write does.
		// What is on disk is what the watcher reads next anyway.
		if st := s.Edge.Blocklist(); !hasRule(st.List, pat, want) {
			s.Edge.Reload("edit")
		}
	}
	writeJSON(w, http.StatusOK, s.waitApplied(r.Context(), pat, want, since, wait))
}

// hasRule reports whether l has the rule want for pattern (nil: no rule
// of that pattern): the test of waitApplied.
func hasRule(l *blocklist.List, pattern string, want *blocklist.Rule) bool {
	got, ok := l.Lookup(pattern)
	return (want == nil && !ok) || (want != nil && ok && got.Format() == want.Format())
}

// ruleOfLine parses one rule line.
func ruleOfLine(line string) (*blocklist.Rule, error) {
	l, err := blocklist.Parse("request", []byte(line+"\n"))
	if err != nil {
		return nil, err
	}
	for r := range l.Rules() {
		return &r, nil
	}
	return nil, errors.New("no rule")
}

// refusedField names the request field a refusal is about, where it can.
func refusedField(err error, res blocklist.EditResult) string {
	msg := err.Error()
	if res.Pattern == "" {
		return "pattern"
	}
	for _, k := range []string{"policy", "reason", "status", "mode", "expires"} {
		if strings.Contains(msg, k) {
			return "attrs." + k
		}
	}
	return ""
}

// logWrite logs one write: who, what, and how it ended.
func (s *handler) logWrite(who principal, op, pattern, result, sha string, applied bool, err error) {
	s.Metrics.AdminWrites.WithLabelValues(op, writeResultLabel(result)).Inc()
	attrs := []any{"event", "admin_write", "actor", who.actor(), "auth", who.via, "op", op, "pattern", pattern, "result", result}
	if sha != "" {
		attrs = append(attrs, "sha256", sha, "applied", applied)
	}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
		s.Log.Warn("admin write refused", attrs...)
		return
	}
	s.Log.Info("admin write", attrs...)
}

func writeResultLabel(r string) string {
	for _, w := range metrics.AdminWriteResults {
		if w == r {
			return r
		}
	}
	return "error"
}
