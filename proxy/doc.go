// Package proxy is edgeblock's request path and the Server that wires the
// rest of the edge around it.
//
// # The request path
//
// [Proxy.ServeHTTP] answers every public request in this order; each step
// may answer the request itself and end it:
//
//  1. Bookkeeping: a request ID (X-Request-Id), the in-flight gauge and a
//     recorder for the access line and the metrics, written when the
//     request ends whatever answered it.
//  2. State: before the first Apply every request gets the 503 starting
//     page.
//  3. Method: CONNECT, TRACE and TRACK are never forwarded (405).
//  4. Host decision: one name per request, from the Host header and, on
//     HTTP/2, the :authority and an absolute-form :path, all of which must
//     agree (400 otherwise; X-Forwarded-Host never takes part). The
//     request target must be origin-form with no space or control
//     character (400). The blocklist, the route, the origin's Host and
//     X-Forwarded-Host and the access line all use this one name.
//  5. Blocklist: a block-mode rule serves its block page; a report-mode
//     rule is noted and the request goes on.
//  6. Loop detection: a request that already went through this edge (its
//     Via name) is refused (508).
//  7. Route: a host no route serves gets the 404 page.
//  8. Forwarding: httputil.ReverseProxy with the route's header rules, the
//     edge's forwarding headers and the upgrade filter, over the
//     proxy/origin transport, which picks the origin, balances, retries and
//     checks health. The origin's status is held until its body begins, so
//     a response that breaks off before any byte is sent still gets the 502
//     or 504 page; an origin that gives no answer gets the error page too,
//     never Go's error text.
//
// # The state-swap guarantee
//
// Everything a request needs (config, blocklist, routes and their origin
// pools, pages) is one immutable state, built in full before
// [Proxy.Apply] swaps it in with one atomic store. A request loads the
// state once when it begins and uses that state to its end: it never sees
// a mix of an old and a new config or list. The one exception is a block:
// when the new list blocks the host of a proxied request still in flight,
// Apply ends that request (its context is canceled with the rule as the
// cause); the visitor gets the block page when the origin had not
// answered yet, else the connection or stream is cut. A
// config or list that fails to load is never applied; the last good state
// keeps serving.
//
// # Around the request path
//
// [Server] runs the public HTTP and HTTPS listeners, the admin listener,
// the certificate manager and the [reload.Reloader], which loads a
// [reload.Bundle] at start, on a file change, on SIGHUP and from the
// fleet, and applies it to the Proxy (through reload.Edge). The packages
// it builds on import nothing of the root package: proxy/config (the
// config file: sections, decoding with problem lines, defaults, checks),
// proxy/reload (loading and the one commit path), proxy/origin
// (origins, pools, balancing, health, retries), proxy/fleet (the shared
// Redis store), proxy/certs (which names may get a certificate),
// proxy/certmgr (certmagic: obtaining, storing and renewing
// certificates, the internal CA; it asks the edge which names are covered
// through certmgr.Edge), and the top-level blocklist and pages packages.
package proxy
