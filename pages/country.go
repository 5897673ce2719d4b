package pages

import (
	"sync"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// CountryName returns the name of the country with ISO 3166-1 alpha-2 code
// code in the language tag, from the CLDR data of golang.org/x/text: "France",
// "Frankreich", "フランス". It falls back to English, then to the code.
func CountryName(tag, code string) string {
	r, err := language.ParseRegion(code)
	if err != nil {
		return code
	}
	for _, t := range []string{tag, "en"} {
		lt, err := language.Parse(t)
		if err != nil {
			continue
		}
		if n := display.Regions(lt); n != nil {
			if name := n.Name(r); name != "" {
				return name
			}
		}
	}
	return code
}

// countryPages holds the pages of a scoped block, one per visitor
// country; see Page.InCountry.
type countryPages struct {
	mu    sync.Mutex
	pages map[string]*Page
}

// maxCountryPages bounds the country pages of one block page: every ISO
// country and the unknown one.
const maxCountryPages = 251

// InCountry returns the block page for a visitor from country (an ISO
// 3166-1 alpha-2 code, "" for unknown), which says "This site is not
// available in COUNTRY" (or "in your region") in the visitor's language,
// and carries country and scope in its problem+json and text forms. It
// returns p itself when p is not the page of a scoped block (Block.Scope
// empty). A country's page is prepared on its first request and kept.
func (p *Page) InCountry(country string) *Page {
	if p.block == nil || p.block.Scope == "" {
		return p
	}
	c := p.countries
	c.mu.Lock()
	defer c.mu.Unlock()
	if cp, ok := c.pages[country]; ok {
		return cp
	}
	if len(c.pages) >= maxCountryPages {
		return p
	}
	cp := p.r.newPage(p.base, p.block)
	cp.base.Country = country
	v, err := cp.prepare(p.r.def)
	if err != nil {
		return p
	}
	cp.vars[p.r.def].Store(v)
	if c.pages == nil {
		c.pages = map[string]*Page{}
	}
	c.pages[country] = cp
	return cp
}
