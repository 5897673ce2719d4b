package pages

import "testing"

// BenchmarkNegotiateLanguage measures the Accept-Language negotiation
// alone, against the built-in languages.
func BenchmarkNegotiateLanguage(b *testing.B) {
	r, _ := NewRenderer(Options{})
	for _, h := range []string{"", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7", "zh-CN"} {
		b.Run(h, func(b *testing.B) {
			for b.Loop() {
				r.language(h)
			}
		})
	}
}
