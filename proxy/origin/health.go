package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Start begins the active health checks of the pool's origins with client
// (which should not share the connection limits of visitor traffic),
// unless Health.Interval is 0. Each origin has at most one checker at a
// time: when a pool built from a reload takes an origin over, its checker
// waits for the old pool's to stop (Close), and keeps the origin's probe
// counters.
func (p *Pool) Start(client *http.Client) {
	if p.cfg.Health.Interval <= 0 {
		for _, o := range p.origins {
			// A check that was turned off no longer holds an origin down.
			if o.probeDown.Swap(false) {
				p.log.Info("origin up", "event", "origin_up", "route", o.Route, "origin", o.Label, "by", "health_check_off")
			}
		}
		return
	}
	for _, o := range p.origins {
		p.wg.Add(1)
		go p.check(o, client)
	}
}

// Close stops the pool's health checks and waits for them to end. Only
// the first call does anything.
func (p *Pool) Close() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// check probes o every interval until the pool is closed.
func (p *Pool) check(o *Origin, client *http.Client) {
	defer p.wg.Done()
	select {
	case <-p.stop:
		return
	default:
	}
	o.checking.Lock()
	defer o.checking.Unlock()
	t := time.NewTicker(p.cfg.Health.Interval)
	defer t.Stop()
	for {
		p.probe(o, client)
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// probe runs one check of o and updates its active health.
func (p *Pool) probe(o *Origin, client *http.Client) {
	h := p.cfg.Health
	err := p.probeOnce(o, client)
	if err != nil {
		p.obs.Probe(o, "fail")
		o.probePasses = 0
		o.probeFails++
		if o.probeFails >= h.Fails && !o.probeDown.Load() {
			o.probeDown.Store(true)
			p.log.Warn("origin down", "event", "origin_down", "route", o.Route, "origin", o.Label,
				"by", "health_check", "error", err.Error(), "failed_probes", o.probeFails)
		}
		return
	}
	p.obs.Probe(o, "pass")
	o.probeFails = 0
	o.probePasses++
	if o.probePasses >= h.Passes && o.probeDown.Load() {
		o.probeDown.Store(false)
		// A good check also ends an exclusion after failed requests.
		o.downUntil.Store(0)
		o.trial.Store(false)
		p.log.Info("origin up", "event", "origin_up", "route", o.Route, "origin", o.Label,
			"by", "health_check", "passed_probes", o.probePasses)
	}
}

// probeOnce sends one health check request to o.
func (p *Pool) probeOnce(o *Origin, client *http.Client) error {
	h := p.cfg.Health
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	u := *o.URL
	path, query, _ := strings.Cut(h.Path, "?")
	u.Path, u.RawPath, u.RawQuery = joinPath(o.URL.Path, path), "", query
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	h.probeHeader(req)
	req.Header.Set("User-Agent", "edgeblock-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ok := resp.StatusCode == h.ExpectStatus || h.ExpectStatus == 0 && resp.StatusCode >= 200 && resp.StatusCode < 400; !ok {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if h.ExpectBody != "" {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return fmt.Errorf("reading body: %w", err)
		}
		if !strings.Contains(string(b), h.ExpectBody) {
			return fmt.Errorf("body lacks %q", h.ExpectBody)
		}
	}
	return nil
}

// joinPath joins an origin's base path and a path below it.
func joinPath(base, p string) string {
	if base == "" || base == "/" {
		return p
	}
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	return base + "/" + p
}
