package certmgr

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/edgeblock/edgeblock/proxy/certs"
	"github.com/edgeblock/edgeblock/proxy/fleet"
	"github.com/edgeblock/edgeblock/proxy/metrics"
	"go.uber.org/zap"
)

// Edge is what the manager asks of the edge it serves. Its methods are
// called concurrently, from handshakes and certmagic's maintenance.
type Edge interface {
	// Covers reports whether a route or an active block-mode rule covers
	// name; only then may a certificate be obtained for it. It fails
	// before the first state is loaded and for a malformed name.
	Covers(name string) (bool, error)
	// CoveredPatterns returns the covering patterns of the state in use;
	// nil (covering nothing) before the first state is loaded.
	CoveredPatterns() *certs.Patterns
	// ExpiryLabel returns the label of name's certificate expiry series:
	// name when a route or rule names it exactly, else the pattern of
	// the route or rule that covers it, so that the label set stays
	// bounded by the config.
	ExpiryLabel(name string) string
}

// Options configure a Manager; they come from the config's tls section
// (and its fleet section) and need a restart to change.
type Options struct {
	// Config is the tls section, its defaults applied.
	Config
	// Fleet, if set, keeps certificates, ACME accounts, locks and the
	// internal CA in the fleet's Redis, shared by every edge.
	Fleet *fleet.Config
	// RenewCheckInterval is how often certmagic looks for certificates
	// to renew (a third of their lifetime before expiry); zero means 10
	// minutes.
	RenewCheckInterval time.Duration
}

// Manager obtains and renews certificates with certmagic, for exactly
// the names the edge covers. A name nothing covers gets no certificate
// and no ACME order: the handshake fails. Create it with New, stop it
// with Stop.
type Manager struct {
	log       *slog.Logger
	metrics   *metrics.Metrics
	edge      Edge
	magic     *certmagic.Config // on demand, for handshakes
	ahead     *certmagic.Config // for names managed ahead
	cache     *certmagic.Cache
	acme      []*certmagic.ACMEIssuer // one per config; none in internal mode
	mode      string
	limit     int
	policy    *certs.Policy
	patLabels certs.LabelSet // pattern labels of the issuance metrics
	tickets   *certs.TicketKeys

	// For wildcard certificates by DNS-01 (mode acme): the config and
	// ACME issuer templates, one config per DNS-01 setup (by its
	// settings), and the config of each wildcard name (under mu).
	base     certmagic.Config
	acmeTmpl certmagic.ACMEIssuer
	dnsCfgs  map[string]*certmagic.Config
	wildCfgs map[string]*certmagic.Config

	mu      sync.Mutex
	managed map[string]bool
	certs   map[string]time.Time // expiry of the newest certificate of each name
	labels  map[string]bool      // name label values of the exported expiry series
	ctx     context.Context
	cancel  context.CancelFunc

	closeStorage func()
}

// Tunables of certificate maintenance; tests shorten them.
var (
	// ticketKeyRotation is how often a new session ticket key is made;
	// ticketKeysKept keys are accepted, so a ticket resumes for at most
	// ticketKeyRotation * ticketKeysKept.
	ticketKeyRotation = time.Hour
	ticketKeysKept    = 24
	// budgetRefresh is how often the remaining-budget gauges are set.
	budgetRefresh = 15 * time.Second
)

// defaultRenewCheckInterval is Options.RenewCheckInterval's zero value.
const defaultRenewCheckInterval = 10 * time.Minute

// patternLabels is how many distinct covering patterns get their own
// label value in the issuance metrics; later ones share "other".
const patternLabels = 100

// New sets up certificate management for the edge. Certificates are kept
// in o.Storage, or with o.Fleet in the fleet's Redis, so that a restart
// (and, in a fleet, every other edge) reuses them. Maintenance runs until
// Stop.
func New(o Options, log *slog.Logger, m *metrics.Metrics, edge Edge) (*Manager, error) {
	t := &Manager{log: log, metrics: m, edge: edge, mode: o.Mode, limit: o.ManageAheadLimit,
		managed: map[string]bool{}, certs: map[string]time.Time{}, labels: map[string]bool{}}
	storage, closeStorage, err := OpenStorage(o.Storage, o.Fleet)
	if err != nil {
		return nil, err
	}
	t.closeStorage = closeStorage
	t.ctx, t.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			t.cancel()
			closeStorage()
		}
	}()
	t.patLabels.Max = patternLabels
	t.policy = certs.NewPolicy(o.OnDemand, edge.CoveredPatterns, t.stored)
	renew := o.RenewCheckInterval
	if renew == 0 {
		renew = defaultRenewCheckInterval
	}
	t.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   t.configForCert,
		Capacity:           o.CacheCapacity,
		RenewCheckInterval: renew,
		Logger:             zap.NewNop(),
	})
	// Two configs share one cache and one storage: the on-demand one
	// answers handshakes (and asks decide first), and the ahead one
	// obtains the exact names at start and reload, which certmagic does
	// not do for a config with on-demand set.
	base := certmagic.Config{
		Storage:   storage,
		OnEvent:   t.onEvent,
		Logger:    zap.NewNop(),
		KeySource: certmagic.StandardKeyGenerator{KeyType: certmagic.KeyType(o.KeyType)},
	}
	t.base = base
	t.dnsCfgs, t.wildCfgs = map[string]*certmagic.Config{}, map[string]*certmagic.Config{}
	onDemand := base
	onDemand.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: t.decide}
	t.magic = certmagic.New(t.cache, onDemand)
	t.ahead = certmagic.New(t.cache, base)
	switch o.Mode {
	case "internal":
		ca := newInternalCA(storage)
		// Read (or create) the root now. A directory that fails is an
		// error at start, as it always was; the fleet's Redis may be down
		// for a while: the edge then starts with what it has, and the CA
		// is read when a certificate is first needed.
		ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
		err := ca.load(ctx)
		cancel()
		if err != nil && o.Fleet == nil {
			return nil, err
		}
		if err != nil {
			log.Warn("internal CA not loaded from the fleet's Redis yet; certificates are issued once it can be read", "event", "tls_internal_ca", "error", err.Error())
		}
		ca.lifetime = o.InternalLifetime
		t.magic.Issuers = []certmagic.Issuer{ca}
		t.ahead.Issuers = []certmagic.Issuer{ca}
	case "acme":
		tmpl := certmagic.ACMEIssuer{CA: o.CA, Email: o.Email, Agreed: true, Logger: zap.NewNop(),
			DisableHTTPChallenge:    !slices.Contains(o.Challenges, "http-01"),
			DisableTLSALPNChallenge: !slices.Contains(o.Challenges, "tls-alpn-01")}
		if o.CARoot != "" {
			pemData, err := os.ReadFile(o.CARoot)
			if err != nil {
				return nil, fmt.Errorf("tls.ca_root: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemData) {
				return nil, fmt.Errorf("tls.ca_root: %s holds no PEM certificate", o.CARoot)
			}
			tmpl.TrustedRoots = pool
		}
		t.acmeTmpl = tmpl
		for _, c := range []*certmagic.Config{t.magic, t.ahead} {
			iss := certmagic.NewACMEIssuer(c, tmpl)
			c.Issuers = []certmagic.Issuer{iss}
			t.acme = append(t.acme, iss)
		}
	default:
		return nil, fmt.Errorf("tls.mode %q has no certificate manager", o.Mode)
	}
	t.policy.Seed(t.storedNames(t.ctx))
	t.tickets = certs.NewTicketKeys(ticketKeyRotation, ticketKeysKept)
	go t.refreshBudgets()
	ok = true
	return t, nil
}

// Renew renews name's certificate now, whatever its expiry, as
// certmagic's maintenance would, and waits for it; the expiry series
// follow.
func (t *Manager) Renew(ctx context.Context, name string) error {
	return t.ahead.RenewCertSync(ctx, name, true)
}

// Stop ends certificate maintenance and closes the fleet's Redis client,
// if any.
func (t *Manager) Stop() {
	t.cancel()
	t.cache.Stop()
	t.closeStorage()
}
