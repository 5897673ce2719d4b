package blocklist

import (
	"strings"
	"testing"
)

func TestParseRecourseAndReasons(t *testing.T) {
	l := mustLoad(t, "testdata/visitors.txt")
	tests := []struct {
		pattern         string
		contact, appeal string
		reasons         map[string]string
	}{
		{"forum.example", "mailto:abuse@edge.example", "https://edge.example/appeal",
			map[string]string{"de": "Koordinierte Belästigung", "ar": "حملة تحرش منسقة"}},
		{"shop.example", "https://edge.example/contact", "", map[string]string{"pt-BR": "Fraude"}},
		{"plain.example", "", "", nil},
	}
	for _, tt := range tests {
		r, ok := l.Lookup(tt.pattern)
		if !ok {
			t.Fatalf("Lookup(%s): not found", tt.pattern)
		}
		if r.Contact != tt.contact || r.Appeal != tt.appeal {
			t.Errorf("%s: contact %q appeal %q, want %q %q", tt.pattern, r.Contact, r.Appeal, tt.contact, tt.appeal)
		}
		if r.Reasons.Len() != len(tt.reasons) {
			t.Errorf("%s: %d reasons, want %d", tt.pattern, r.Reasons.Len(), len(tt.reasons))
		}
		for tag, want := range tt.reasons {
			if got, ok := r.Reasons.Get(tag); !ok || got != want {
				t.Errorf("%s: reason.%s = %q, %v; want %q", tt.pattern, tag, got, ok, want)
			}
		}
		var tags []string
		for tag := range r.Reasons.All() {
			tags = append(tags, tag)
		}
		if !isSorted(tags) {
			t.Errorf("%s: tags %v not sorted", tt.pattern, tags)
		}
	}
	// Rules without the new attributes still share one Attrs.
	plain, _ := l.Lookup("plain.example")
	m := mustParse(t, "a.example\nb.example\n")
	ra, _ := m.Lookup("a.example")
	rb, _ := m.Lookup("b.example")
	if ra.AttrsID != rb.AttrsID || plain.Reasons != (Reasons{}) {
		t.Errorf("plain rules do not share attributes")
	}
}

func isSorted(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

func TestParseRecourseErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{"a.example contact=abuse@edge.example", "want an absolute http or https URL or mailto:"},
		{"a.example contact=mailto:", "want mailto:name@example.com"},
		{"a.example contact=mailto:nobody", "want mailto:name@example.com"},
		{"a.example contact=ftp://edge.example/", "want an absolute http or https URL"},
		{"a.example appeal=mailto:a@edge.example", "appeal=\"mailto:a@edge.example\": want an absolute http or https URL"},
		{"a.example appeal=/appeal", "want an absolute http or https URL"},
		{"a.example contact=https://a.example/ contact=https://b.example/", "given twice"},
		{`a.example reason.de="x" reason.DE="y"`, "given twice"},
		{`a.example reason.de=""`, "empty"},
		{`a.example reason.d="x"`, "language tag \"d\""},
		{`a.example reason.="x"`, "language tag \"\""},
		{`a.example reason.de_DE="x"`, "language tag \"de_DE\""},
		{`a.example reason.toolonglanguage="x"`, "language tag"},
		{"a.example reason.de=\"x\x01\"", "control character"},
		{"a.example reasons=x", `unknown attribute "reasons"`},
	}
	for _, tt := range tests {
		_, err := Parse("f.txt", []byte(tt.line))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "f.txt:1: ") {
			t.Errorf("Parse(%q) error = %v; want f.txt:1: ...%s", tt.line, err, tt.want)
		}
	}
}

func TestReasonsWith(t *testing.T) {
	var r Reasons
	r = r.With("fr", "b").With("de", "a").With("ru", "c").With("de", "a2").With("fr", "")
	var got []string
	for tag, text := range r.All() {
		got = append(got, tag+"="+text)
	}
	if strings.Join(got, " ") != "de=a2 ru=c" || r.Len() != 2 {
		t.Errorf("Reasons = %v (Len %d), want [de=a2 ru=c]", got, r.Len())
	}
}

// Block and Unblock take the new keys; a per-language reason is merged
// like any other attribute and removed with an empty value.
func TestBlockRecourseAndReasons(t *testing.T) {
	data := []byte("forum.example reason=\"Spam\" reason.DE=\"Spam (de)\"\n")
	out, res, err := testBlock("f.txt", data, "forum.example", []string{"reason.de=Werbung", "reason.fr=Pourriel", "contact=mailto:abuse@edge.example", "appeal=https://edge.example/appeal"}, blockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := "forum.example reason=Spam reason.de=Werbung reason.fr=Pourriel contact=mailto:abuse@edge.example appeal=https://edge.example/appeal\n"
	if string(out) != want {
		t.Errorf("Block out = %q\nwant %q", out, want)
	}
	var keys []string
	for _, c := range res.Attrs {
		keys = append(keys, c.Key+":"+c.String())
	}
	if got := strings.Join(keys, " "); got != "contact:(none)→mailto:abuse@edge.example appeal:(none)→https://edge.example/appeal reason.de:Spam (de)→Werbung reason.fr:(none)→Pourriel" {
		t.Errorf("changes = %s", got)
	}
	out, _, err = testBlock("f.txt", out, "forum.example", []string{"reason.fr=", "appeal="}, blockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "forum.example reason=Spam reason.de=Werbung contact=mailto:abuse@edge.example\n"; string(out) != want {
		t.Errorf("Block removing = %q\nwant %q", out, want)
	}
	if _, _, err := testBlock("f.txt", out, "forum.example", []string{"reason.d=x"}, blockOptions{}); err == nil || !strings.Contains(err.Error(), "language tag") {
		t.Errorf("Block with a bad tag: %v", err)
	}
	// Rule.Format writes the new attributes back so they parse the same.
	l := mustParse(t, string(out))
	r, _ := l.Lookup("forum.example")
	l2 := mustParse(t, r.Format()+"\n")
	r2, _ := l2.Lookup("forum.example")
	if r.Attrs != r2.Attrs {
		t.Errorf("Format %q does not round-trip: %+v vs %+v", r.Format(), r.Attrs, r2.Attrs)
	}
}
