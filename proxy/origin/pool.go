package origin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash/maphash"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is the origins of one route and the policy that picks among them.
// It is built once per config and safe for concurrent use; the origins'
// health lives in the Origins, which a Pool built for the next config
// takes over.
type Pool struct {
	cfg     Config
	origins []*Origin
	log     *slog.Logger
	obs     Observer
	next    atomic.Uint64
	weights []int    // weights[i] is origins[i]'s, at least 1
	cookies []string // cookies[i] is origins[i]'s signed sticky cookie value
	seq     []int    // round_robin order of origin indexes, weights spread out
	byValue map[string]*Origin
	seed    maphash.Seed

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// NewPool builds the pool of cfg. Origins of prev with the same label
// are taken over with their health, counters and in-flight attempts;
// prev's checks should be stopped with Close once the new pool is in use.
// log gets the origin_down and origin_up lines; obs may be nil.
func NewPool(cfg Config, prev *Pool, log *slog.Logger, obs Observer) *Pool {
	cfg = cfg.withDefaults()
	if log == nil {
		log = discardLogger
	}
	if obs == nil {
		obs = nopObserver{}
	}
	p := &Pool{cfg: cfg, log: log, obs: obs, byValue: map[string]*Origin{}, stop: make(chan struct{})}
	if prev != nil {
		p.seed = prev.seed
	} else {
		p.seed = maphash.MakeSeed()
	}
	old := map[string]*Origin{}
	if prev != nil {
		for _, o := range prev.origins {
			old[o.Label] = o
		}
	}
	for _, s := range cfg.Origins {
		label := Label(s.URL)
		o := old[label]
		if o == nil {
			o = &Origin{URL: s.URL, Label: label, Route: cfg.Route}
		}
		c := cookieValue(cfg.CookieKey, cfg.Route, label)
		p.origins = append(p.origins, o)
		p.weights = append(p.weights, max(s.Weight, 1))
		p.cookies = append(p.cookies, c)
		p.byValue[c] = o
	}
	p.seq = weightedOrder(p.weights)
	return p
}

// Origins returns the pool's origins in configured order.
func (p *Pool) Origins() []*Origin { return p.origins }

// NeedsClient reports whether Pick looks at Request.Client.
func (p *Pool) NeedsClient() bool { return p.cfg.Policy == IPHash }

// Route returns the route's name.
func (p *Pool) Route() string { return p.cfg.Route }

// weightedOrder spreads each origin over one round in proportion to its
// weight, the way nginx's smooth weighted round robin does, so that a
// heavy origin's turns are interleaved with the others' rather than
// bunched.
func weightedOrder(weights []int) []int {
	cur := make([]int, len(weights))
	sum := 0
	for _, w := range weights {
		sum += w
	}
	seq := make([]int, 0, sum)
	for range sum {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		seq = append(seq, best)
	}
	return seq
}

// cookieValue is the sticky cookie's value for an origin: an HMAC of the
// route and the origin's label under key, so that it names the origin
// without revealing its address and cannot be made up without the key.
func cookieValue(key []byte, route, label string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(route))
	m.Write([]byte{0})
	m.Write([]byte(label))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// Request is what a pick may look at.
type Request struct {
	// Client is the visitor's address, for ip_hash.
	Client netip.Addr
	// Header is the request's header, for the sticky cookie.
	Header http.Header
	// Reached is set when an earlier attempt of the request reached an
	// origin (anything but refused, a dial error or no free
	// connection); see Pick.
	Reached bool
}

// Pick chooses the origin for an attempt of r among those not in tried,
// by the pool's policy, and counts it in flight; the caller must end the
// attempt with done. sticky reports that r's cookie chose it. When no
// origin is usable, AllDown decides: the least-bad origin, or nil with
// ErrAllDown. With least_bad, a retry of a request that reached an
// origin (r.Reached) gets nil instead: the least-bad fallback is for a
// request that nothing has been sent of yet, its first attempt or one
// after every other origin refused it. Pick returns nil, nil when no
// origin is left to try.
func (p *Pool) Pick(r Request, tried []*Origin) (o *Origin, sticky bool, err error) {
	now := time.Now().UnixNano()
	for range 4 { // a lost race for a trial slot picks again
		o, sticky = p.choose(r, tried, now)
		if o == nil || o.claim() {
			break
		}
		o = nil
	}
	if o == nil {
		if r.Reached && p.cfg.AllDown != AllDown503 {
			// A retry of a request an origin may have acted on goes
			// only to a usable origin.
			return nil, false, nil
		}
		o = p.leastBad(tried)
		if o == nil {
			return nil, false, nil
		}
		if p.cfg.AllDown == AllDown503 {
			return nil, false, ErrAllDown
		}
	}
	o.inflight.Add(1)
	return o, sticky, nil
}

// choose applies the policy to the usable origins not in tried.
func (p *Pool) choose(r Request, tried []*Origin, now int64) (*Origin, bool) {
	ok := func(o *Origin) bool { return o.usable(now) && !contains(tried, o) }
	switch p.cfg.Policy {
	case First:
		for _, o := range p.origins {
			if ok(o) {
				return o, false
			}
		}
		return nil, false
	case LeastConn:
		return p.leastConn(ok), false
	case RandomTwo:
		return p.randomTwo(ok), false
	case IPHash:
		return p.hashed(r.Client, ok), false
	case Cookie:
		if o := p.stickyOrigin(r.Header); o != nil && ok(o) {
			return o, true
		}
	}
	return p.roundRobin(ok), false
}

func (p *Pool) roundRobin(ok func(*Origin) bool) *Origin {
	n := len(p.seq)
	start := int(p.next.Add(1)-1) % n
	for i := range n {
		if o := p.origins[p.seq[(start+i)%n]]; ok(o) {
			return o
		}
	}
	return nil
}

// leastConn returns the usable origin with the fewest attempts in flight
// per unit of weight; ties go round robin.
func (p *Pool) leastConn(ok func(*Origin) bool) *Origin {
	n := len(p.origins)
	start := int(p.next.Add(1)-1) % n
	best := -1
	for i := range n {
		j := (start + i) % n
		if ok(p.origins[j]) && (best < 0 || p.lighter(j, best)) {
			best = j
		}
	}
	if best < 0 {
		return nil
	}
	return p.origins[best]
}

// lighter reports whether origins[i] has fewer attempts in flight per
// unit of weight than origins[j].
func (p *Pool) lighter(i, j int) bool {
	return p.origins[i].inflight.Load()*int64(p.weights[j]) < p.origins[j].inflight.Load()*int64(p.weights[i])
}

// randomTwo draws two usable origins at random (in proportion to weight)
// and returns the one with fewer attempts in flight per unit of weight.
func (p *Pool) randomTwo(ok func(*Origin) bool) *Origin {
	var cand []int
	total := 0
	for i, o := range p.origins {
		if ok(o) {
			cand = append(cand, i)
			total += p.weights[i]
		}
	}
	switch len(cand) {
	case 0:
		return nil
	case 1:
		return p.origins[cand[0]]
	}
	draw := func(skip int) int {
		t := total
		if skip >= 0 {
			t -= p.weights[skip]
		}
		n := rand.IntN(t)
		for _, i := range cand {
			if i == skip {
				continue
			}
			if n -= p.weights[i]; n < 0 {
				return i
			}
		}
		return cand[len(cand)-1]
	}
	a := draw(-1)
	b := draw(a)
	if p.lighter(b, a) {
		return p.origins[b]
	}
	return p.origins[a]
}

// hashed picks by weighted rendezvous hashing of the client address: a
// client keeps its origin while that origin is usable, and when one goes
// out only its clients move.
func (p *Pool) hashed(client netip.Addr, ok func(*Origin) bool) *Origin {
	key, _ := client.MarshalBinary()
	hc := maphash.Bytes(p.seed, key)
	var best *Origin
	bestScore := math.Inf(-1)
	for i, o := range p.origins {
		if !ok(o) {
			continue
		}
		h := mix64(hc ^ maphash.String(p.seed, o.Label))
		u := (float64(h>>11) + 0.5) / (1 << 53) // in (0, 1)
		score := -float64(p.weights[i]) / math.Log(u)
		if score > bestScore {
			best, bestScore = o, score
		}
	}
	return best
}

// mix64 is the splitmix64 finalizer: every bit of x affects every bit of
// the result.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// stickyOrigin returns the origin the request's sticky cookie names.
func (p *Pool) stickyOrigin(h http.Header) *Origin {
	if h == nil {
		return nil
	}
	for _, line := range h["Cookie"] {
		cs, err := http.ParseCookie(line)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if c.Name == p.cfg.Cookie {
				if o := p.byValue[c.Value]; o != nil {
					return o
				}
			}
		}
	}
	return nil
}

// StickyCookie returns the Set-Cookie value that sends the visitor's next
// requests to o, or "" when the pool's policy is not cookie.
func (p *Pool) StickyCookie(o *Origin) string {
	if p.cfg.Policy != Cookie {
		return ""
	}
	for i, x := range p.origins {
		if x == o {
			c := &http.Cookie{Name: p.cfg.Cookie, Value: p.cookies[i], Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
			return c.String()
		}
	}
	return ""
}

// leastBad returns, among the origins not in tried, the one out after
// failed requests that comes back soonest; failing that (all are down by
// the active check) the next in turn.
func (p *Pool) leastBad(tried []*Origin) *Origin {
	var best, any *Origin
	for _, o := range p.origins {
		if contains(tried, o) {
			continue
		}
		if any == nil {
			any = o
		}
		if o.probeDown.Load() {
			continue
		}
		if best == nil || o.downUntil.Load() < best.downUntil.Load() {
			best = o
		}
	}
	if best != nil {
		return best
	}
	return any
}

// RetryAfter returns how long until an origin of the pool may be back: the
// soonest fail timeout's end, or the health check interval; at least 1s.
func (p *Pool) RetryAfter() time.Duration {
	now := time.Now().UnixNano()
	d := time.Duration(math.MaxInt64)
	for _, o := range p.origins {
		if u := o.downUntil.Load(); u != 0 && !o.probeDown.Load() {
			d = min(d, time.Duration(u-now))
		}
	}
	if d == time.Duration(math.MaxInt64) {
		d = p.cfg.Health.Interval * time.Duration(p.cfg.Health.Passes)
	}
	return max(d, time.Second)
}

func contains(s []*Origin, o *Origin) bool {
	for _, x := range s {
		if x == o {
			return true
		}
	}
	return false
}

type nopObserver struct{}

func (nopObserver) Response(*Origin, int)   {}
func (nopObserver) Failure(*Origin, string) {}
func (nopObserver) Retry(*Origin, string)   {}
func (nopObserver) Probe(*Origin, string)   {}
