package langtag

import "testing"

func TestCanonical(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"de", "de"}, {"DE", "de"}, {"pt-br", "pt-BR"}, {"zh-hant", "zh-Hant"}, {"zh-HANT-tw", "zh-Hant-TW"},
		{"es-419", "es-419"}, {"sr-Latn", "sr-Latn"}, {"x", ""}, {"de-", ""}, {"1a", ""}, {"de--at", ""}, {"de at", ""},
		{"", ""}, {"de-abcdefghi", ""}, {"abcdefghi", ""}, {"de-" + "a1b2c3d4-a1b2c3d4-a1b2c3d4-a1b2c3", ""},
		{"en-a1b2c3d4", "en-a1b2c3d4"}, {"EN-GB-OXENDICT", "en-GB-oxendict"},
	} {
		got, err := Canonical(tt.in)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"de", "pt-br", "zh-HANT-tw", "es-419", "x", "de--at"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		got, err := Canonical(tag)
		if err != nil {
			return
		}
		again, err := Canonical(got)
		if err != nil || again != got {
			t.Fatalf("Canonical(%q) = %q, but Canonical of that = %q, %v", tag, got, again, err)
		}
		if len(got) != len(tag) {
			t.Fatalf("Canonical(%q) = %q changed the length", tag, got)
		}
	})
}
