package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestTokensFile checks the tokens file parser's acceptance and its
// messages, which name file and line and never quote a token.
func TestTokensFile(t *testing.T) {
	secret := "s3cret-s3cret-s3cret"
	tests := []struct {
		name, data string
		want       []string // name/scope of each token, or the problems
		err        bool
	}{
		{"both forms", "a:write:" + sha256Hex("x") + "\n# comment\n\n  b read " + secret + "  \n", []string{"a/write", "b/read"}, false},
		{"bad hash", "a:write:abc\n", []string{"tokens:1: token of a: want the SHA-256"}, true},
		{"short token", "a write short\n", []string{"tokens:1: token of a: want at least 16"}, true},
		{"bad scope", "a:admin:" + sha256Hex("x") + "\n", []string{`tokens:1: scope "admin" of a: want read or write`}, true},
		{"bad name", "a/b read " + secret + "\n", []string{`tokens:1: name "a/b"`}, true},
		{"dup name", "a read " + secret + "\na write " + secret + "x\n", []string{"tokens:2: name a is also on line 1"}, true},
		{"dup token", "a read " + secret + "\nb:write:" + sha256Hex(secret) + "\n", []string{"tokens:2: the token of b is also the token on line 1"}, true},
		{"bad form", "just-a-token\nx y\n", []string{"tokens:1: want name:scope:sha256hex", "tokens:2: want name:scope:sha256hex"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks, err := parseTokens("tokens", []byte(tt.data))
			if tt.err {
				if err == nil {
					t.Fatalf("no error for %q", tt.data)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "short") {
					t.Errorf("error quotes a token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tk := range toks {
				got = append(got, tk.name+"/"+tk.scope)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("tokens %v, want %v", got, tt.want)
			}
			if toks[1].hash != sha256.Sum256([]byte(secret)) {
				t.Error("a clear token is not kept as its hash")
			}
		})
	}
}

// FuzzDecodeRequest checks the request decoding on any body: no panic;
// what it accepts has no control character in a string, turns into
// attributes Block understands, and decodes the same when encoded again.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"pattern":"a.example","attrs":{"status":451,"reason":"x"},"replace":true,"comment":"c"}`,
		`{"pattern":"a","attrs":{"status":"403"}}`, `{"attrs":{"status":-1}}`, `{"pattern":"\u0000"}`, `{}`, `[]`, `{"pattern":"a"} x`,
		`{"attrs":{"status":1e3}}`, `{"attrs":{"status":"\n"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req BlockRequest
		err := decodeRequest(bytes.NewReader(body), &req)
		if err != nil {
			if _, ok := err.(*requestError); !ok && !strings.Contains(err.Error(), ":") {
				t.Fatalf("error without a field or context: %v", err)
			}
			return
		}
		for _, a := range req.Attrs.args() {
			k, v, ok := strings.Cut(a, "=")
			if !ok || k == "" || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Fatalf("bad argument %q", a)
			}
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var req2 BlockRequest
		if err := decodeRequest(bytes.NewReader(again), &req2); err != nil {
			t.Fatalf("re-encoded %s: %v", again, err)
		}
		if a, b := fmt.Sprint(req.Attrs.args(), req.Pattern, req.Comment, req.Replace), fmt.Sprint(req2.Attrs.args(), req2.Pattern, req2.Comment, req2.Replace); a != b {
			t.Fatalf("decoded %s, then %s", a, b)
		}
	})
}

// FuzzTokens checks the tokens file parser: no panic, and every token it
// accepts has a valid name and scope.
func FuzzTokens(f *testing.F) {
	f.Add([]byte("a:write:" + sha256Hex("x") + "\nb read 0123456789abcdef\n"))
	f.Add([]byte("a::\n: : :\n#x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := parseTokens("f", data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, tk := range toks {
			if tk.name == "" || seen[tk.name] || (tk.scope != ScopeRead && tk.scope != ScopeWrite) {
				t.Fatalf("accepted %+v", tk)
			}
			seen[tk.name] = true
		}
	})
}
